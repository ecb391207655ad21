"""White-box gradient attacks on one client's update (Nasr, Shokri & Houmansadr, S&P 2019: per-example
gradients as membership features against federated updates; passive, honest-but-curious server).

The server knows the weights it sent (θ) and those the client returned (θ'). Local SGD moved θ by
u = θ − θ' = lr · Σ steps' mean gradients, a sum of the members' gradients, so a member's own gradient at
θ points along u far more than a non-member's:
- `gradient_cosine`: cos(∇ℓ(x; θ), u), per candidate;
- `returned_gradient_norm`: minus ‖∇ℓ(x; θ')‖, small for the records the returned model fitted.
Per-example gradients come from `torch.func` (functional_call, vmap, grad), in chunks so memory stays
at chunk × parameters. Everything comes in the `UpdateAuditorView`, as for the loss attacks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fl_privacy.attacks.views import UpdateAuditorView
from fl_privacy.data.images import ImageDataset

GRADIENT_ATTACKS = ("gradient_cosine", "returned_gradient_norm")


def per_example_gradient_stats(model: nn.Module, records: ImageDataset, direction: torch.Tensor | None,
                               chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(‖∇ℓ(x)‖, cos(∇ℓ(x), direction) or NaN) of every record's cross-entropy loss at `model`'s weights,
    the gradient flattened over its trainable parameters (in `named_parameters` order)."""
    model = model.eval()
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def loss(weights: dict[str, torch.Tensor], image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (weights, buffers), (image.unsqueeze(0),))
        return F.cross_entropy(logits, label.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    norms, cosines = [], []
    unit = None if direction is None else direction / direction.norm().clamp_min(1e-30)
    for start in range(0, len(records.labels), chunk):
        end = start + chunk
        gradients = per_example(params, records.images[start:end], records.labels[start:end])
        flat = torch.cat([gradients[name].flatten(1) for name in params], dim=1)
        norm = flat.norm(dim=1)
        norms.append(norm)
        cosines.append(torch.full_like(norm, float("nan")) if unit is None
                       else (flat @ unit) / norm.clamp_min(1e-30))
    return torch.cat(norms).double().numpy(), torch.cat(cosines).double().numpy()


def _loaded(view: UpdateAuditorView, state: Mapping[str, torch.Tensor]) -> nn.Module:
    model = view.model_fn(0)  # the weights are overwritten: the init seed does not matter
    model.load_state_dict(dict(state))
    return model.eval()


def gradient_membership_scores(view: UpdateAuditorView) -> dict[str, np.ndarray]:
    """`gradient_cosine` and `returned_gradient_norm` per candidate; higher = more likely a member."""
    returned = view.update.updated_state
    if returned is None:
        raise ValueError("the gradient attack needs a FedAvg capture (returned weights), not a gradient")
    sent = _loaded(view, view.update.global_state)
    names = [name for name, _ in sent.named_parameters()]
    moved = torch.cat([(view.update.global_state[n] - returned[n]).flatten() for n in names]).float()
    _, cosine = per_example_gradient_stats(sent, view.candidates, moved)
    norm_after, _ = per_example_gradient_stats(_loaded(view, returned), view.candidates, None)
    return {"gradient_cosine": cosine, "returned_gradient_norm": -norm_after}
