"""Run breaching's own Inverting Gradients (`attack=invertinggradients`, breaching 0.1.2) on a captured
gradient, for the engine benchmark and the cross-check. breaching is never a dependency of the project:
install it into a scratch environment that also sees the project (see docs/gradient_inversion.md):

    python3 -m venv /tmp/breach && /tmp/breach/bin/pip install --no-deps breaching==0.1.2
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/breach/lib/python3.11/site-packages/project.pth
    echo "$PWD" >> /tmp/breach/lib/python3.11/site-packages/project.pth

The images are handed to breaching in [0, 1] with mean 0 and std 1 (the project's models take [0, 1]
images), so its box is [0, 1] and its TV 0.2 acts on [0, 1] images, as in the project's preset. Its total
variation is written for 3 channels; it is given the image's channel count.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from types import SimpleNamespace

import torch
from torch import nn


def available() -> bool:
    """Whether breaching can be imported here."""
    try:
        import breaching  # noqa: F401
    except ImportError:
        return False
    return True


def breaching_ig(model: nn.Module, global_state: dict[str, torch.Tensor], gradient: list[torch.Tensor],
                 num_inputs: int, shape: tuple[int, int, int], iterations: int, seed: int = 0,
                 labels: torch.Tensor | None = None, restarts: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """breaching's IG at its published settings except `iterations` (and `restarts`): the images in [0, 1]
    and the labels it used (its own bias-corrected estimate unless `labels` are given)."""
    import breaching
    from breaching.attacks.auxiliaries.regularizers import TotalVariation

    logging.getLogger("breaching").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        cfg = breaching.get_attack_config("invertinggradients")
    cfg.optim.max_iterations = iterations
    cfg.optim.callback = max(iterations, 1)
    cfg.restarts.num_trials = restarts
    setup = {"dtype": torch.float, "device": torch.device("cpu")}
    victim = copy.deepcopy(model)
    victim.load_state_dict(global_state)
    victim.eval()
    attacker = breaching.attacks.prepare_attack(victim, nn.CrossEntropyLoss(), cfg, setup)
    for regularizer in attacker.regularizers:
        if isinstance(regularizer, TotalVariation):  # written for RGB: one (dx, dy) pair per channel
            regularizer.groups = shape[0]
            regularizer.weight = regularizer.weight[:2 * shape[0]]
    names = [name for name, _ in victim.named_parameters()]
    buffers = [b for _, b in victim.named_buffers()]
    metadata = SimpleNamespace(shape=shape, modality="vision", classes=None)
    server_payload = [{"parameters": [global_state[n] for n in names], "buffers": buffers or None,
                       "metadata": metadata}]
    shared_data = [{"gradients": [g.detach().clone() for g in gradient], "buffers": None,
                    "metadata": {"num_data_points": num_inputs, "labels": labels,
                                 "local_hyperparams": None}}]
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        result, _ = attacker.reconstruct(server_payload, shared_data, {}, dryrun=False)
    return result["data"].detach().clamp(0, 1), result["labels"].detach()
