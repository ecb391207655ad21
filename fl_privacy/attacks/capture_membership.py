"""The curious server's membership attack on a capture of a user's own Flower app (`fl_privacy.capture`).

Given candidate records it suspects some node trained on, the server scores each candidate against one
node's reply with the lab's update attacks (`attacks.update_membership`: the loss before minus after the
update, the loss under the returned model; `attacks.gradient_membership`: the cosine of the candidate's
gradient at the sent weights with the update, Nasr et al. S&P 2019, and the gradient norm at the returned
weights). The view holds the arrays the server sent, the arrays the node returned and the candidates,
never which candidates the node holds.

A FedSGD reply is a gradient g, not weights: the view then holds the weights one SGD step along it would
give, θ − lr·g at the attacker's assumed `lr` (the gradient cosine is the same for any lr; the loss
difference is a one-step look-ahead), said in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fl_privacy.attacks.capture_inversion import UpdateMode
from fl_privacy.attacks.update_membership import UPDATE_ATTACKS, update_membership_scores
from fl_privacy.attacks.views import CapturedUpdate, UpdateAuditorView
from fl_privacy.data.images import ImageDataset

MEMBERSHIP_ATTACKS = UPDATE_ATTACKS


def membership_view(global_state: Mapping[str, torch.Tensor], returned: Mapping[str, torch.Tensor],
                    names: Sequence[str], mode: UpdateMode, lr: float, input_shape: Sequence[int],
                    candidates: ImageDataset, factory: Callable[[], nn.Module]) -> UpdateAuditorView:
    """The server's membership view of one reply: sent weights, returned weights (for FedSGD the one-step
    look-ahead θ − lr·g), the candidates and the architecture (the user's factory)."""
    if mode == "fedsgd":
        after = {key: (value - lr * returned[key] if key in names else value)
                 for key, value in global_state.items()}
    else:  # arrays the node did not return (e.g. buffers) stay as sent
        after = {key: returned.get(key, value) for key, value in global_state.items()}
    shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    update = CapturedUpdate(global_state, shape, batch_size=1, num_examples=1, updated_state=after,
                            lr=lr, local_steps=1)
    return UpdateAuditorView(update, candidates, lambda seed: factory())


def capture_membership_scores(view: UpdateAuditorView) -> dict[str, np.ndarray]:
    """Per candidate and attack (`MEMBERSHIP_ATTACKS`): higher = more likely in the node's training data."""
    with torch.random.fork_rng():
        return update_membership_scores(view)


def membership_threat_model(mode: UpdateMode, lr: float) -> dict:
    """Who attacks and what it sees, for the membership finding."""
    sees = ["the global arrays the server sent", "the node's returned arrays", "the model architecture "
            "(--model)", "candidate records (--candidates), never which of them any node holds"]
    if mode == "fedsgd":
        sees.append(f"assumed step size lr {lr} for the one-step look-ahead θ − lr·g (the gradient cosine "
                    "does not depend on it)")
    return {"attacker": "honest-but-curious server (passive: never changes the model it sends)",
            "sees": sees,
            "update_mode": ("FedAvg (returned weights after local SGD)" if mode == "fedavg"
                            else "FedSGD (returned gradient of one batch)"),
            "attacks": {"loss_difference": "loss under the sent weights minus under the returned ones",
                        "returned_loss": "minus the loss under the returned weights (LOSS, Yeom et al. 2018)",
                        "gradient_cosine": "cosine of the candidate's gradient at the sent weights with the "
                                           "update (white-box, Nasr et al. S&P 2019)",
                        "returned_gradient_norm": "minus the gradient norm at the returned weights"}}
