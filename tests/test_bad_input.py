"""Bad input stops before anything is written or started: one line per problem, exit 2, nothing written
(a single run, every job of a multirun, a model that cannot fit the data, a Ray address nobody answers)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from lab_process import ROOT, config_errors, lab_command, run_lab, summary_of


@pytest.mark.parametrize("override,key", [("+anytypo=1", "anytypo"), ("client.local_epochs=0",
                                                                      "client.local_epochs"),
                                          ("strategy.min_train_replies=9", "strategy.min_train_replies"),
                                          ("resume=true", "resume"),
                                          pytest.param("device=cuda", "device", marks=pytest.mark.skipif(
                                              torch.cuda.is_available(), reason="CUDA is present here"))])
def test_bad_input_is_one_line_before_hydra_writes_anything(tmp_path, override, key):
    run_dir = tmp_path / "run"
    result = subprocess.run(lab_command(run_dir, override), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and len(config_errors(result)) == 1 and key in config_errors(result)[0]
    assert not run_dir.exists()


def test_a_multirun_reports_every_bad_job_before_the_first_starts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fl_privacy.run", "-m", "client.local_epochs=1,0,2,-1",
                             f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    errors = config_errors(result)
    assert result.returncode == 2 and len(errors) == 2
    assert errors[0].startswith("config error: job 1 (client.local_epochs=0)") and "job 3" in errors[1]
    assert not (tmp_path / "sweep").exists()


def test_model_outputs_below_the_classes_stop_before_ray(tmp_path):
    """Stopped by the data check, before Ray starts and before summary.json is written (how fast is the
    benchmarks' business: a wall-clock bound here failed on a loaded machine)."""
    result = run_lab(tmp_path / "run", "model.num_outputs=5")
    assert result.returncode == 2 and "model.num_outputs" in config_errors(result)[0]
    assert "at least 10" in config_errors(result)[0]
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_an_unreachable_ray_cluster_fails_the_run_at_once(tmp_path):
    """Ray would retry a dead address for minutes; the lab checks it and the run ends `failed`."""
    started = time.monotonic()
    result = run_lab(tmp_path / "run", "simulation.ray_address=127.0.0.1:9")
    assert result.returncode == 1 and "simulation.ray_address=127.0.0.1:9" in result.stdout + result.stderr
    assert summary_of(tmp_path / "run")["status"] == "failed" and time.monotonic() - started < 120
