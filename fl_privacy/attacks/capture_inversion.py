"""The curious server's attack on a capture of a user's own Flower app (`fl_privacy.capture`).

The server holds, per node and round, the arrays it sent and the arrays the node returned, plus the reply's
metrics (num-examples). From those alone it
1. decides the update mode (`detect_update_mode`): returned *weights* (FedAvg) stay close to the sent ones
   (cosine near 1), a returned *gradient* (FedSGD) does not;
2. builds the lab's `CapturedUpdate` view with the recipe it must assume for FedAvg (local lr, epochs, batch
   size: `Recipe`, stated in the report);
3. inverts it with the strongest optimisation attacker the lab has (`invert_capture`: DLG and Inverting
   Gradients' restarts, the lowest matching loss per batch, labels restored analytically). Every capture goes
   through that one function, so a stronger attack replaces it in one place.
`threat_model` tags each finding in the taxonomy of Carletti et al., "SoK: Gradient Inversion Attacks in
Federated Learning", USENIX Security 2025 (threat models A-H, attack families).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fl_privacy.attacks.best_matching import BestMatchingConfig, best_matching
from fl_privacy.attacks.gradient_inversion import DLGConfig, InvertingConfig, Reconstruction
from fl_privacy.attacks.label_restoration import last_linear_names
from fl_privacy.attacks.views import CapturedUpdate

UpdateMode = Literal["fedsgd", "fedavg"]
WEIGHTS_COSINE = 0.5  # returned arrays with a cosine to the sent ones above this are weights (FedAvg)
# shapes a server tries when it is not told the input shape: the first the architecture accepts wins
PROBE_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 28, 28), (3, 32, 32), (1, 32, 32), (3, 28, 28),
                                                   (3, 64, 64), (1, 64, 64), (3, 224, 224))
SOK = "Carletti et al., SoK: Gradient Inversion Attacks in Federated Learning, USENIX Security 2025"


@dataclass(frozen=True)
class Recipe:
    """The client training the attacker assumes for a FedAvg update (it cannot see it)."""

    lr: float = 0.01
    epochs: int = 1
    batch_size: int = 32

    def local_steps(self, num_examples: int) -> int:
        """SGD steps of `epochs` passes over `num_examples` in mini-batches of `batch_size`."""
        return self.epochs * math.ceil(num_examples / self.batch_size)


@dataclass(frozen=True)
class Budget:
    """The attack's budget: Inverting Gradients' Adam steps and restarts, DLG's L-BFGS steps."""

    iterations: int = 200
    restarts: int = 2
    lr: float = 0.1
    tv_weight: float = 1e-4
    dlg_iterations: int = 5
    inner_iterations: int = 20
    seed: int = 0


@dataclass(frozen=True)
class ModeEvidence:
    """The update mode and what decided it: cosine(returned, sent) and |returned - sent| / |sent|."""

    mode: UpdateMode
    cosine: float
    relative_change: float
    source: Literal["detected", "flag"]


def _flat(state: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    return torch.cat([state[n].detach().double().flatten() for n in names])


def detect_update_mode(global_state: Mapping[str, torch.Tensor], returned: Mapping[str, torch.Tensor],
                       names: Sequence[str], forced: UpdateMode | None = None) -> ModeEvidence:
    """FedAvg when the returned parameters point where the sent ones do (cosine > 0.5), else FedSGD (a
    gradient is nearly orthogonal to the weights); `forced` overrides the decision but keeps the evidence."""
    sent, back = _flat(global_state, names), _flat(returned, names)
    cosine = float(torch.nn.functional.cosine_similarity(sent, back, dim=0))
    change = float((back - sent).norm() / sent.norm().clamp_min(1e-30))
    mode: UpdateMode = "fedavg" if cosine > WEIGHTS_COSINE else "fedsgd"
    return ModeEvidence(forced or mode, cosine, change, "flag" if forced else "detected")


def build_view(global_state: Mapping[str, torch.Tensor], returned: Mapping[str, torch.Tensor],
               num_examples: int, input_shape: Sequence[int], mode: UpdateMode, recipe: Recipe
               ) -> CapturedUpdate:
    """The lab's server view of one reply: a FedSGD gradient over `num_examples`, or FedAvg weights after
    the assumed recipe's local steps."""
    shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    if mode == "fedsgd":
        return CapturedUpdate(global_state, shape, batch_size=num_examples, num_examples=num_examples,
                              gradient=returned)
    return CapturedUpdate(global_state, shape, batch_size=min(recipe.batch_size, num_examples),
                          num_examples=num_examples, updated_state=returned, lr=recipe.lr,
                          local_steps=recipe.local_steps(num_examples))


def attack_config(budget: Budget) -> BestMatchingConfig:
    """DLG (L-BFGS) and Inverting Gradients (Adam, cosine + TV, restarts) at `budget`."""
    return BestMatchingConfig(
        DLGConfig(iterations=budget.dlg_iterations, inner_iterations=budget.inner_iterations, lr=1.0,
                  seed=budget.seed, log_every=0),
        InvertingConfig(iterations=budget.iterations, lr=budget.lr, tv_weights=(budget.tv_weight,),
                        restarts=budget.restarts, seed=budget.seed, log_every=0))


def invert_capture(model: nn.Module, view: CapturedUpdate, budget: Budget) -> Reconstruction:
    """The one attack call of an audit: the strongest optimisation attacker per batch (`best_matching`)."""
    with torch.random.fork_rng():
        return best_matching(model, view, attack_config(budget))


def attack_name(budget: Budget) -> str:
    """What `invert_capture` runs, in words, for the report."""
    return (f"best of DLG (L-BFGS, {budget.dlg_iterations}x{budget.inner_iterations}) and Inverting "
            f"Gradients (Adam {budget.iterations} steps, lr {budget.lr}, TV {budget.tv_weight}, "
            f"{budget.restarts} restarts) by matching loss; labels restored analytically "
            "(iDLG / zero-shot counts)")


def probe_input_shape(model: nn.Module, num_classes: int) -> tuple[int, int, int] | None:
    """The first of `PROBE_SHAPES` the model maps to `num_classes` logits (None if none does)."""
    model.eval()
    for shape in PROBE_SHAPES:
        try:
            with torch.no_grad():
                out = model(torch.zeros(1, *shape))
        except (RuntimeError, ValueError):
            continue
        if tuple(out.shape) == (1, num_classes):
            return shape
    return None


def num_classes_of(model: nn.Module, state: Mapping[str, torch.Tensor]) -> int:
    """Rows of the last dense layer's weight in the captured state."""
    return int(state[last_linear_names(model)[0]].shape[0])


def threat_model(mode: UpdateMode, batch_size: int, recipe: Recipe | None) -> dict:
    """A finding's threat model: who attacks, what they see, update mode and batch size, and its place in the
    SoK's taxonomy (B: updates + the architecture; C: also the training details the FedAvg replay assumes)."""
    fedavg = mode == "fedavg"
    sees = ["the global arrays the server sent", "the node's returned arrays", "the reply's metrics "
            "(num-examples)", "the node id", "the model architecture (--model)"]
    if fedavg and recipe is not None:
        sees.append(f"assumed training details: lr {recipe.lr}, {recipe.epochs} epoch(s), batches of "
                    f"{recipe.batch_size}")
    return {"attacker": "honest-but-curious server (passive: never changes the model it sends)",
            "sees": sees,
            "update_mode": ("FedAvg (returned weights after local SGD)" if fedavg
                            else "FedSGD (returned gradient of one batch)"),
            "batch_size": batch_size,
            "sok_threat_model": ("C: Parameter-Aware Eavesdropper (model updates, basic knowledge, training "
                                 "details)" if fedavg else
                                 "B: Informed Eavesdropper (model updates, basic knowledge)"),
            "sok_attack": "optimization-based, basic optimization (DLG, Inverting Gradients); analytic label "
                          "recovery",
            "sok_applicability": "high (no surrogate data, no manipulation, hard to detect)",
            "taxonomy": SOK}
