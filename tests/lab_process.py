"""Running the lab's entry point in a subprocess, as a user would, for the tests that check how runs start,
fail and end. Faults and network calls are injected through `tests/intercept/sitecustomize.py` (loaded by
the driver and every Ray worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from farm import TINY

ROOT = Path(__file__).resolve().parents[1]
INTERCEPT = ROOT / "tests" / "intercept"


def lab_command(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "fl_privacy.run", *TINY, *overrides, f"hydra.run.dir={run_dir}"]


def intercepted(**variables: str) -> dict[str, str]:
    """This process's environment with the intercepting sitecustomize on the path, plus `variables`."""
    return {**os.environ, "PYTHONPATH": str(INTERCEPT), **variables}


def run_lab(run_dir: Path, *overrides: str, timeout: int = 600, **variables: str
            ) -> subprocess.CompletedProcess:
    return subprocess.run(lab_command(run_dir, *overrides), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=intercepted(**variables))


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def config_errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "config error" in line]
