"""Data sets (offline and torchvision), train/test splits and client partitions."""

from fl_privacy.data.datasets import DATASETS, DataSplits, ImageDataset, load_splits
from fl_privacy.data.federation import Federation, build_federation
from fl_privacy.data.partition import PARTITIONERS, partition_indices

__all__ = [
    "DATASETS",
    "PARTITIONERS",
    "DataSplits",
    "Federation",
    "ImageDataset",
    "build_federation",
    "load_splits",
    "partition_indices",
]
