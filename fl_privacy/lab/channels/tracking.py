"""Experiment tracking (`tracking=tensorboard|mlflow`, off by default): each round's numbers and the run's
image grids, written into the run directory for the researcher's own tools.

The round recorder hands every `metrics.jsonl` record to `Tracker.log_round` (its one hook); scalars are
the record's numeric leaves, named by their path (`central/accuracy`, `gan_attack/victim_share`, ...), at
step = the round (0 = after warm-up). Images are the PNG grids the run writes: those that appear during a
round (the GAN attack's samples) at that round, the post-run ones (attack grids, the accuracy curve) at
the last round, when the run finishes. The run's config goes along (TensorBoard: a text summary;
MLflow: parameters, dotted keys).

- tensorboard: event files under `run_dir/tensorboard/` (`tensorboard --logdir RUN_DIR/tensorboard`).
- mlflow: a local store in the run directory, `run_dir/mlflow.db` (SQLite) with artifacts under
  `run_dir/mlflow_artifacts/` (`mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db`). MLflow 3's
  plain-folder store (`./mlruns`) is in maintenance mode and refuses to open unless
  MLFLOW_ALLOW_FILE_STORE=true, so the lab uses MLflow's recommended SQLite file.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fl_privacy.config.schema import Settings
from fl_privacy.run_layout import (
    TRACKING_DIRS,
    TRACKING_MLFLOW_ARTIFACTS,
    TRACKING_MLFLOW_DB,
    TRACKING_TENSORBOARD,
)

log = logging.getLogger(__name__)

EXPERIMENT = "fl-privacy"
_ROUND_SUFFIX = re.compile(r"_round_\d+$")


def round_scalars(record: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """A record's finite numeric leaves as (path, value), nested keys joined by '/' (booleans, strings,
    lists and the round number itself left out)."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from round_scalars(value, f"{name}/")
        elif (isinstance(value, int | float) and not isinstance(value, bool) and name != "round"
              and math.isfinite(value)):
            yield name, float(value)


def image_tag(run_dir: Path, path: Path) -> str:
    """A figure's name in the trackers: its path in the run directory without `.png` or a `_round_XXX`
    suffix (the round is the step)."""
    return _ROUND_SUFFIX.sub("", path.relative_to(run_dir).with_suffix("").as_posix())


def read_png(path: Path) -> np.ndarray:
    """An image file as uint8 H x W x 3."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


class Tracker(Protocol):
    def log_round(self, server_round: int, record: dict) -> None: ...

    def finish(self) -> None: ...


class _Base:
    """What both trackers share: finding the run's new PNG grids."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.step = 0
        self._seen: set[Path] = set()

    def new_images(self) -> list[Path]:
        found = sorted(path for path in self.run_dir.rglob("*.png")
                       if path not in self._seen
                       and not any(part in TRACKING_DIRS for part in path.relative_to(self.run_dir).parts))
        self._seen.update(found)
        return found

    def log_round(self, server_round: int, record: dict) -> None:
        self.step = server_round
        self.scalars(server_round, dict(round_scalars(record)))
        for path in self.new_images():
            self.image(image_tag(self.run_dir, path), path, server_round)

    def finish(self) -> None:
        """After the post-run pipelines: their figures at the last round, then close."""
        for path in self.new_images():
            self.image(image_tag(self.run_dir, path), path, self.step)
        self.close()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def image(self, tag: str, path: Path, step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TensorBoardTracker(_Base):
    """Event files under `run_dir/tensorboard/` through PyTorch's `SummaryWriter`."""

    def __init__(self, run_dir: Path, settings: Settings) -> None:
        from torch.utils.tensorboard import SummaryWriter

        super().__init__(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / TRACKING_TENSORBOARD))
        config = json.dumps(settings.model_dump(mode="json"), indent=2)
        self.writer.add_text("config", f"```\n{config}\n```", 0)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # a crashed run keeps its rounds

    def image(self, tag: str, path: Path, step: int) -> None:
        self.writer.add_image(tag, read_png(path), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _dotted(tree: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


class MlflowTracker(_Base):
    """One MLflow run in a SQLite store in the run directory, artifacts beside it."""

    def __init__(self, run_dir: Path, settings: Settings) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        super().__init__(run_dir)
        # The store's schema set-up (once per file) and SQLAlchemy's deprecation notes are MLflow's business.
        for name in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", module="mlflow.store")
        self.client = MlflowClient(tracking_uri=self.tracking_uri(self.run_dir))
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment is not None else self.client.create_experiment(
            EXPERIMENT, artifact_location=(self.run_dir / TRACKING_MLFLOW_ARTIFACTS).resolve().as_uri())
        self.run_id = self.client.create_run(experiment_id, run_name=self.run_dir.name).info.run_id
        params = [Param(key, str(value)[:6000]) for key, value in _dotted(settings.model_dump(mode="json"))]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    @staticmethod
    def tracking_uri(run_dir: Path) -> str:
        """The store's URI (for `MlflowClient(tracking_uri=...)` and `mlflow ui --backend-store-uri`)."""
        return f"sqlite:///{(Path(run_dir) / TRACKING_MLFLOW_DB).resolve()}"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def image(self, tag: str, path: Path, step: int) -> None:
        self.client.log_image(self.run_id, read_png(path), key=tag, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")  # a run that fails before this stays RUNNING


TRACKERS = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker}


def open_tracker(settings: Settings, run_dir: Path) -> Tracker | None:
    """The tracker `settings.tracking` asks for (None when off)."""
    if settings.tracking == "none":
        return None
    tracker = TRACKERS[settings.tracking](run_dir, settings)
    log.info("tracking with %s in %s", settings.tracking, run_dir)
    return tracker
