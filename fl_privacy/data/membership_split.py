"""Who plays which role in a membership experiment: members, non-members and population data.

One sampler serves the federated audit and the PAR-GAN experiment. Candidates (members + non-members)
are shuffled together; which of them are members is the truth, returned apart for the lab.

The federated audit (`audit_split`):
- members: the training records of the target client (`target="client"`) or of every client (`"all"`);
- the auditor's pool: records no client and no warm-up ever trained on, i.e. the federation's holdout
  (`data.holdout_fraction` of the clients' pool, class-stratified) plus the central test split;
- non-members: drawn from the pool with the members' classes, as many per class as there are members of
  that class (members are subsampled where the pool has fewer); or, given `non_members`, that many,
  split over the classes in the members' proportions, every member kept (enough non-members to measure
  a low FPR when the members are few);
- population: the rest of the pool (or a random `population_size` of it), disjoint from every candidate,
  for shadow and reference models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fl_privacy.data.federation import Federation
from fl_privacy.data.images import ImageDataset


@dataclass(frozen=True)
class MembershipSplit:
    """The attacker's inputs (`candidates`, `population`) and, apart, the truth (`is_member`)."""

    candidates: ImageDataset
    population: ImageDataset
    is_member: np.ndarray

    @property
    def members(self) -> ImageDataset:
        return self.candidates.subset(np.flatnonzero(self.is_member))

    @property
    def non_members(self) -> ImageDataset:
        return self.candidates.subset(np.flatnonzero(~self.is_member))


def shuffled_candidates(members: ImageDataset, non_members: ImageDataset, rng: np.random.Generator
                        ) -> tuple[ImageDataset, np.ndarray]:
    """Members and non-members in one order drawn with `rng`, and which positions are members."""
    candidates = ImageDataset(torch.cat([members.images, non_members.images]),
                              torch.cat([members.labels, non_members.labels]))
    is_member = np.concatenate([np.ones(len(members), bool), np.zeros(len(non_members), bool)])
    order = rng.permutation(len(is_member))
    return candidates.subset(order), is_member[order]


def random_split(records: ImageDataset, members: int, rng: np.random.Generator) -> MembershipSplit:
    """`members` random members and as many non-members from `records`; the rest is the population."""
    if 2 * members > len(records):
        raise ValueError(f"{members} members and as many non-members do not fit in {len(records)} records")
    chosen = rng.permutation(len(records))
    candidates, is_member = shuffled_candidates(records.subset(chosen[:members]),
                                                records.subset(chosen[members:2 * members]), rng)
    return MembershipSplit(candidates, records.subset(np.sort(chosen[2 * members:])), is_member)


def member_indices(federation: Federation, target: str, partition: int | None) -> np.ndarray:
    """Indices into the training split of the target's training records."""
    if target == "client":
        assert partition is not None, "a client target names its partition"
        return np.sort(federation.client_indices[int(partition)])
    return np.sort(np.concatenate(federation.client_indices))


def _pool(federation: Federation) -> ImageDataset:
    """Records no model of the federation trained on: the holdout, then the test split."""
    train, test = federation.splits.train, federation.splits.test
    held = train.subset(federation.holdout_indices)
    return ImageDataset(torch.cat([held.images, test.images]), torch.cat([held.labels, test.labels]))


def _stratified_counts(member_labels: np.ndarray, total: int) -> dict[int, int]:
    """`total` split over the members' classes in their proportions (largest remainders)."""
    classes, counts = np.unique(member_labels, return_counts=True)
    exact = counts / counts.sum() * total
    shares = np.floor(exact).astype(int)
    shares[np.argsort(shares - exact)[:total - shares.sum()]] += 1
    return {int(c): int(n) for c, n in zip(classes, shares, strict=True)}


def audit_split(federation: Federation, target: str, partition: int | None, seed: int,
                non_members: int | None = None, population_size: int | None = None) -> MembershipSplit:
    """Members, class-matched non-members and the disjoint population, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    members = federation.splits.train.subset(member_indices(federation, target, partition))
    pool = _pool(federation)
    member_labels, pool_labels = members.labels.numpy(), pool.labels.numpy()
    wanted = None if non_members is None else _stratified_counts(member_labels, non_members)
    chosen_members, chosen_outs = [], []
    for cls in np.unique(member_labels):
        ins, outs = np.flatnonzero(member_labels == cls), np.flatnonzero(pool_labels == cls)
        if wanted is None:
            count = min(len(ins), len(outs))
            chosen_members.append(rng.choice(ins, count, replace=False))
        else:
            count = wanted[int(cls)]
            if count > len(outs):
                raise ValueError(f"the auditor's pool holds {len(outs)} records of class {cls}, "
                                 f"{count} non-members wanted: lower attack.membership.non_members")
            chosen_members.append(ins)
        chosen_outs.append(rng.choice(outs, count, replace=False))
    member_pos, out_pos = np.concatenate(chosen_members), np.concatenate(chosen_outs)
    if len(out_pos) == 0:
        raise ValueError(f"the auditor's pool holds none of the members' classes {np.unique(member_labels)}; "
                         "raise data.holdout_fraction")
    rest = np.setdiff1d(np.arange(len(pool)), out_pos)
    if population_size is not None and population_size < len(rest):
        rest = np.sort(rng.choice(rest, population_size, replace=False))
    candidates, is_member = shuffled_candidates(members.subset(member_pos), pool.subset(out_pos), rng)
    return MembershipSplit(candidates, pool.subset(rest), is_member)
