"""Two independent judges of generated images, trained once and shared by every run they score.

Why: a judge trained per run seed makes every arm a different instrument, and a share divided by the
judge's share on real images can exceed 1, so it saturates. Here:
- the judges' training data is drawn with `evaluation.oracle.judge_seed`, a seed independent of the runs'
  seeds: `JUDGE_FRACTION` of every class of the data set (the data set's own test split for torchvision
  sets), split in two disjoint, class-stratified halves;
- judge "oracle_cnn" (`OracleCNN`: 3x3 convolutions, max-pooling, ReLU) trains on half 0 and judge "lenet"
  (`LeNetJudge`: 5x5 convolutions, average pooling, tanh) on half 1, each with its own seed derived from
  the judge seed; both learn the extra "not data" class on synthetic noise (`oracle.TRAINING_NOISE`);
- each is cached once, keyed by data set, architecture, judge seed and split; the file carries the same
  facts and a judge whose facts differ from what is asked (a cache copied from another data set or
  architecture) is refused with one line (`ConfigError`), never reused;
- features are standardised with the statistics of the judge's own real training images (per unit mean and
  standard deviation, the latter at least `SCALE_FLOOR` of the median unit's), so distances and KID are in
  units of the real data's spread, for every run alike;
- a judge's ceiling is its victim share on real victim images it never trained on (`Judge.trained_on`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from fl_privacy.config.schema import DataSettings, OracleSettings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.images import ImageDataset, image_shape_of
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.oracle import Oracle, OracleCNN, synthetic_noise
from fl_privacy.results import save_torch
from fl_privacy.training import TrainSettings, evaluate, train

log = logging.getLogger(__name__)

JUDGE_VERSION = 1  # bump when an architecture, the split or the training changes
JUDGE_FRACTION = 0.4  # offline sets: share of every class the two judges train on (half each)
CACHE_KEY = "evaluation.oracle.cache_dir"
# A unit's spread on real data, for standardising, is at least this share of the median unit's: ReLU units
# that real data leaves (nearly) silent would otherwise be amplified up to 50x and dominate every distance
# (docs/gan_attack.md, "Standardised features").
SCALE_FLOOR = 0.25


class LeNetJudge(nn.Module):
    """LeNet-5 style: two 5x5 conv + average-pool blocks (6, 16 channels) with tanh, then 120 and 84 tanh
    units (the features) and a linear head. Built differently from `OracleCNN` on purpose."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels = image_shape[0]
        convolutions = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten())
        with torch.no_grad():
            width = convolutions(torch.zeros(1, *image_shape)).shape[1]
        self.body = nn.Sequential(convolutions, nn.Linear(width, 120), nn.Tanh(),
                                  nn.Linear(120, 84), nn.Tanh())
        self.head = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


ARCHITECTURES: dict[str, type[OracleCNN] | type[LeNetJudge]] = {"oracle_cnn": OracleCNN, "lenet": LeNetJudge}
# (architecture, half of the judges' split it trains on); the first is the primary judge
JUDGES: tuple[tuple[str, int], ...] = (("oracle_cnn", 0), ("lenet", 1))


def fingerprints(images: torch.Tensor) -> list[bytes]:
    """One digest per image (exact content), to tell which real images a judge trained on."""
    array = images.detach().cpu().numpy().astype(np.float32)
    return [hashlib.sha1(row.tobytes()).digest() for row in array]


@dataclass
class Judge:
    """A trained judge, the real images it trained on, and its standardised feature space."""

    name: str
    model: nn.Module
    training: ImageDataset
    heldout_accuracy: float
    cache_path: Path
    components: int

    def __post_init__(self) -> None:
        self._seen = set(fingerprints(self.training.images))
        raw = self._raw_features(self.training.images)
        self.scaler = StandardScaler().fit(raw)
        spread = np.sqrt(self.scaler.var_)
        floor = SCALE_FLOOR * float(np.median(spread[spread > 0])) if (spread > 0).any() else 1.0
        self.scaler.scale_ = np.maximum(spread, floor)  # a unit real data barely moves is not amplified
        # full SVD: reproducible (the randomized default varies from run to run)
        self.pca = PCA(n_components=min(self.components, raw.shape[1]), svd_solver="full").fit(
            self.scaler.transform(raw))

    @property
    def num_classes(self) -> int:
        """The data classes (the head has one more: "not data")."""
        head = self.model.head
        assert isinstance(head, nn.Linear)
        return head.out_features - 1

    @torch.no_grad()
    def _raw_features(self, images: torch.Tensor) -> np.ndarray:
        self.model.eval()
        return self.model.features(images).numpy().astype(np.float64)  # type: ignore[operator]

    @torch.no_grad()
    def judge(self, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Class probabilities and standardised features of `images` from one forward pass."""
        self.model.eval()
        raw = self.model.features(images)  # type: ignore[operator]
        probabilities = torch.softmax(self.model.head(raw), dim=1)  # type: ignore[operator]
        return probabilities, self.scaler.transform(raw.numpy().astype(np.float64))

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Features standardised with the judge's real training images' per-unit mean and spread (floored)."""
        return self.judge(images)[1]

    def project(self, standardised: np.ndarray) -> np.ndarray:
        """Standardised features onto their top principal components (for Fréchet distances)."""
        return self.pca.transform(standardised)

    def share(self, images: torch.Tensor, victim: int) -> float:
        """Share of `images` this judge puts in class `victim`."""
        return float((self.judge(images)[0].argmax(1) == victim).float().mean())

    def trained_on(self, images: torch.Tensor) -> np.ndarray:
        """Per image, whether it is (exactly) one of the judge's training images."""
        return np.array([digest in self._seen for digest in fingerprints(images)], dtype=bool)

    def ceiling(self, real_victim: torch.Tensor, victim: int) -> tuple[float, int]:
        """The judge's victim share on the real victim images it never trained on, and their number."""
        unseen = real_victim[torch.as_tensor(~self.trained_on(real_victim))]
        return (self.share(unseen, victim) if len(unseen) else float("nan")), len(unseen)


def judge_split(data: DataSettings, judge_seed: int) -> tuple[ImageDataset, ImageDataset, ImageDataset, int]:
    """The judges' two disjoint training halves, the images neither trains on, and the number of classes,
    all drawn with `judge_seed` (never with a run's seed)."""
    splits = load_splits(data.model_copy(update={"test_fraction": JUDGE_FRACTION}), judge_seed)
    labels = splits.test.labels.numpy()
    first, second = train_test_split(np.arange(len(labels)), test_size=0.5, stratify=labels,
                                     random_state=judge_seed)
    return (splits.test.subset(np.sort(first)), splits.test.subset(np.sort(second)), splits.train,
            splits.num_classes)


def _digest(data: ImageDataset, settings: OracleSettings) -> str:
    digest = hashlib.sha256()
    digest.update(data.images.numpy().tobytes())
    digest.update(data.labels.numpy().tobytes())
    digest.update(json.dumps({**settings.model_dump(include={"epochs", "batch_size", "lr"}),
                              "version": JUDGE_VERSION}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def judge_cache_path(settings: OracleSettings, dataset: str, architecture: str, half: int) -> Path:
    """Where the judge of (data set, architecture, judge seed, split half) is cached."""
    folder = Path(settings.cache_dir).expanduser()
    return folder / f"judge_{dataset}_{architecture}_seed{settings.judge_seed}_half{half}.pt"


def _identity(dataset: str, architecture: str, judge_seed: int, half: int, digest: str) -> dict[str, object]:
    return {"dataset": dataset, "architecture": architecture, "judge_seed": judge_seed,
            "split": f"half{half}_of_{JUDGE_FRACTION}", "data_digest": digest, "version": JUDGE_VERSION}


def read_judge_cache(path: Path, expected: dict[str, object]) -> dict[str, torch.Tensor]:
    """The weights cached at `path`, or a one-line `ConfigError` when the file was made for another data
    set, architecture, judge seed, split or training data (it is never silently reused)."""
    try:
        saved = torch.load(path, weights_only=True)
        found = dict(saved["identity"])
        weights = saved["weights"]
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError) as error:
        raise ConfigError(CACHE_KEY, str(path.parent), f"{path.name} is not a judge cache "
                          f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
                          "delete it or point cache_dir elsewhere") from None
    differs = [f"{key} {found.get(key)!r} (expected {value!r})" for key, value in expected.items()
               if found.get(key) != value]
    if differs:
        raise ConfigError(CACHE_KEY, str(path.parent), f"{path.name} holds a judge of another "
                          f"{', '.join(differs)}; refusing to reuse it: delete it or point cache_dir "
                          "elsewhere")
    return weights


def load_or_train_judge(data: ImageDataset, heldout: ImageDataset, num_classes: int, dataset: str,
                        architecture: str, half: int, settings: OracleSettings) -> Judge:
    """The cached judge of this data set, architecture, judge seed and split (trained, cached if missing)."""
    path = judge_cache_path(settings, dataset, architecture, half)
    expected = _identity(dataset, architecture, settings.judge_seed, half, _digest(data, settings))
    seed = settings.judge_seed * 10 + half  # its own seed: initialisation, noise images, batch order
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ARCHITECTURES[architecture](image_shape_of(data.images), num_classes + 1)
    if path.exists():
        model.load_state_dict(read_judge_cache(path, expected))
        log.info("judge %s: loaded %s", architecture, path)
    else:
        noise = synthetic_noise(len(data), image_shape_of(data.images), seed)
        with_noise = ImageDataset(torch.cat([data.images, noise]),
                                  torch.cat([data.labels, torch.full((len(noise),), num_classes,
                                                                     dtype=data.labels.dtype)]))
        with torch.random.fork_rng():
            train(model, with_noise, TrainSettings(settings.epochs, settings.batch_size, settings.lr, "adam"),
                  seed=seed)
        save_torch(path, {"identity": expected, "weights": model.state_dict()})
        log.info("judge %s: trained on %d real images and as many noise images, cached at %s",
                 architecture, len(data), path)
    accuracy = evaluate(model, heldout, num_classes + 1).accuracy
    return Judge(architecture, model, data, accuracy, path, settings.components)


def load_judges(data: DataSettings, settings: OracleSettings) -> list[Judge]:
    """Both judges (`JUDGES`, the primary first) for data set `data.name`, trained once per judge seed."""
    first, second, heldout, num_classes = judge_split(data, settings.judge_seed)
    return [load_or_train_judge((first, second)[half], heldout, num_classes, data.name, architecture, half,
                                settings)
            for architecture, half in JUDGES]


def primary_oracle(data: DataSettings, settings: OracleSettings) -> Oracle:
    """The primary judge as an `Oracle` (same architecture) for the in-run monitor: one instrument, trained
    once from the judge seed, for every run and seed instead of an oracle per run seed."""
    first, _, heldout, num_classes = judge_split(data, settings.judge_seed)
    architecture, half = JUDGES[0]
    judge = load_or_train_judge(first, heldout, num_classes, data.name, architecture, half, settings)
    assert isinstance(judge.model, OracleCNN)
    return Oracle(judge.model, judge.training, judge.heldout_accuracy, judge.cache_path)


def agreement(first: torch.Tensor, second: torch.Tensor, victim: int) -> dict[str, float]:
    """How two judges' verdicts ("victim class or not") on the same samples agree: the share of samples on
    which they agree and Cohen's kappa (agreement beyond what their marginal shares give by chance;
    NaN when both call every sample the same)."""
    from sklearn.metrics import cohen_kappa_score

    a = (first.argmax(1) == victim).numpy()
    b = (second.argmax(1) == victim).numpy()
    same = bool((a == a[0]).all() and (b == a[0]).all())
    kappa = float("nan") if same else float(cohen_kappa_score(a, b))
    return {"agree": float((a == b).mean()), "cohen_kappa": kappa}
