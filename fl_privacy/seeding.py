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
# Streams 8 and 9 each serve two experiments that never share a run (PAR-GAN / the membership holdout,
# representation inversion / the membership audit); they were measured with these ids, so they keep them.
PAR_GAN = 8
REPRESENTATION_INVERSION = 9
HOLDOUT = 8
MEMBERSHIP_AUDIT = 9
