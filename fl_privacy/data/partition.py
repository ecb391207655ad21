"""Split the federated training pool among clients: one_class, dirichlet, iid.

Every partitioner takes the pool's labels and returns one index array per client; the arrays
are disjoint, and together they cover the pool (one_class may leave unowned classes out).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fl_privacy.config.schema import PartitionSettings
from fl_privacy.data.fds_partition import fds_partition
from fl_privacy.errors import ConfigError
from fl_privacy.seeding import Stream, stream_rng


def _one_class(labels: np.ndarray, num_clients: int, partition: PartitionSettings,
               rng: np.random.Generator) -> list:
    """Client i holds class i; with more clients than classes, classes are split evenly."""
    classes = np.unique(labels)
    owners: dict[int, list[int]] = {}
    for client in range(num_clients):
        owners.setdefault(int(classes[client % len(classes)]), []).append(client)
    parts: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * num_clients
    for cls, clients in owners.items():
        members = rng.permutation(np.flatnonzero(labels == cls))
        if len(members) < len(clients):
            raise ConfigError(
                "simulation.num_clients", num_clients,
                f"partition=one_class gives class {cls} ({len(members)} examples) to "
                f"{len(clients)} clients; use fewer clients",
            )
        for client, chunk in zip(clients, np.array_split(members, len(clients)), strict=True):
            parts[client] = np.sort(chunk)
    return parts


def _dirichlet(labels: np.ndarray, num_clients: int, partition: PartitionSettings,
               rng: np.random.Generator) -> list:
    """Each class is shared among clients in proportions drawn from Dirichlet(alpha)."""
    min_size = partition.min_size
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for cls in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(num_clients, float(partition.alpha)))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(
        "partition.min_size", min_size,
        f"1000 Dirichlet(alpha={partition.alpha}) draws all left a client with fewer examples; "
        "lower partition.min_size, raise partition.alpha or use fewer clients",
    )


def _iid(labels: np.ndarray, num_clients: int, partition: PartitionSettings,
         rng: np.random.Generator) -> list:
    """Shuffle and deal evenly."""
    order = rng.permutation(len(labels))
    return [np.sort(chunk) for chunk in np.array_split(order, num_clients)]


PARTITIONERS: dict[str, Callable] = {"one_class": _one_class, "dirichlet": _dirichlet, "iid": _iid,
                                     # Flower Datasets' (fl_privacy/data/fds_partition.py)
                                     "fds_iid": fds_partition, "fds_dirichlet": fds_partition,
                                     "fds_pathological": fds_partition}


def partition_indices(labels: np.ndarray, num_clients: int, partition: PartitionSettings, seed: int
                      ) -> list[np.ndarray]:
    """Indices into `labels` for each client, deterministic for a seed."""
    rng = stream_rng(seed, Stream.PARTITION)
    parts = PARTITIONERS[partition.name](np.asarray(labels), num_clients, partition, rng)
    if partition.name != "one_class" and min(len(p) for p in parts) == 0:
        raise ConfigError("simulation.num_clients", num_clients,
                          f"partition={partition.name} leaves a client with no data; use fewer clients")
    return parts
