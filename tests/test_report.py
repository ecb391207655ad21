"""The report command on a fake multirun tree (no simulation): one row per job, embedded images,
byte-identical reruns, a half-finished sweep reported rather than crashed on."""

from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fl_privacy.figures import plt
from fl_privacy.report import build_report
from fl_privacy.report.jobs import expected_jobs, find_jobs, flatten_numbers

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["strategy.num_rounds=2", "defense.dp.noise_multiplier=0.5,1.0,2.0,4.0"]


def write_job(job_dir: Path, sigma: float, accuracy: float, share: float | None, finished: bool) -> None:
    """A job folder as fl_privacy.run leaves it (an unfinished run's summary.json says only `failed`)."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(
        f"- strategy.num_rounds=2\n- defense.dp.noise_multiplier={sigma}\n")
    records = [{"round": r, "central": {"loss": 2.0 - r / 2, "accuracy": accuracy * (r + 1) / 3},
                "train": {}, "evaluate": {}, "seconds": 1.0} for r in range(3 if finished else 2)]
    if share is not None:
        for record in records[1:]:
            record["gan_attack"] = {"victim_share": share * record["round"] / 2, "frechet_distance": 100.0}
    (job_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if not finished:
        (job_dir / "summary.json").write_text(json.dumps({"config": {"seed": 0}, "status": "failed",
                                                          "error": "RoundFailed: round 2: ..."}))
        return
    summary = {"config": {"seed": 0}, "versions": {"flwr": "1.41.0"}, "status": "completed",
               "metrics": {"rounds": 2, "final": records[-1]["central"], "best_accuracy": accuracy},
               "attacks": {"gan_attack": {"attack_rounds": 2, "final": {"victim_share": share,
                                                                         "per_class": [0.1, 0.2]}}},
               "privacy": {"delta": 1e-5, "per_client": {"0": 8.0 / sigma, "1": 4.0 / sigma},
                           "max_epsilon": 8.0 / sigma},
               "wall_seconds": 12.5}
    (job_dir / "summary.json").write_text(json.dumps(summary))
    (job_dir / "gan").mkdir()
    plt.imsave(job_dir / "gan" / "progression.png", np.random.default_rng(int(sigma * 10)).random((8, 32)))


@pytest.fixture
def sweep(tmp_path) -> Path:
    """multirun.yaml asks for 4 jobs; 0 and 2 finished, 1 failed after one round, 3 never started."""
    root = tmp_path / "multirun" / "2026-11-21" / "12-00-00"
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n" + "".join(f"    - {o}\n" for o in SWEEP))
    write_job(root / "0", 0.5, 0.9, 0.8, finished=True)
    write_job(root / "1", 1.0, 0.8, 0.5, finished=False)
    write_job(root / "2", 2.0, 0.7, 0.1, finished=True)
    return root


def test_flatten_numbers_keeps_numeric_leaves_with_dotted_names():
    flat = flatten_numbers({"a": {"b": 1, "c": [1, 2], "d": "x", "e": {"f": 2.5}}, "g": True})
    assert flat == {"a.b": 1, "a.e.f": 2.5, "g": 1}


def test_expected_jobs_follow_hydra_sweeper_params_and_the_command_line(tmp_path):
    """A preset's `hydra.sweeper.params` sweeps unless the command line sweeps the same key."""
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      a: 1,2,3\n      b: x,y\n"
        "  overrides:\n    task:\n    - +experiment=e\n    - a=7,8\n")
    assert expected_jobs(tmp_path / "multirun.yaml") == [
        {"a": a, "b": b, "experiment": "e"} for a in ("7", "8") for b in ("x", "y")]


def test_csv_has_one_row_per_job_with_status_overrides_and_flat_metrics(sweep):
    report = build_report(sweep)
    rows = list(csv.DictReader(report.csv.open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed"),
                                                       ("2", "completed"), ("3", "missing")]
    assert [r["defense.dp.noise_multiplier"] for r in rows] == ["0.5", "1.0", "2.0", "4.0"]
    assert float(rows[0]["accuracy"]) == pytest.approx(0.9)
    assert float(rows[2]["privacy.max_epsilon"]) == pytest.approx(4.0)
    assert float(rows[2]["privacy.per_client.1"]) == pytest.approx(2.0)
    assert float(rows[0]["attacks.gan_attack.final.victim_share"]) == pytest.approx(0.8)
    assert rows[1]["rounds"] == "1" and rows[1]["privacy.max_epsilon"] == ""  # how far the failed job got
    assert "attacks.gan_attack.final.per_class" not in rows[0]
    assert report.metric == "attacks.gan_attack.final.victim_share"
    assert report.color == "privacy.max_epsilon"


def test_html_is_self_contained_and_embeds_plots_and_job_images(sweep):
    report = build_report(sweep)
    page = report.html.read_text()
    assert "src=\"http" not in page and "<link" not in page
    images = [part.split('"')[0] for part in page.split('src="data:image/png;base64,')[1:]]
    embedded = {base64.b64decode(image) for image in images}
    for name in ("accuracy_rounds.png", "attack_rounds.png", "frontier.png", "sweep.png"):
        assert (report.out / name).read_bytes() in embedded
    for job in ("0", "2"):
        assert (sweep / job / "gan" / "progression.png").read_bytes() in embedded
    assert len(images) == 6
    assert page.count('<tr class="missing">') == 1 and page.count('<tr class="failed">') == 1


def test_rerun_is_byte_identical_and_never_reads_its_own_outputs(sweep):
    first = build_report(sweep)
    files = {p.name: p.read_bytes() for p in first.out.iterdir()}
    assert set(files) == {"jobs.csv", "accuracy_rounds.png", "attack_rounds.png", "frontier.png", "sweep.png",
                          "report.html"}
    again = build_report(sweep)
    assert {p.name: p.read_bytes() for p in again.out.iterdir()} == files
    assert [job.name for job in find_jobs(sweep)] == ["0", "1", "2", "3"]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "2", "multirun.yaml", "report"]


def test_single_run_directory_and_cli(sweep, tmp_path):
    out = tmp_path / "single_report"
    result = subprocess.run([sys.executable, "-m", "fl_privacy.cli", "report", str(sweep / "0"),
                             "--out", str(out), "--metric", "privacy.max_epsilon"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "jobs.csv").open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed")]
    assert (out / "report.html").exists() and not (out / "frontier.png").exists()  # one point: no frontier


def test_sweep_curve_needs_two_finished_jobs_with_numbers(tmp_path):
    from fl_privacy.figures import plot_sweep_curve

    rows = [{"status": "completed", "noise": "0", "psnr": "89", "accuracy": "0.1"},
            {"status": "completed", "noise": "0.01", "psnr": "3.5", "accuracy": "0.1"},
            {"status": "failed", "noise": "0.1", "psnr": "", "accuracy": ""}]
    assert plot_sweep_curve(rows, "noise", "psnr", tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    assert not plot_sweep_curve(rows[1:], "noise", "psnr", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_a_killed_run_reads_as_running_and_an_empty_folder_is_an_error(sweep, tmp_path):
    """A run killed mid-way left `status: running`: the report says so and takes no final numbers from it;
    a folder without runs is a one-line error naming it, and no report is written."""
    summary = json.loads((sweep / "2" / "summary.json").read_text())
    (sweep / "2" / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    rows = list(csv.DictReader(build_report(sweep).csv.open()))
    assert [(r["job"], r["status"]) for r in rows][:3] == [("0", "completed"), ("1", "failed"),
                                                           ("2", "running")]
    assert rows[2]["rounds"] == "2" and not rows[2].get("privacy.max_epsilon")  # from metrics.jsonl only
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "fl_privacy.cli", "report", str(empty)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and str(empty) in result.stderr and "holds no runs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (empty / "report").exists()
