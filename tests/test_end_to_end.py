"""A tiny real Flower simulation on Ray through the Hydra entry point (no mocks)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from farm import TINY

from fl_privacy.results import read_metrics

ROOT = Path(__file__).resolve().parents[1]


INTERCEPT = ROOT / "tests" / "intercept"


def run_tiny_sweep(sweep_dir: Path, *sweep: str) -> subprocess.CompletedProcess:
    """A Hydra multirun of tiny simulations, one job per sweep value, in one process; every network request
    any of its processes attempts is logged to `sweep_dir/../urls.log` and refused
    (tests/intercept/sitecustomize.py)."""
    environment = {**os.environ, "PYTHONPATH": str(INTERCEPT),
                   "FLP_URL_LOG": str(sweep_dir.parent / "urls.log")}
    result = subprocess.run(
        [sys.executable, "-m", "fl_privacy.run", "-m", *TINY, *sweep, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def without_timings(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Jobs 0 and 1 share seed 0, job 2 uses seed 1."""
    base = tmp_path_factory.mktemp("e2e") / "sweep"
    result = run_tiny_sweep(base, "seed=0,0,1")
    (base.parent / "terminal.txt").write_text(result.stdout + result.stderr)
    return [base / str(job) for job in range(3)]


@pytest.mark.simulation
def test_run_writes_metrics_summary_and_model(sweep):
    run_dir = sweep[0]
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2]
    for record in records:
        assert 0.0 <= record["central"]["accuracy"] <= 1.0
        assert len(record["central"]["per_class_accuracy"]) == 10
        assert record["seconds"] > 0
    for record in records[1:]:
        assert record["train"]["num-examples"] > 0 and "train-loss" in record["train"]
        assert record["train"]["num-clients"] == 2  # fraction_train=0.5 of 4
        assert "eval-accuracy" in record["evaluate"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config"]["simulation"]["num_clients"] == 4
    assert summary["versions"]["flwr"].startswith("1.4")
    assert summary["metrics"]["final"]["accuracy"] == records[-1]["central"]["accuracy"]
    assert summary["wall_seconds"] > 0 and summary["status"] == "completed"
    assert summary["failures"] == {"failed_replies": 0, "rounds": {}} and summary["diverged_at_round"] is None
    assert all(record["failures"] == {"train": [], "evaluate": []} for record in records[1:])
    assert (run_dir / "accuracy.png").stat().st_size > 1000
    state = torch.load(run_dir / "final_model.pt", weights_only=True)
    assert state["head.weight"].shape == (10, 128 * 7 * 7)


@pytest.mark.simulation
def test_the_terminal_shows_a_line_per_round_and_run_log_the_detail(sweep):
    """Besides Hydra's job lines, the terminal has the data line, a line per round and where the results
    went; Flower's and Ray's detail is only in run.log."""
    terminal = (sweep[0].parent.parent / "terminal.txt").read_text().splitlines()
    lab_lines = [line for line in terminal if "[HYDRA]" not in line]
    assert [line.split()[0] for line in lab_lines] == ["data", "round", "round", "round", "wrote"] * 3
    assert "[flwr]" in (sweep[0] / "run.log").read_text()


@pytest.mark.simulation
def test_the_sweep_starts_ray_once_and_keeps_it_with_its_actors(sweep):
    kept = ["Ray and its client actors kept from the sweep's previous job" in (d / "run.log").read_text()
            for d in sweep]
    assert kept == [False, True, True]


@pytest.mark.simulation
def test_same_seed_gives_identical_metrics_different_seed_does_not(sweep):
    """Job 1 repeats job 0's seed on the Ray and actors job 0 left: the numbers are the same."""
    first, second, other = (without_timings(read_metrics(d / "metrics.jsonl")) for d in sweep)
    assert first == second
    assert first != other


@pytest.mark.simulation
def test_telemetry_is_off_by_default(sweep):
    """No process of the default runs attempted a network request (Flower's telemetry included; the
    opt-in run that does is in tests/test_run_reliability.py)."""
    urls = sweep[0].parent.parent / "urls.log"
    assert not urls.exists() or urls.read_text() == ""
    summary = json.loads((sweep[0] / "summary.json").read_text())
    assert summary["telemetry_environment"] == {"FLWR_TELEMETRY_ENABLED": "0",
                                                "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.mark.simulation
def test_a_finished_run_is_never_overwritten_silently(sweep):
    """Rerunning into a finished run's folder is refused before Hydra writes anything; its files stay."""
    run_dir = sweep[0]
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    result = subprocess.run([sys.executable, "-m", "fl_privacy.run", *TINY, f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "config error" in line]
    assert result.returncode == 2 and len(errors) == 1 and "overwrite=true" in errors[0]
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


@pytest.mark.simulation
def test_report_of_the_real_sweep(sweep):
    """The report command over the real multirun: one CSV row per job, the accuracy curves, one page."""
    root = sweep[0].parent
    result = subprocess.run([sys.executable, "-m", "fl_privacy.cli", "report", str(root)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (root / "report" / "jobs.csv").read_text().splitlines()
    header = rows[0].split(",")
    statuses = [row.split(",")[header.index("status")] for row in rows[1:]]
    assert len(rows) == 4 and statuses == ["completed"] * 3
    assert [row.split(",")[header.index("seed")] for row in rows[1:]] == ["0", "0", "1"]
    final = json.loads((sweep[2] / "summary.json").read_text())["metrics"]["final"]["accuracy"]
    assert float(rows[3].split(",")[header.index("accuracy")]) == pytest.approx(final, abs=1e-6)
    page = (root / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1  # accuracy per round; no attack in this sweep
