"""An independent judge of generated images: the oracle classifier and its feature space.

The oracle is trained once, centrally, on the test split — real data that no client and no
warm-up ever trains on — and cached on disk keyed by data set, seed and a digest of its training
data and settings. Its penultimate layer (128 units) gives the features for FID-like measures:
features are projected onto the top principal components of the oracle's own training features,
and Fréchet distances are computed between Gaussian fits in that space.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.distance import pdist
from sklearn.decomposition import PCA
from torch import nn

from fl_privacy.data.datasets import DataSplits, ImageDataset
from fl_privacy.results import save_state_dict
from fl_privacy.training import TrainSettings, evaluate, train

log = logging.getLogger(__name__)


class OracleCNN(nn.Module):
    """Two 3x3 conv + max-pool blocks (32, 64), a 128-unit ReLU layer, a linear head."""

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


@dataclass(frozen=True)
class OracleSettings:
    """`oracle` in the config: its training and the feature space's dimension."""

    epochs: int
    batch_size: int
    lr: float
    components: int
    cache_dir: str

    @classmethod
    def from_cfg(cls, cfg) -> OracleSettings:
        return cls(int(cfg.epochs), int(cfg.batch_size), float(cfg.lr), int(cfg.components),
                   str(cfg.cache_dir))


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


def oracle_training_data(splits: DataSplits) -> ImageDataset:
    """The oracle's training data: the test split, which is never federated training data."""
    return splits.test


def _cache_path(splits: DataSplits, settings: OracleSettings, seed: int) -> Path:
    data = oracle_training_data(splits)
    digest = hashlib.sha256()
    digest.update(data.images.numpy().tobytes())
    digest.update(data.labels.numpy().tobytes())
    digest.update(json.dumps({**asdict(settings), "cache_dir": None}, sort_keys=True).encode())
    folder = Path(settings.cache_dir).expanduser()
    return folder / f"oracle_{splits.name}_seed{seed}_{digest.hexdigest()[:16]}.pt"


def load_or_train_oracle(splits: DataSplits, settings: OracleSettings, seed: int) -> Oracle:
    """The cached oracle for this data and seed, trained and cached first if missing."""
    path = _cache_path(splits, settings, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = OracleCNN(splits.image_shape, splits.num_classes)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        log.info("oracle: loaded %s", path)
    else:
        train(model, oracle_training_data(splits),
              TrainSettings(settings.epochs, settings.batch_size, settings.lr, "adam"), seed=seed)
        save_state_dict(path, model.state_dict())
        log.info("oracle: trained on %d held-out examples, cached at %s",
                 len(oracle_training_data(splits)), path)
    accuracy = evaluate(model, splits.train, splits.num_classes).accuracy
    return Oracle(model, oracle_training_data(splits), accuracy, path)


class FeatureSpace:
    """Oracle features projected onto the top principal components of its training features."""

    def __init__(self, oracle: Oracle, components: int) -> None:
        self.oracle = oracle
        self.pca = PCA(n_components=components).fit(oracle.features(oracle.training_data.images))

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.pca.transform(self.oracle.features(images))


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
