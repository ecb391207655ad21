"""An independent judge of generated images: the oracle classifier and its feature space.

The oracle is trained once, centrally, on the test split — real data that no client and no
warm-up ever trains on — plus as many synthetic noise images labelled as an extra "not data"
class (drawn from `TRAINING_NOISE`; `HELDOUT_NOISE` families, never trained on, measure how well it
rejects noise it was not fitted to), and cached on disk keyed by data set, seed and a digest of its training
data and settings. Its penultimate layer (128 units) gives the features for FID-like measures:
features are projected onto the top principal components of the oracle's own training features,
and Fréchet distances are computed between Gaussian fits in that space.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.distance import pdist
from sklearn.decomposition import PCA
from torch import nn

from fl_privacy.config.schema import OracleSettings
from fl_privacy.data.images import DataSplits, ImageDataset, image_shape_of
from fl_privacy.results import save_torch
from fl_privacy.training import TrainSettings, evaluate, train

log = logging.getLogger(__name__)

ORACLE_VERSION = 3  # bump when the architecture or training changes: old cache entries no longer match


NoiseFamily = Callable[[int, tuple[int, int, int], torch.Generator], torch.Tensor]


def _uniform(count: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(count, *shape, generator=generator)


def _salt(count: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    density = torch.rand(count, 1, 1, 1, generator=generator) * 0.5
    return (torch.rand(count, *shape, generator=generator) < density).float()


def _smooth(count: int, shape: tuple[int, int, int], generator: torch.Generator, cells: int) -> torch.Tensor:
    coarse = torch.rand(count, shape[0], cells, cells, generator=generator)
    return nn.functional.interpolate(coarse, size=shape[1:], mode="bilinear", align_corners=False)


def _gaussian(count: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    centre, spread = torch.rand(2, count, 1, 1, 1, generator=generator)
    return (centre + spread * torch.randn(count, *shape, generator=generator)).clamp(0, 1)


def _coordinates(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(shape[1]).view(1, 1, -1, 1), torch.arange(shape[2]).view(1, 1, 1, -1)


def _grid(count: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    rows, cols = _coordinates(shape)
    period = torch.randint(2, 5, (count, 1, 1, 1), generator=generator)
    phase = torch.randint(0, 4, (count, 2, 1, 1), generator=generator)
    grid = (((rows + phase[:, :1]) % period == 0) & ((cols + phase[:, 1:]) % period == 0)).float()
    return grid.expand(-1, shape[0], -1, -1) * torch.rand(count, 1, 1, 1, generator=generator)


def _stripes(count: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    rows, cols = _coordinates(shape)
    angle, frequency, phase = torch.rand(3, count, 1, 1, 1, generator=generator)
    wave = torch.sin((rows * angle.mul(torch.pi).cos() + cols * angle.mul(torch.pi).sin())
                     * (0.3 + 1.2 * frequency) + 6.3 * phase)
    return ((wave + 1) / 2).expand(-1, shape[0], -1, -1)


def _checker(count: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    rows, cols = _coordinates(shape)
    size = torch.randint(2, 8, (count, 1, 1, 1), generator=generator)
    board = ((rows // size + cols // size) % 2).float()
    return board.expand(-1, shape[0], -1, -1) * torch.rand(count, 1, 1, 1, generator=generator)


# The rejection class is trained on the first families and validated on the second, disjoint ones
# (dot grids among them: the first oracle called the control's dot-grid samples 3s).
TRAINING_NOISE: dict[str, NoiseFamily] = {
    "uniform": _uniform, "salt": _salt, "gaussian": _gaussian,
    "blobs": lambda count, shape, generator: _smooth(count, shape, generator, cells=4)}
HELDOUT_NOISE: dict[str, NoiseFamily] = {"dot_grid": _grid, "stripes": _stripes, "checker": _checker}


def synthetic_noise(count: int, shape: tuple[int, int, int], seed: int,
                    families: dict[str, NoiseFamily] = TRAINING_NOISE) -> torch.Tensor:
    """`count` images that are not data, an equal share from each of `families`, shuffled with `seed`.
    The oracle learns the training families as an extra "not data" class so that it cannot call noise
    a digit (without it, the oracle labels pure noise as one class with confidence ~1)."""
    generator = torch.Generator().manual_seed(seed)
    share = -(-count // len(families))
    images = torch.cat([family(share, shape, generator) for family in families.values()])
    return images[torch.randperm(len(images), generator=generator)[:count]]


def rejection_rates(oracle: Oracle, families: dict[str, NoiseFamily], count: int, seed: int
                    ) -> dict[str, float]:
    """Per noise family, the share of `count` images the oracle puts in its "not data" class."""
    shape = image_shape_of(oracle.training_data.images)
    rejected = oracle.model.head.out_features - 1
    return {name: (oracle.probabilities(family(count, shape, torch.Generator().manual_seed(seed)))
                   .argmax(1) == rejected).float().mean().item()
            for name, family in families.items()}


class OracleCNN(nn.Module):
    """Two 3x3 conv + max-pool blocks (32, 64), a 128-unit ReLU layer, a linear head
    (the data set's classes + the "not data" class)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (height // 4) * (width // 4), 128), nn.ReLU())
        self.head = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class Oracle:
    """A trained oracle, what it was trained on, and its accuracy on data it never saw."""

    model: OracleCNN
    training_data: ImageDataset
    heldout_accuracy: float
    cache_path: Path

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return torch.softmax(self.model(images), dim=1)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        self.model.eval()
        return self.model.features(images).numpy()

    @torch.no_grad()
    def judge(self, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Class probabilities and penultimate features of `images` from one forward pass."""
        self.model.eval()
        features = self.model.features(images)
        return torch.softmax(self.model.head(features), dim=1), features.numpy()


def oracle_training_data(splits: DataSplits) -> ImageDataset:
    """The oracle's real training data: the test split, which is never federated training data."""
    return splits.test


def _with_noise_class(data: ImageDataset, num_classes: int, seed: int) -> ImageDataset:
    noise = synthetic_noise(len(data), image_shape_of(data.images), seed)
    labels = torch.full((len(noise),), num_classes, dtype=data.labels.dtype)
    return ImageDataset(torch.cat([data.images, noise]), torch.cat([data.labels, labels]))


def _cache_path(splits: DataSplits, settings: OracleSettings, seed: int) -> Path:
    data = oracle_training_data(splits)
    digest = hashlib.sha256()
    digest.update(data.images.numpy().tobytes())
    digest.update(data.labels.numpy().tobytes())
    digest.update(json.dumps({**settings.model_dump(include={"epochs", "batch_size", "lr", "components"}),
                            "cache_dir": None, "version": ORACLE_VERSION},
                             sort_keys=True).encode())
    folder = Path(settings.cache_dir).expanduser()
    return folder / f"oracle_{splits.name}_seed{seed}_{digest.hexdigest()[:16]}.pt"


def load_or_train_oracle(splits: DataSplits, settings: OracleSettings, seed: int) -> Oracle:
    """The cached oracle for this data and seed, trained and cached first if missing."""
    path = _cache_path(splits, settings, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = OracleCNN(splits.image_shape, splits.num_classes + 1)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        log.info("oracle: loaded %s", path)
    else:
        train(model, _with_noise_class(oracle_training_data(splits), splits.num_classes, seed),
              TrainSettings(settings.epochs, settings.batch_size, settings.lr, "adam"), seed=seed)
        save_torch(path, model.state_dict())
        log.info("oracle: trained on %d held-out examples and as many noise images, cached at %s",
                 len(oracle_training_data(splits)), path)
    accuracy = evaluate(model, splits.train, splits.num_classes + 1).accuracy
    return Oracle(model, oracle_training_data(splits), accuracy, path)


class FeatureSpace:
    """Oracle features projected onto the top principal components of its training features."""

    def __init__(self, oracle: Oracle, components: int) -> None:
        self.oracle = oracle
        # full SVD: the default picks a randomized solver here, whose result varies from run to run
        self.pca = PCA(n_components=components, svd_solver="full").fit(
            oracle.features(oracle.training_data.images))

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.project(self.oracle.features(images))

    def project(self, features: np.ndarray) -> np.ndarray:
        """Oracle features (from `Oracle.judge`) in this space."""
        return self.pca.transform(features)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b`:
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2).

    tr((S_a S_b)^1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    S_a^1/2 S_b S_a^1/2, which stays stable for the rank-deficient covariances a collapsed
    generator produces (where scipy.linalg.sqrtm fails).
    """
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.sqrt(np.clip(cross, 0, None)).sum())


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of rows (a diversity measure)."""
    return float(pdist(features).mean())
