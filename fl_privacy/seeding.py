"""One `seed` drives everything; independent streams are derived from it by purpose."""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *path: int) -> int:
    """A 31-bit seed for one purpose (e.g. client training in round r of partition p)."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] & 0x7FFFFFFF)


CLIENT_TRAINING = 4
CLIENT_DATA = 5
GAN_ATTACK = 6
GAN_EVALUATION = 7
HOLDOUT = 8
MEMBERSHIP_AUDIT = 9
