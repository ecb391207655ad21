"""Who holds what: the server's warm-up set and each client's partition, from one seed."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from fl_privacy.config.schema import FederationSettings
from fl_privacy.data.canaries import draw_canaries
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.images import DataSplits, ImageDataset
from fl_privacy.data.partition import partition_indices
from fl_privacy.seeding import Stream, derive_seed, stream_rng


@dataclass(frozen=True)
class LocalData:
    """What one node holds: its partition and where each record sits in the training split (for the lab's
    truth hook), and how many classes the task has. Nothing of any other node's."""

    dataset: ImageDataset
    indices: np.ndarray
    num_classes: int

    def draw(self, count: int | None, rng: np.random.Generator) -> tuple[ImageDataset, np.ndarray]:
        """`count` records drawn with `rng` (all when None or larger), in training-split order, and their
        training-split indices."""
        if count is None or count >= len(self.indices):
            return self.dataset, self.indices
        chosen = np.sort(rng.choice(self.indices, int(count), replace=False))
        order = np.argsort(self.indices)
        return self.dataset.subset(order[np.searchsorted(self.indices[order], chosen)]), chosen


@dataclass(frozen=True)
class Federation:
    """The data of one experiment: splits, the warm-up set and the client partitions.

    Index arrays point into `splits.train`. Warm-up, client and held-out data are disjoint; classes in
    `data.exclude_classes` are in none of them (they stay in the test split), those in
    `data.warmup_exclude_classes` / `data.client_exclude_classes` only out of the warm-up / every client.
    `holdout_indices` is the share `data.holdout_fraction` kept out of every client for the
    membership-inference auditor (empty by default).
    """

    splits: DataSplits
    warmup_indices: np.ndarray
    client_indices: list[np.ndarray]
    holdout_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the DP audit's canaries (`data.canaries`): indices into `splits.train`, and which the target holds
    canary_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    canary_included: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # the GAN record-level test (`data.record_split`): members stay in the clients' pool (unless
    # `data.client_exclude_classes` removes them), non-members are in no client, warm-up or holdout
    record_members: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    record_nonmembers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def warmup(self) -> ImageDataset:
        return self.splits.train.subset(self.warmup_indices)

    def client_data(self, partition_id: int) -> ImageDataset:
        return self.splits.train.subset(self.client_indices[partition_id])

    def local_data(self, partition_id: int) -> LocalData:
        """The node's own data, the only data a client role receives."""
        return LocalData(self.client_data(partition_id), self.client_indices[partition_id],
                         self.splits.num_classes)

    def client_classes(self, partition_id: int) -> list[int]:
        return sorted(set(self.splits.train.labels[self.client_indices[partition_id]].tolist()))


def _draw_warmup(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (warm-up, pool): `fraction` of the examples drawn at random with the seed."""
    order = stream_rng(seed, Stream.WARMUP).permutation(len(labels))
    cut = int(round(fraction * len(labels)))
    return np.sort(order[:cut]), np.sort(order[cut:])


def _draw_holdout(pool: np.ndarray, labels: np.ndarray, fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Split `pool` into (clients' pool, held out): a class-stratified `fraction`, drawn with the seed."""
    if fraction == 0:
        return pool, pool[:0]
    kept, held = train_test_split(pool, test_size=fraction, stratify=labels[pool],
                                  random_state=derive_seed(seed, Stream.HOLDOUT))
    return np.sort(kept), np.sort(held)


def _without(indices: np.ndarray, labels: np.ndarray, classes: list[int]) -> np.ndarray:
    return indices[~np.isin(labels[indices], classes)]


def _split_records(pool: np.ndarray, labels: np.ndarray, settings: FederationSettings
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clients' pool, members, non-members) of `data.record_split`: a `fraction` of each split class's
    pool records is held out as non-members, drawn with the seed; the rest are the members."""
    split = settings.data.record_split
    chosen = pool[np.isin(labels[pool], split.classes)]
    if not len(chosen):
        return pool, pool[:0], pool[:0]
    members, nonmembers = train_test_split(chosen, test_size=split.fraction, stratify=labels[chosen],
                                           random_state=derive_seed(settings.seed, Stream.RECORD_SPLIT))
    return np.setdiff1d(pool, nonmembers), np.sort(members), np.sort(nonmembers)


def build_federation(settings: FederationSettings) -> Federation:
    """Load the data and split it between the server's warm-up set, the clients and the auditor's holdout."""
    splits = load_splits(settings.data, settings.seed)
    labels = splits.train.labels.numpy()
    allowed = np.flatnonzero(~np.isin(labels, list(settings.data.exclude_classes)))
    warmup_pos, pool_pos = _draw_warmup(labels[allowed], settings.warmup_fraction, settings.seed)
    pool, holdout = _draw_holdout(allowed[pool_pos], labels, settings.data.holdout_fraction, settings.seed)
    pool, members, nonmembers = _split_records(pool, labels, settings)
    pool = _without(pool, labels, settings.data.client_exclude_classes)
    warmup = _without(allowed[warmup_pos], labels, settings.data.warmup_exclude_classes)
    canaries = draw_canaries(splits, pool, settings.data.canaries, settings.seed) \
        if settings.data.canaries.count and settings.data.canaries.kind != "dirac" else None
    if canaries is not None:
        splits, pool = canaries.splits, canaries.pool
    parts = partition_indices(labels[pool], settings.num_clients, settings.partition,
                              settings.seed)
    clients = [pool[p] for p in parts]
    if canaries is None:
        return Federation(splits, warmup, clients, holdout, record_members=members,
                          record_nonmembers=nonmembers)
    target = settings.data.canaries.partition
    clients[target] = np.sort(np.concatenate([clients[target], canaries.indices[canaries.included]]))
    return Federation(splits, warmup, clients, holdout, canaries.indices, canaries.included, members,
                      nonmembers)


@functools.lru_cache(maxsize=2)
def _cached(key: str) -> Federation:
    return build_federation(FederationSettings.model_validate_json(key))


def cached_federation(settings: FederationSettings) -> Federation:
    """`build_federation`, memoised per process on the settings that decide it: client actors reuse it."""
    return _cached(settings.model_dump_json())
