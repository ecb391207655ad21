"""The canary client of the federated one-shot audit (`attack.dp_audit_fl`, Andrew et al., ICLR 2024).

It trains on nothing: every round it returns the received weights moved by its own fixed random unit
direction times the central clipping norm C (its update has norm exactly C, so central DP's clipping
leaves it as it is). Which partitions are canaries is `attack.dp_audit_fl.canary_clients` (the last ones).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fl_privacy.apps.roles import ClientJob, update_metrics
from fl_privacy.data.canary_clients import canary_direction
from fl_privacy.training import TrainStats


def canary_client(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """Move `model`'s trainable parameters by C × this canary's direction; report no training."""
    parameters = dict(model.named_parameters())
    direction = canary_direction({name: p.shape for name, p in parameters.items()}, job.settings.seed,
                                 job.partition_id)
    norm = job.settings.defense.central_dp.clipping_norm
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.add_(norm * direction[name].to(parameter.dtype))
    job.used_indices = None  # no record was used
    return update_metrics(TrainStats(math.nan, math.nan, 1, 0))
