"""Flower Datasets' partitioners (`flwr-datasets`) as extra partition choices: fds_iid, fds_dirichlet,
fds_pathological. They run offline on the lab's in-memory pool: its labels become a Hugging Face
`datasets.Dataset` built with `Dataset.from_dict` (no hub, no download, no cache file), and each client's
rows map back to pool indices.

They do not replace the hand-written `iid` / `dirichlet` / `one_class` (`fl_privacy.data.partition`):
their random streams differ, so the built-in presets' pinned numbers (tests/golden) would change.
Optional dependency: `pip install 'fl-privacy[partitioners]'`.
"""

from __future__ import annotations

import warnings

import numpy as np

from fl_privacy.config.schema import PartitionSettings
from fl_privacy.errors import ConfigError


def _partitioner(name: str, num_clients: int, partition: PartitionSettings, seed: int):
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, PathologicalPartitioner

    if name == "fds_iid":
        return IidPartitioner(num_partitions=num_clients)
    if name == "fds_dirichlet":
        return DirichletPartitioner(num_partitions=num_clients, partition_by="label",
                                    alpha=float(partition.alpha), min_partition_size=partition.min_size,
                                    self_balancing=False, shuffle=True, seed=seed)
    return PathologicalPartitioner(num_partitions=num_clients, partition_by="label",
                                   num_classes_per_partition=partition.classes_per_client,
                                   class_assignment_mode="first-deterministic", shuffle=True, seed=seed)


def fds_partition(labels: np.ndarray, num_clients: int, partition: PartitionSettings,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Pool indices per client from Flower Datasets' partitioner `partition.name` (seeded from `rng`;
    fds_iid deals a permutation drawn from `rng` in contiguous shards, as IidPartitioner shards in order)."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    order = rng.permutation(len(labels)) if partition.name == "fds_iid" else np.arange(len(labels))
    table = Dataset.from_dict({"label": np.asarray(labels)[order].tolist(), "index": order.tolist()})
    seed = int(rng.integers(2**31 - 1))
    partitioner = _partitioner(partition.name, num_clients, partition, seed)
    partitioner.dataset = table
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Dirichlet redraws, unused classes: checked below
            parts = [np.asarray(partitioner.load_partition(client)["index"], dtype=np.int64)
                     for client in range(num_clients)]
    except ValueError as error:
        key = {"fds_dirichlet": "partition.min_size", "fds_pathological": "partition.classes_per_client"
               }.get(partition.name, "simulation.num_clients")
        value = {"partition.min_size": partition.min_size,
                 "partition.classes_per_client": partition.classes_per_client}.get(key, num_clients)
        raise ConfigError(key, value, f"partition={partition.name}: Flower Datasets says: "
                          f"{str(error).splitlines()[0]}") from None
    return [np.sort(part) for part in parts]
