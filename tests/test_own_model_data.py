"""Your own model (`model._target_`), your own data (`data=image_folder`, `data=npz`) and Flower Datasets'
partitioners: built from small fixtures made on the fly, bad input as one line naming the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fl_privacy.config.schema import DataSettings, PartitionSettings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.partition import partition_indices
from fl_privacy.errors import ConfigError
from fl_privacy.lab.preflight import check_settings
from fl_privacy.models import build_model

HERE = __name__  # this module's import name, as a user's model module would be named


class TinyNet(nn.Module):
    """A user's model: the lab passes image_shape and num_classes, the preset passes width."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 4) -> None:
        super().__init__()
        self.image_shape, self.width = image_shape, width
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(image_shape)), width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def not_a_model(image_shape, num_classes):
    return "a string"


def one_line(error: pytest.ExceptionInfo, key: str) -> str:
    assert error.value.key == key
    message = str(error.value)
    assert "\n" not in message
    return message


# --- your own model ----------------------------------------------------------------------------------------
def test_target_model_gets_the_shape_classes_and_the_section_s_other_keys(settings_factory):
    settings = settings_factory(f"model._target_={HERE}.TinyNet", "+model.width=7")
    check_settings(settings)
    model = build_model(settings.model, (3, 6, 5), 4)
    assert isinstance(model, TinyNet) and model.width == 7 and model.image_shape == (3, 6, 5)
    assert model(torch.zeros(2, 3, 6, 5)).shape == (2, 4)
    assert build_model(settings_factory(f"model._target_={HERE}.TinyNet", "model.num_outputs=9").model,
                       (1, 4, 4), 4).head.out_features == 9  # model.num_outputs wins over the data's classes


def test_target_model_keeps_the_lab_s_model_options(settings_factory):
    settings = settings_factory(f"model._target_={HERE}.TinyNet", "model.init=dlg")
    model = build_model(settings.model, (1, 4, 4), 3)
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert weights.abs().max() <= 0.5 and weights.std() > 0.2  # DLG's uniform(-0.5, 0.5), not PyTorch's


@pytest.mark.parametrize("override,expected", [
    ("model._target_=no_such_package.Net", "does not import"),
    (f"model._target_={HERE}.NoSuchNet", "does not import"),
    (f"model._target_={HERE}.HERE", "not a class or function"),
])
def test_a_target_that_does_not_import_fails_before_any_data(settings_factory, override, expected):
    with pytest.raises(ConfigError) as caught:
        check_settings(settings_factory(override))
    assert expected in one_line(caught, "model._target_")


@pytest.mark.parametrize("overrides,expected", [
    ((f"model._target_={HERE}.not_a_model",), "returned a str, not a torch.nn.Module"),
    ((f"model._target_={HERE}.TinyNet", "+model.depth=3"), "depth=3"),  # TinyNet has no depth
])
def test_a_target_that_builds_no_module_names_the_key(settings_factory, overrides, expected):
    with pytest.raises(ConfigError) as caught:
        build_model(settings_factory(*overrides).model, (1, 4, 4), 2)
    assert expected in one_line(caught, "model._target_")


def test_extra_model_keys_need_a_target(settings_factory):
    with pytest.raises(ConfigError) as caught:
        settings_factory("+model.width=3")
    one_line(caught, "model.width")


# --- your own data -----------------------------------------------------------------------------------------
def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def image_folder(tmp_path):
    """Two classes of 4 grey 6 x 5 images each; image k of class c is the constant 10 * (4c + k) + 5."""
    root = tmp_path / "images"
    for label, name in enumerate(("cat", "dog")):
        for k in range(4):
            _write(root / name / f"{k}.png", np.full((5, 6), 10 * (4 * label + k) + 5, dtype=np.uint8))
    return root


def _folder(root, **keys) -> DataSettings:
    return DataSettings(name="image_folder", root=str(root), **{"test_fraction": 0.25, **keys})


def test_image_folder_reads_classes_in_sorted_order(image_folder):
    splits = load_splits(_folder(image_folder), seed=0)
    assert splits.num_classes == 2 and splits.image_shape == (1, 5, 6)
    assert len(splits.train) == 6 and len(splits.test) == 2
    assert sorted(splits.test.labels.tolist()) == [0, 1]  # a quarter of each class held out
    images = torch.cat([splits.train.images, splits.test.images])
    labels = torch.cat([splits.train.labels, splits.test.labels])
    values = torch.round(images[:, 0, 0, 0] * 255).long()
    assert sorted(values.tolist()) == [10 * i + 5 for i in range(8)]
    assert torch.equal(labels, (values - 5) // 40)  # cat = 0, dog = 1 (sorted folder names)
    assert torch.equal(images, images[:, :, :1, :1].expand_as(images))  # every image constant, no resampling


def test_image_folder_turns_all_rgb_when_one_image_has_colour(image_folder):
    _write(image_folder / "dog" / "red.png", np.tile(np.array([200, 0, 0], np.uint8), (5, 6, 1)))
    splits = load_splits(_folder(image_folder), seed=0)
    assert splits.image_shape == (3, 5, 6)
    images = torch.cat([splits.train.images, splits.test.images])
    red = images[(images[:, 0] != images[:, 1]).flatten(1).any(1)]
    assert len(red) == 1 and torch.allclose(red[0, :, 0, 0], torch.tensor([200 / 255, 0.0, 0.0]))


def test_image_folder_sizes_must_agree_unless_resized(image_folder):
    _write(image_folder / "cat" / "big.png", np.zeros((9, 9), np.uint8))
    with pytest.raises(ConfigError) as caught:
        load_splits(_folder(image_folder), seed=0)
    assert "big.png" in one_line(caught, "data.resize")
    assert load_splits(_folder(image_folder, resize=4), seed=0).image_shape == (1, 4, 4)


@pytest.mark.parametrize("problem,expected", [
    ("missing", "no such folder"),
    ("empty", "class folder"),
    ("one_image", "holds 1 image"),
    ("not_an_image", "not a readable image"),
])
def test_bad_image_folders_name_data_root(image_folder, settings_factory, problem, expected):
    root = image_folder
    if problem == "missing":
        root = image_folder.parent / "nowhere"
    elif problem == "empty":
        root = image_folder.parent / "empty"
        root.mkdir()
    elif problem == "one_image":
        _write(image_folder / "eel" / "0.png", np.zeros((5, 6), np.uint8))
    else:
        (image_folder / "cat" / "4.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError) as caught:
        check_settings(settings_factory("data=image_folder", f"data.root={root}"))
        load_splits(_folder(root), seed=0)
    assert expected in one_line(caught, "data.root")


def _npz(tmp_path, **arrays):
    rng = np.random.default_rng(0)
    values = {"x_train": rng.integers(0, 256, (12, 4, 4), dtype=np.uint8), "y_train": np.arange(12) % 3,
              "x_test": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8), "y_test": np.arange(6) % 3}
    values.update(arrays)
    path = tmp_path / "data.npz"
    np.savez(path, **{k: v for k, v in values.items() if v is not None})
    return path, values


def test_npz_keeps_its_own_splits_and_scales_uint8(tmp_path):
    path, arrays = _npz(tmp_path)
    splits = load_splits(DataSettings(name="npz", root=str(path)), seed=0)
    assert splits.num_classes == 3 and splits.image_shape == (1, 4, 4)
    assert torch.equal(splits.train.labels, torch.as_tensor(arrays["y_train"]))
    expected = torch.as_tensor(arrays["x_test"]).float()
    assert torch.allclose(splits.test.images[:, 0] * 255, expected, atol=1e-3)


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_npz_reads_colour_channels_last_or_first(tmp_path, layout):
    rng = np.random.default_rng(1)
    train, test = rng.random((5, 6, 7, 3)).astype(np.float32), rng.random((2, 6, 7, 3)).astype(np.float32)
    if layout == "nchw":
        train, test = train.transpose(0, 3, 1, 2), test.transpose(0, 3, 1, 2)
    path, _ = _npz(tmp_path, x_train=train, x_test=test, y_train=np.arange(5) % 2, y_test=np.arange(2))
    splits = load_splits(DataSettings(name="npz", root=str(path)), seed=0)
    assert splits.image_shape == (3, 6, 7)
    expected = train if layout == "nchw" else train.transpose(0, 3, 1, 2)
    assert torch.equal(splits.train.images, torch.as_tensor(expected))


@pytest.mark.parametrize("arrays,expected", [
    ({"y_test": None}, "has no array y_test"),
    ({"y_train": np.arange(11) % 3}, "y_train has shape (11,); expected (12,)"),
    ({"y_train": (np.arange(12) % 3).astype(float)}, "integer class labels"),
    ({"x_train": np.zeros((12, 4, 4, 5), np.uint8)}, "x_train has shape (12, 4, 4, 5)"),
    ({"x_test": np.zeros((6, 5, 4), np.uint8)}, "must share one shape"),
    ({"x_train": np.full((12, 4, 4), 2.0)}, "floats outside [0, 1]"),
])
def test_bad_npz_arrays_name_data_root_and_the_array(tmp_path, arrays, expected):
    path, _ = _npz(tmp_path, **arrays)
    with pytest.raises(ConfigError) as caught:
        load_splits(DataSettings(name="npz", root=str(path)), seed=0)
    message = one_line(caught, "data.root")
    assert expected in message and str(path) in message


def test_npz_missing_or_unreadable_file(tmp_path, settings_factory):
    with pytest.raises(ConfigError) as caught:
        check_settings(settings_factory("data=npz", f"data.root={tmp_path / 'none.npz'}"))
    assert "no such file" in one_line(caught, "data.root")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ConfigError) as caught:
        load_splits(DataSettings(name="npz", root=str(tmp_path / "text.npz")), seed=0)
    assert "not a readable .npz" in one_line(caught, "data.root")


@pytest.mark.parametrize("overrides,key", [
    (("data.root=./data",), "data.root"),  # the embedded default reads no files: not silently ignored
    (("data=skimage_photos", "data.root=/tmp"), "data.root"),
    (("data=npz",), "data.root"),
    (("data=mnist_offline", "data.resize=8"), "data.resize"),
])
def test_data_keys_that_would_be_ignored_are_refused(settings_factory, overrides, key):
    with pytest.raises(ConfigError) as caught:
        settings_factory(*overrides)
    one_line(caught, key)


# --- Flower Datasets' partitioners -------------------------------------------------------------------------
LABELS = np.repeat(np.arange(5), 30)[np.random.default_rng(2).permutation(150)]


def _parts(name: str, seed: int = 0, **keys) -> list[np.ndarray]:
    return partition_indices(LABELS, 4, PartitionSettings(name=name, **keys), seed)


def test_fds_iid_deals_exactly_the_hand_written_iid_partition():
    for seed in (0, 1):
        assert all(np.array_equal(a, b) for a, b in zip(_parts("iid", seed), _parts("fds_iid", seed),
                                                        strict=True))


@pytest.mark.parametrize("name", ["fds_iid", "fds_dirichlet", "fds_pathological"])
def test_fds_partitions_are_disjoint_seeded_and_cover_their_rows(name):
    parts = _parts(name, min_size=5)
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)  # disjoint
    if name != "fds_pathological":  # pathological drops classes no client is assigned
        assert len(joined) == len(LABELS)
    assert all(np.array_equal(a, b) for a, b in zip(parts, _parts(name, min_size=5), strict=True))
    if name != "fds_pathological":  # first-deterministic assignment: same classes, other rows per seed
        assert not all(np.array_equal(a, b) for a, b in zip(parts, _parts(name, 1, min_size=5), strict=True))


def test_fds_pathological_gives_each_client_its_classes():
    parts = _parts("fds_pathological", classes_per_client=2)
    assert [len(np.unique(LABELS[p])) for p in parts] == [2, 2, 2, 2]
    assert all(i in LABELS[p] for i, p in enumerate(parts))  # first-deterministic: client i gets class i


def test_fds_dirichlet_min_size_out_of_reach_names_the_key():
    with pytest.raises(ConfigError) as caught:
        _parts("fds_dirichlet", min_size=40, alpha=0.05)
    one_line(caught, "partition.min_size")


def test_image_folder_too_small_to_hold_out_every_class_names_test_fraction(image_folder):
    with pytest.raises(ConfigError) as caught:
        load_splits(_folder(image_folder, test_fraction=0.1), seed=0)  # 1 of 8 images cannot hold 2 classes
    assert "train and test splits (7 and 1)" in one_line(caught, "data.test_fraction")
