"""Your own data in the lab: a folder of images (`data=image_folder`) or a `.npz` file of arrays (`data=npz`),
both named by `data.root`. Every problem is one `ConfigError` naming `data.root` (or the key to change) and
the file, raised while the data are read, before Flower or Ray start.

- `image_folder`: torchvision's `ImageFolder` layout, `data.root/<class name>/<image file>`; classes are
  numbered in sorted folder order. Grey images stay one channel; if any image has colour, all become RGB.
  Images must share one size unless `data.resize=N` resizes every one to N x N. The central test split is
  `data.test_fraction` of each class (like the embedded sets).
- `npz`: arrays `x_train`, `y_train`, `x_test`, `y_test`. Images N x H x W (grey), N x H x W x C or
  N x C x H x W (C = 1 or 3), either uint8 in 0..255 or float in [0, 1]; labels integers 0..K-1 (K = the
  largest label + 1), one per image. Train and test images have one shape.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from fl_privacy.config.schema import DataSettings
from fl_privacy.errors import ConfigError

log = logging.getLogger(__name__)

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
ROOT = "data.root"


def check_source(data: DataSettings) -> None:
    """Cheap checks before anything is loaded: `data.root` exists and is of the right kind."""
    if data.name not in ("image_folder", "npz") or data.root is None:
        return
    root = Path(data.root).expanduser()
    if data.name == "image_folder" and not root.is_dir():
        raise ConfigError(ROOT, data.root, f"no such folder ({root.resolve()}); data=image_folder reads "
                          "data.root/<class>/<image>")
    if data.name == "npz" and not root.is_file():
        raise ConfigError(ROOT, data.root, f"no such file ({root.resolve()}); data=npz reads a .npz with "
                          f"arrays {', '.join(NPZ_ARRAYS)}")


# --- image folders -----------------------------------------------------------------------------------------
def read_image_folder(root: Path, resize: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image under `root/<class>/` as uint8 N x H x W (grey) or N x H x W x 3, their labels, and the
    class names (sorted, as torchvision's `ImageFolder` numbers them)."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(root), loader=lambda path: path)
    except FileNotFoundError as error:  # no class folder, or no image file in them
        raise ConfigError(ROOT, str(root), f"{error}; data=image_folder reads data.root/<class>/<image> "
                          "(.png, .jpg, ...)") from None
    headers = []
    for path, _ in folder.samples:
        try:
            with Image.open(path) as image:
                headers.append((image.mode, image.size))
        except OSError as error:
            raise ConfigError(ROOT, str(root), f"{path} is not a readable image ({error})") from None
    mode = "L" if all(m in GREY_MODES for m, _ in headers) else "RGB"
    sizes = {size for _, size in headers}
    if resize is None and len(sizes) > 1:
        first = folder.samples[0][0]
        odd = next(path for (path, _), (_, size) in zip(folder.samples, headers, strict=True)
                   if size != headers[0][1])
        raise ConfigError("data.resize", None, f"images under {root} differ in size ({first}: "
                          f"{headers[0][1]}, {odd}: {next(s for s in sizes if s != headers[0][1])}, W x H); "
                          "set data.resize=N to resize every image to N x N")
    images = []
    for path, _ in folder.samples:
        with Image.open(path) as image:
            picture = image.convert(mode)
            if resize is not None and picture.size != (resize, resize):
                picture = picture.resize((resize, resize), Image.Resampling.BILINEAR)
            images.append(np.asarray(picture, dtype=np.uint8))
    labels = np.asarray(folder.targets, dtype=np.int64)
    log.info("image_folder %s: %d images, %d classes (%s), %s %s", root, len(labels), len(folder.classes),
             ", ".join(folder.classes), mode, images[0].shape)
    return np.stack(images), labels, list(folder.classes)


def image_folder_arrays(data: DataSettings) -> tuple[np.ndarray, np.ndarray]:
    """`data.root`'s images and labels, checked so that `data.test_fraction` of each class can be held out
    as the test split (`fl_privacy.data.datasets` splits them like the embedded sets)."""
    check_source(data)
    assert data.root is not None
    images, labels, classes = read_image_folder(Path(data.root).expanduser(), data.resize)
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        raise ConfigError(ROOT, data.root, f"class folder {classes[int(counts.argmin())]!r} holds "
                          f"{counts.min()} image(s); every class needs at least 2 (to train and to test)")
    held_out = math.ceil(data.test_fraction * len(labels))  # as scikit-learn's train_test_split counts
    if min(held_out, len(labels) - held_out) < len(classes):
        raise ConfigError("data.test_fraction", data.test_fraction,
                          f"{data.root} has {len(labels)} images in {len(classes)} classes: the train and "
                          f"test splits ({len(labels) - held_out} and {held_out}) must each hold every class")
    return images, labels


# --- .npz arrays -------------------------------------------------------------------------------------------
def _images(name: str, array: np.ndarray, where: str) -> np.ndarray:
    """Checked images as float32 N x H x W or N x H x W x C in [0, 1]."""
    if array.ndim == 4 and array.shape[-1] not in (1, 3) and array.shape[1] in (1, 3):
        array = array.transpose(0, 2, 3, 1)  # N x C x H x W -> N x H x W x C
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)) or not len(array):
        raise ConfigError(ROOT, where, f"{name} has shape {array.shape}; expected N x H x W, N x H x W x C "
                          "or N x C x H x W with C = 1 or 3, N > 0")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ConfigError(ROOT, where, f"{name} has dtype {array.dtype}; expected uint8 (0..255) or float "
                          "(0..1)")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ConfigError(ROOT, where, f"{name} holds floats outside [0, 1] (min {np.nanmin(array):g}, "
                          f"max {np.nanmax(array):g}); scale them to [0, 1] or give uint8")
    return array.astype(np.float32)


def _labels(name: str, array: np.ndarray, count: int, where: str) -> np.ndarray:
    if array.ndim != 1 or len(array) != count:
        raise ConfigError(ROOT, where, f"{name} has shape {array.shape}; expected ({count},), one label per "
                          "image")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_) or array.min() < 0:
        raise ConfigError(ROOT, where, f"{name} must hold integer class labels 0..K-1 (dtype {array.dtype}, "
                          f"min {array.min()})")
    return array.astype(np.int64)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four checked arrays of `path`: images float32 in [0, 1] (grey N x H x W or N x H x W x C),
    labels int64."""
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in NPZ_ARRAYS if name not in archive.files]
            if missing:
                held = ", ".join(archive.files) or "nothing"
                raise ConfigError(ROOT, where, f"has no array {', '.join(missing)} (it holds {held}); "
                                  f"expected {', '.join(NPZ_ARRAYS)}")
            raw = {name: archive[name] for name in NPZ_ARRAYS}
    except (OSError, ValueError) as error:  # not a zip/npz, or an object array (pickles are refused)
        raise ConfigError(ROOT, where, f"is not a readable .npz of plain arrays ({error})") from None
    arrays = {"x_train": _images("x_train", raw["x_train"], where),
              "x_test": _images("x_test", raw["x_test"], where)}
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ConfigError(ROOT, where, f"x_train images are {arrays['x_train'].shape[1:]}, x_test images "
                          f"{arrays['x_test'].shape[1:]}; they must share one shape")
    arrays["y_train"] = _labels("y_train", raw["y_train"], len(arrays["x_train"]), where)
    arrays["y_test"] = _labels("y_test", raw["y_test"], len(arrays["x_test"]), where)
    return arrays


def npz_arrays(data: DataSettings) -> tuple[dict[str, np.ndarray], int]:
    """The checked arrays of the `.npz` file `data.root` and the class count (the largest label + 1)."""
    check_source(data)
    assert data.root is not None
    arrays = read_npz(Path(data.root).expanduser())
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    if num_classes < 2:
        raise ConfigError(ROOT, data.root, "y_train and y_test hold one class only; a classifier needs 2+")
    return arrays, num_classes
