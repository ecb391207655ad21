"""The malicious server's imprint attack (Robbing the Fed, Fowl et al. 2022) on a captured update.

The server sent a model whose imprint block it crafted (`strategies.malicious_imprint`): unit i of
`imprint.linear0` is on for the images brighter than threshold t_i, and every unit feeds back with the same
weight, so image n adds the same factor g_n to the gradient of every unit it switches on: `dW_i = (1/B)
sum_{n on} g_n x_n`, `db_i = (1/B) sum_{n on} g_n`. Consecutive differences leave the images between t_i and
t_{i+1}: `(dW_i - dW_{i+1}) / (db_i - db_{i+1}) = x_n` exactly when image n is alone in that bin (a mix of
the bin's images otherwise). A secure aggregate is the mean gradient over every client's images, so the same
differences apply to the union of their batches. Nothing is optimised and the truth never enters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fl_privacy.attacks.gradient_inversion import Reconstruction, no_options
from fl_privacy.attacks.label_restoration import restore_labels
from fl_privacy.attacks.registry import inversion_attack
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.models import IMPRINT_BIAS, IMPRINT_WEIGHT


def bin_images(weight_grad: torch.Tensor, bias_grad: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per bin, the (flattened) image `dW / db` of the bin's gradient difference and that difference's
    bias part `db` (0 for an empty bin); bins in increasing brightness."""
    weight_bins = weight_grad.double() - torch.cat([weight_grad[1:].double(),
                                                    torch.zeros_like(weight_grad[:1]).double()])
    bias_bins = bias_grad.double() - torch.cat([bias_grad[1:].double(),
                                                torch.zeros_like(bias_grad[:1]).double()])
    safe = torch.where(bias_bins == 0, torch.ones_like(bias_bins), bias_bins)
    return weight_bins / safe[:, None], bias_bins


@inversion_attack("imprint", needs="any", options=no_options)
def imprint_attack(model: nn.Module, payload: CapturedUpdate, settings: Any = None) -> Reconstruction:
    """The `payload.num_inputs` images of the bins with the largest gradient mass `|db|`, in [0, 1], and the
    labels restored from the model's head (`settings` is unused: nothing is optimised)."""
    names = [IMPRINT_WEIGHT, IMPRINT_BIAS]
    if not set(names) <= set(payload.global_state):
        raise ValueError("the imprint attack needs a model with an imprint block (model.imprint_bins > 0)")
    weight_grad, bias_grad = payload.effective_gradient(names)
    images, mass = bin_images(weight_grad, bias_grad)
    count = payload.num_inputs
    chosen = mass.abs().argsort(descending=True)[:count]
    recovered = images[chosen].clamp(0, 1).float().view(-1, *payload.input_shape)
    if len(recovered) < count:  # fewer bins than images: the rest stay blank
        blank = torch.zeros(count - len(recovered), *payload.input_shape)
        recovered = torch.cat([recovered, blank])
    return Reconstruction(recovered, restore_labels(model, payload), float("nan"), ())
