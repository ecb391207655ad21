"""The honest-but-curious server as a membership attacker on one client's update in one round.

The server holds the global model it sent and the model the client returned after local training
(a FedAvg capture). A record the client trained on this round has its loss lowered by the update far
more than a record it never saw (Nasr et al., S&P 2019, "active/passive" attacks on federated updates,
here passive and using only the loss): score = loss under the sent model - loss under the returned
model. `returned_loss` (minus the loss under the returned model alone) is the LOSS attack on the
client's local model, for comparison; `attacks.gradient_membership` adds the white-box per-example
gradient attacks. Everything comes in one `UpdateAuditorView`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fl_privacy.attacks.gradient_membership import GRADIENT_ATTACKS, gradient_membership_scores
from fl_privacy.attacks.membership_inference import loss_score, model_logits
from fl_privacy.attacks.views import UpdateAuditorView

UPDATE_ATTACKS = ("loss_difference", "returned_loss", *GRADIENT_ATTACKS)


def _loaded(view: UpdateAuditorView, state: Mapping[str, torch.Tensor]) -> nn.Module:
    model = view.model_fn(0)  # the weights are overwritten: the init seed does not matter
    model.load_state_dict(dict(state))
    return model.eval()


def update_membership_scores(view: UpdateAuditorView) -> dict[str, np.ndarray]:
    """Per candidate: `loss_difference` (loss before - after the client's update) and `returned_loss`
    (minus the loss under the returned model); higher = more likely in the client's data."""
    returned = view.update.updated_state
    if returned is None:
        raise ValueError("the update attack needs a FedAvg capture (returned weights), not a FedSGD gradient")
    labels = view.candidates.labels
    before = loss_score(model_logits(_loaded(view, view.update.global_state), view.candidates), labels)
    after = loss_score(model_logits(_loaded(view, returned), view.candidates), labels)
    # loss_score is minus the loss: (-after) - (-before) = loss before - loss after
    return {"loss_difference": after - before, "returned_loss": after,
            **gradient_membership_scores(view)}  # the white-box gradient attacks (Nasr et al. 2019)
