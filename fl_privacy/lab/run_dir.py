"""A run directory is never reused silently: a new run needs an empty one, `resume=true` continues an
unfinished run from its checkpoint, `overwrite=true` replaces an earlier run explicitly."""

from __future__ import annotations

import shutil
from pathlib import Path

from fl_privacy.config.schema import Settings
from fl_privacy.errors import ConfigError
from fl_privacy.results import COMPLETED, RunFileError, read_json
from fl_privacy.run_layout import HYDRA_FILES, SUMMARY

# Keys that may differ between a run and its resumption.
RESUME_KEYS = ("resume", "overwrite")


def earlier_status(run_dir: Path) -> str | None:
    """The status of the run already in `run_dir` (None when there is none)."""
    run_dir = Path(run_dir)
    if (run_dir / SUMMARY).exists():
        try:
            return str(read_json(run_dir / SUMMARY).get("status", COMPLETED))
        except RunFileError:
            return "corrupt"
    if any(run_dir.glob("*")) and not all(Path(p.name) in HYDRA_FILES for p in run_dir.iterdir()):
        return "unknown"
    return None


def check_run_dir(run_dir: Path, settings: Settings, dir_key: str = "hydra.run.dir") -> None:
    """Raise `ConfigError` when `run_dir` would be reused without `resume=true` / `overwrite=true`, or
    when a resumption cannot continue the run there."""
    from fl_privacy.lab.checkpoints import checkpoint_round

    status = earlier_status(run_dir)
    if settings.resume:
        if status is None or status == COMPLETED:
            raise ConfigError("resume", True, f"{run_dir} holds no unfinished run to resume "
                              f"({'empty' if status is None else 'completed'})")
        if checkpoint_round(run_dir) is None:
            raise ConfigError("resume", True, f"{run_dir} has no checkpoint (checkpoint_every was 0 or the "
                              "run stopped before the first one)")
        _check_same_settings(run_dir, settings)
    elif status is not None and not settings.overwrite:
        raise ConfigError(dir_key, str(run_dir), f"holds an earlier run (status {status}); choose another "
                          "directory, or pass resume=true to continue it or overwrite=true to replace it")


def _check_same_settings(run_dir: Path, settings: Settings) -> None:
    recorded = _dotted(read_json(Path(run_dir) / SUMMARY)["config"])
    current = _dotted(settings.model_dump(mode="json"))
    changed = sorted(key for key in current.keys() | recorded.keys()
                     if key not in RESUME_KEYS and current.get(key) != recorded.get(key))
    if changed:
        raise ConfigError("resume", True, f"the settings differ from the run's in {', '.join(changed)}; "
                          "resume with the same settings")


def _dotted(tree: dict, prefix: str = "") -> dict:
    """A settings tree as {dotted key: leaf value}."""
    flat: dict = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(_dotted(value, f"{name}.") if isinstance(value, dict) and value else {name: value})
    return flat


def clear_earlier_run(run_dir: Path) -> None:
    """Remove an earlier run's files (`overwrite=true`), keeping what Hydra wrote for this run."""
    for path in Path(run_dir).iterdir():
        if Path(path.name) not in HYDRA_FILES:
            shutil.rmtree(path) if path.is_dir() else path.unlink()

