"""Score the server's membership attack on a node's update against that node's own data.

A candidate is a **member** of a capture's node when it equals (exact pixel match, float32) one of the images
the node trains on (the first set its `--client-data` function returns). Per capture and attack: AUC with a
stratified bootstrap 95% CI, TPR at 1% FPR (None below 100 non-members), with the numbers of members and
non-members. The **negative control** scores the same scores against another node's membership (the next
node, by partition id, that holds candidates), among the candidates that are not this node's: its records
were not in this update, so its AUC shows chance at these n; with no such node, a seeded permutation of this
node's membership. Pooled figures concatenate
the captures' scores (one threshold for all captures).
"""

from __future__ import annotations

import numpy as np
import torch

from fl_privacy.evaluation.membership_metrics import membership_metrics

PERMUTATION_SEED = 0
REPORTED = ("auc", "auc_ci", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci", "tpr_at_zero_fpr", "num_members",
            "num_non_members")


def _keys(images: torch.Tensor) -> list[bytes]:
    flat = images.detach().cpu().float().contiguous().flatten(1).numpy()
    return [row.tobytes() for row in flat]


def exact_members(candidates: torch.Tensor, own: torch.Tensor) -> np.ndarray:
    """Per candidate: does it equal (every pixel, as float32) one of `own`'s images?"""
    own_keys = set(_keys(own))
    return np.array([key in own_keys for key in _keys(candidates)], dtype=bool)


def scorable(is_member: np.ndarray) -> bool:
    """At least one member and one non-member (else no ROC exists)."""
    return bool(is_member.any()) and bool((~is_member).any())


def attack_metrics(scores: dict[str, np.ndarray], is_member: np.ndarray, resamples: int) -> dict[str, dict]:
    """The reported membership figures per attack."""
    result = {}
    for name, values in scores.items():
        metrics = membership_metrics(np.asarray(values), is_member, resamples)
        result[name] = {key: metrics.get(key) for key in REPORTED}
    return result


def control_membership(is_member: np.ndarray, others: list[tuple[int, np.ndarray]]
                       ) -> tuple[str, np.ndarray, np.ndarray]:
    """The negative control: the first other node (by partition id) with members among the candidates,
    against the candidates that are neither its nor this node's (this node's members are left out: they
    would score high and pull the control below chance); else a seeded permutation of `is_member` over all
    candidates. Returns (what it is, membership, which candidates it scores)."""
    for partition, membership in others:
        keep = ~is_member
        if scorable(membership[keep]):
            return (f"another node's records (partition {partition}) against records of no node: neither in "
                    "this update", membership, keep)
    permuted = np.random.default_rng(PERMUTATION_SEED).permutation(is_member)
    return "this node's membership randomly permuted (seed 0)", permuted, np.ones_like(is_member)
