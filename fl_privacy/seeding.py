"""One `seed` drives everything: every random draw comes from a named stream derived from it here.

Each purpose has its own stream id (unique; tests/test_seeding.py checks), and a stream is split further
by a path such as (round, partition). `stream_rng` gives a numpy Generator, `derive_seed` a 31-bit seed
for torch generators. Nothing else in the package derives seeds.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, cast

import numpy as np


class Stream(IntEnum):
    """The purposes random draws serve. Ids 1-9 are those the measured results were produced with."""

    PARTITION = 1            # who holds which example
    WARMUP = 2               # the server's warm-up draw
    CLIENT_SAMPLING = 3      # which clients train in a round
    CLIENT_TRAINING = 4      # a client's batch order and dropout in a round
    CLIENT_DATA = 5          # a client's examples in a round (examples_per_round, FedSGD batches)
    GAN_ATTACK = 6           # the GAN adversary's generator
    GAN_EVALUATION = 7       # the oracle's latent batch and real reference images
    HOLDOUT = 8              # the membership auditor's holdout
    MEMBERSHIP_AUDIT = 9     # the audit's candidates
    PAR_GAN = 10             # the PAR-GAN experiment's members, training and samples
    REPRESENTATION_INVERSION = 11  # the images whose representations are inverted
    PHOTO_CROPS = 12         # crops of the scikit-image photos data set
    DP_NOISE = 13            # the Gaussian noise of DP-SGD
    CANARIES = 14            # the DP audit's canaries: which records, their labels, which are inserted
    RECORD_SPLIT = 15        # the GAN record-level test's members and non-members
    CANARY_CLIENTS = 16      # the federated audit's canary directions (inserted and fresh)


def stream_rng(seed: int, stream: Stream, *path: int) -> np.random.Generator:
    """A numpy Generator for `stream` (split by `path`, e.g. the round)."""
    return np.random.default_rng([seed, int(stream), *path])


def derive_seed(seed: int, stream: Stream, *path: int) -> int:
    """A 31-bit seed for one purpose (e.g. client training in round r of partition p)."""
    return int(np.random.SeedSequence([seed, int(stream), *path]).generate_state(1)[0] & 0x7FFFFFFF)


def reference_models_seed(auditor_seed: int, online: bool) -> int:
    """The seed of one set of the auditor's shadow/reference models (offline, or online LiRA's own set).

    The auditor's randomness is its own (`attack.membership.seed`), not the lab's. This arithmetic and
    `reference_model_seeds` are the ones the measured membership results used."""
    return auditor_seed + (10_000 if online else 0)


def reference_model_seeds(set_seed: int, index: int) -> tuple[int, int]:
    """(initialisation, training) seeds of the `index`-th model of a set (unique for up to 1000 models)."""
    return set_seed + 1000 * (index + 1), set_seed + index


def rng_state() -> dict[str, Any]:
    """This process's global torch and NumPy RNG states as tensors and numbers (a checkpoint keeps the
    server's: Flower's central-DP noise draws from NumPy's global generator)."""
    import torch

    kind, keys, position, has_gauss, cached = cast(tuple, np.random.get_state(legacy=True))
    return {"torch": torch.get_rng_state(), "numpy": {"kind": kind, "keys": torch.from_numpy(keys.copy()),
                                                      "position": position, "has_gauss": has_gauss,
                                                      "cached_gaussian": cached}}


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global RNG states `rng_state` returned."""
    import torch

    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy(), int(numpy["position"]),
                         int(numpy["has_gauss"]), float(numpy["cached_gaussian"])))


def reference_client_seed(train_seed: int, server_round: int, partition: int) -> int:
    """The training seed of one client in one round of a federated reference model's simulation."""
    state = np.random.SeedSequence([train_seed, server_round, partition]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)
