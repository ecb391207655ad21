"""Who plays which role in a membership-inference audit: members, non-members and population data.

- members: the training records of the target client (`mia.target=client`, `mia.target_partition`) or
  of every client (`mia.target=all`);
- the auditor's pool: the records no client and no warm-up ever trained on, i.e. the federation's
  holdout (`mia.holdout_fraction` of the clients' pool, class-stratified) plus the central test split;
- non-members: drawn from the pool with the members' classes, as many per class as there are members of
  that class (members are subsampled where the pool has fewer);
- population: the rest of the pool, disjoint from every candidate, for shadow and reference models.
Candidates (members + non-members) are shuffled; which of them are members is the truth, returned apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fl_privacy.data.datasets import ImageDataset
from fl_privacy.data.federation import Federation

TARGETS = ("client", "all")


@dataclass(frozen=True)
class AuditData:
    """The attacker's inputs (`candidates`, `population`) and, apart, the truth (`is_member`)."""

    candidates: ImageDataset
    population: ImageDataset
    is_member: np.ndarray


def member_indices(federation: Federation, target: str, partition: int | None) -> np.ndarray:
    """Indices into the training split of the target's training records."""
    if target == "client":
        return np.sort(federation.client_indices[int(partition)])
    return np.sort(np.concatenate(federation.client_indices))


def _pool(federation: Federation) -> ImageDataset:
    """Records no model of the federation trained on: the holdout, then the test split."""
    train, test = federation.splits.train, federation.splits.test
    held = train.subset(federation.holdout_indices)
    return ImageDataset(torch.cat([held.images, test.images]), torch.cat([held.labels, test.labels]))


def audit_data(federation: Federation, target: str, partition: int | None, seed: int) -> AuditData:
    """Members, class-balanced non-members and the disjoint population, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    members = federation.splits.train.subset(member_indices(federation, target, partition))
    pool = _pool(federation)
    member_labels, pool_labels = members.labels.numpy(), pool.labels.numpy()
    chosen_members, chosen_outs = [], []
    for cls in np.unique(member_labels):
        ins, outs = np.flatnonzero(member_labels == cls), np.flatnonzero(pool_labels == cls)
        count = min(len(ins), len(outs))
        chosen_members.append(rng.choice(ins, count, replace=False))
        chosen_outs.append(rng.choice(outs, count, replace=False))
    member_pos, out_pos = np.concatenate(chosen_members), np.concatenate(chosen_outs)
    if len(out_pos) == 0:
        raise ValueError(f"the auditor's pool holds none of the members' classes {np.unique(member_labels)}; "
                         "raise mia.holdout_fraction")
    population = pool.subset(np.setdiff1d(np.arange(len(pool)), out_pos))
    images = torch.cat([members.images[member_pos], pool.images[out_pos]])
    labels = torch.cat([members.labels[member_pos], pool.labels[out_pos]])
    is_member = np.concatenate([np.ones(len(member_pos), bool), np.zeros(len(out_pos), bool)])
    order = rng.permutation(len(is_member))
    return AuditData(ImageDataset(images, labels).subset(order), population, is_member[order])
