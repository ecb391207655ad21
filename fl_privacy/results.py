"""Files a run leaves behind: metrics.jsonl, summary.json, the final model. Writes are atomic."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used, so reading results (e.g. the report) stays light
    import torch

GAN_GENERATOR_FILE = "gan/generator.pt"
"""Where the GAN adversary leaves its latest generator for the evaluation (relative to the run)."""


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), tensors and numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented strict JSON, atomically."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda handle: handle.write(text.encode()))


def save_state_dict(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """Save a model's state_dict atomically."""
    save_torch(path, state_dict)


def save_torch(path: Path, obj: Any) -> None:
    """`torch.save` any object (tensors, dicts of tensors and numbers) atomically."""
    import torch

    _atomic_write(Path(path), lambda handle: torch.save(obj, handle))


# Attack files in a run directory: what the server captured, the evaluation side channel the clients write
# (which examples a captured update used), and the attacker's reconstructions.
CAPTURES, TRUTH, RECONSTRUCTIONS = "captures", "truth", "attack/reconstructions"


def round_file(run_dir: Path, folder: str, server_round: int, partition_id: int, suffix: str) -> Path:
    """`run_dir/folder/round_XXX/partition_YY.suffix`: per-round, per-client attack files."""
    return Path(run_dir) / folder / f"round_{server_round:03d}" / f"partition_{partition_id:02d}{suffix}"


class MetricsLog:
    """metrics.jsonl: one JSON line per round, appended and flushed as the run goes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self.records: list[dict] = []

    def append(self, record: dict) -> None:
        line = json.dumps(_jsonable(record), allow_nan=False) + "\n"
        with self.path.open("a") as handle:
            handle.write(line)
        self.records.append(record)


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write rows (dicts with the same keys) as a CSV table with a header line, atomically."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(_jsonable(rows))
    _atomic_write(Path(path), lambda handle: handle.write(buffer.getvalue().encode()))
