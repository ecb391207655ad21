"""The `dp` client that holds the Dirac canaries (`data.canaries.kind=dirac`): its canary block and the
white-box observer's scores across rounds.

Partition `data.canaries.partition` trains the canary block beside its model in every FedAvg round
(`defenses.gradient_canaries`); the observer's running scores live in the node's `context.state` (so a
resumed run keeps them) and, after each round, go to the lab through its `publish` side channel
(`lab/<DIRAC_SCORES_ARTIFACT>.pt`), which the audit pipeline reads after the run. The insertion bits go
into the block only; the observer and the published scores never hold them.
"""

from __future__ import annotations

import torch

from fl_privacy.apps import node_state
from fl_privacy.apps.roles import ClientJob
from fl_privacy.attacks.dirac_observer import WhiteBoxObserver
from fl_privacy.defenses.gradient_canaries import CanaryBlock, dirac_inclusion
from fl_privacy.run_layout import DIRAC_SCORES_ARTIFACT

SCORES_KEY, STEPS_KEY = "dirac.scores", "dirac.steps"


def canary_block(job: ClientJob, rate: float) -> CanaryBlock | None:
    """This round's canary block of the node that holds the Dirac canaries (None for every other node),
    its observer resumed from the node's state."""
    canaries = job.settings.data.canaries
    if canaries.kind != "dirac" or not canaries.count or job.partition_id != canaries.partition:
        return None
    scores = node_state.load_tensor(job.context, SCORES_KEY)
    steps = node_state.load_counters(job.context, STEPS_KEY).get("steps", 0)
    observer = WhiteBoxObserver(scores.to(torch.float64) if scores is not None else
                                torch.zeros(canaries.count, dtype=torch.float64), int(steps))
    return CanaryBlock.of(dirac_inclusion(job.settings.seed, canaries.count), rate, observer, job.seed)


def save_scores(job: ClientJob, block: CanaryBlock) -> None:
    """Keep the observer's scores in the node's state and hand them to the lab."""
    observer = block.observer
    assert isinstance(observer, WhiteBoxObserver)  # built by `canary_block`
    node_state.save_tensor(job.context, SCORES_KEY, observer.scores)
    node_state.save_counters(job.context, STEPS_KEY, {"steps": observer.steps})
    job.hooks.publish(DIRAC_SCORES_ARTIFACT, job.server_round,
                      {"scores": observer.scores.clone(), "steps": observer.steps})
