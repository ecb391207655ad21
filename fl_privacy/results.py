"""Files a run leaves behind (metrics.jsonl, summary.json, the final model, figures) and the one reader
of a finished run's files. Writes are atomic; a missing or corrupt file is a one-line error naming it."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_privacy.run_layout import SUMMARY

if TYPE_CHECKING:  # torch is imported where it is used, so reading results (e.g. the report) stays light
    import torch

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
    """Write through a temporary file in the same folder, then rename over `path` (readable like a file
    opened plainly: mkstemp's private 0600 mode would hide results from other users)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented strict JSON, atomically."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda handle: handle.write(text.encode()))


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8), atomically."""
    _atomic_write(Path(path), lambda handle: handle.write(text.encode()))


def save_torch(path: Path, obj: Any) -> None:
    """`torch.save` any object (tensors, dicts of tensors and numbers) atomically."""
    import torch

    _atomic_write(Path(path), lambda handle: torch.save(obj, handle))


def save_image_grid(path: Path, images: torch.Tensor, nrow: int = 8, pad_value: float = 0.0) -> None:
    """A PNG grid of images in [0, 1] (torchvision's `save_image`), written atomically."""
    from torchvision.utils import save_image

    _atomic_write(Path(path), lambda handle: save_image(images, handle, format="png", nrow=nrow,
                                                        pad_value=pad_value))


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A fresh folder to write `out`'s new contents into; it replaces `out` only when the block finishes,
    so a command that fails over a finished run leaves that run's earlier results as they were."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    try:
        yield staging
        staging.chmod(0o755)
        replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(staging: Path, out: Path) -> None:
    """Put the finished `staging` folder in place of `out` (renames; the old folder is removed last), so a
    failure before this leaves `out` as it was."""
    import shutil

    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_figure_file(path: Path, figure) -> None:
    """A matplotlib figure as PNG, atomically; no version in the file, so the same figure gives the same
    bytes."""
    _atomic_write(Path(path),
                  lambda handle: figure.savefig(handle, format="png", metadata={"Software": None}))


class RunFileError(ValueError):
    """A run's file is missing or cannot be read; the message names it."""


# summary.json's `status`: `running` from the start until the run ends one of the other three ways.
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"


def read_json(path: Path) -> Any:
    """A JSON file, or `RunFileError` naming it when it is missing or corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFileError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFileError(f"{path} is corrupt or half-written ({error})") from None


def read_summary(run_dir: Path) -> dict:
    """A finished run's summary.json (`RunFileError` when RUN_DIR is not a finished run)."""
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        raise RunFileError(f"{path} not found: RUN_DIR must be a finished fl_privacy.run directory")
    summary = read_json(path)
    if not isinstance(summary, dict) or "config" not in summary:
        raise RunFileError(f"{path} has no 'config': not a summary written by fl_privacy.run")
    return summary


def find_run_files(root: Path, name: Path) -> list[Path]:
    """Every `name` (a run_layout path) under `root`, sorted; `RunFileError` when there is none, so a command
    over finished runs that finds nothing to read says so instead of printing an empty table."""
    files = sorted(Path(root).rglob(str(name)), key=str)
    if not files:
        raise RunFileError(f"{root}: no {name} in it or below it (is this the right folder, and did the runs "
                           "get that far?)")
    return files


def load_tensors(path: Path) -> Any:
    """A torch file of tensors and plain values (`weights_only`), or `RunFileError` naming it."""
    import torch

    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise RunFileError(f"{path} not found") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise RunFileError(f"{path} cannot be read ({str(error).splitlines()[0]})") from None



class MetricsLog:
    """metrics.jsonl: one JSON line per round, appended and flushed as the run goes. A resumed run keeps
    the lines up to its checkpoint's round (`keep_through`) and continues after them."""

    def __init__(self, path: Path, keep_through: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = ([] if keep_through is None
                else [r for r in read_metrics(self.path) if r["round"] <= keep_through])
        write_json_lines(self.path, kept)
        self.records: list[dict] = kept

    def append(self, record: dict) -> None:
        line = json.dumps(_jsonable(record), allow_nan=False) + "\n"
        with self.path.open("a") as handle:
            handle.write(line)
        self.records.append(record)


def write_json_lines(path: Path, records: list[dict]) -> None:
    """Records as one strict-JSON line each, atomically."""
    text = "".join(json.dumps(_jsonable(record), allow_nan=False) + "\n" for record in records)
    _atomic_write(Path(path), lambda handle: handle.write(text.encode()))


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file (`RunFileError` naming the file and line when one is corrupt)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise RunFileError(f"{path} not found") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise RunFileError(f"{path} line {number} is corrupt ({error})") from None
    return records


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write rows (dicts with the same keys) as a CSV table with a header line, atomically."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(_jsonable(rows))
    _atomic_write(Path(path), lambda handle: handle.write(buffer.getvalue().encode()))
