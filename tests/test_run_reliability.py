"""A run cannot lie about how it ended: bad input stops before anything is written or started, client
failures are counted, a lost client process fails the run, a killed run resumes to the same numbers, and
an earlier run is never overwritten silently. Every run goes through the real entry point; faults and
network calls are injected through `tests/intercept/sitecustomize.py` (loaded by the driver and every
Ray worker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from farm import DP_RUN, TINY
from test_end_to_end import without_timings

from fl_privacy.results import read_metrics

ROOT = Path(__file__).resolve().parents[1]
INTERCEPT = ROOT / "tests" / "intercept"
TELEMETRY_HOST = "telemetry.flower.ai"


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


# --- bad input: one line per problem, exit 2, nothing written ----------------------------------------------
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
    started = time.monotonic()
    result = run_lab(tmp_path / "run", "model.num_outputs=5")
    assert result.returncode == 2 and "model.num_outputs" in config_errors(result)[0]
    assert "at least 10" in config_errors(result)[0]
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "summary.json").exists() and time.monotonic() - started < 120


def test_an_unreachable_ray_cluster_fails_the_run_at_once(tmp_path):
    """Ray would retry a dead address for minutes; the lab checks it and the run ends `failed`."""
    started = time.monotonic()
    result = run_lab(tmp_path / "run", "simulation.ray_address=127.0.0.1:9")
    assert result.returncode == 1 and "simulation.ray_address=127.0.0.1:9" in result.stdout + result.stderr
    assert summary_of(tmp_path / "run")["status"] == "failed" and time.monotonic() - started < 120


# --- failures during the run -----------------------------------------------------------------------------
@pytest.mark.simulation
def test_a_raising_client_is_counted_every_round_and_telemetry_opt_in_is_honoured(tmp_path):
    """Partition 1 raises in every round: the run completes on the others, each round's metrics name the
    failed partition and its error, the summary counts them. With `telemetry=true` Flower does try to
    send its events (the positive control for the default run's silence, tests/test_end_to_end.py)."""
    urls = tmp_path / "urls.log"
    result = run_lab(tmp_path / "run", "strategy.fraction_train=1.0", "telemetry=true",
                     FLP_FAULT="raise:1", FLP_URL_LOG=str(urls))
    assert result.returncode == 0, result.stderr[-2000:]
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    for record in records[1:]:
        failed = record["failures"]["train"]
        assert [f["partition"] for f in failed] == [1]
        assert "injected fault in partition 1" in failed[0]["error"] and failed[0]["raised"]
        assert record["train"]["num-clients"] == 3
    summary = summary_of(tmp_path / "run")
    assert summary["status"] == "completed"
    assert summary["failures"] == {"failed_replies": 2, "rounds": {"1": {"train": [1]}, "2": {"train": [1]}}}
    assert TELEMETRY_HOST in urls.read_text()


@pytest.mark.simulation
def test_a_dying_client_process_fails_the_run(tmp_path):
    result = run_lab(tmp_path / "run", "strategy.fraction_train=1.0", FLP_FAULT="die:1")
    summary = summary_of(tmp_path / "run")
    assert result.returncode == 1 and summary["status"] == "failed"
    assert "RoundFailed: round 1" in summary["error"] and "partition 1" in summary["error"]
    assert [r["round"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [0]


# --- resume --------------------------------------------------------------------------------------------
def wait_for_round(metrics: Path, server_round: int, process: subprocess.Popen, output: Path,
                   timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) > server_round:
            return
        time.sleep(0.5)
    raise AssertionError(f"round {server_round} never appeared in {metrics}: {output.read_text()[-3000:]}")


@pytest.mark.simulation
@pytest.mark.farm("dp_uninterrupted")
def test_a_killed_run_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path, farm_runs):
    """DP clients carry their privacy ledger across rounds in their node state: a run stopped (SIGTERM)
    after round 2 and resumed from its checkpoint ends with the same metrics.jsonl, ε included, as the same
    run left alone; the stopped run said `interrupted` meanwhile, and rerunning it without resume=true is
    refused."""
    whole, stopped = farm_runs.run_dir("dp_uninterrupted"), tmp_path / "stopped"
    with (tmp_path / "stopped.log").open("w") as output:
        victim = subprocess.Popen(lab_command(stopped, *DP_RUN), cwd=ROOT, env=intercepted(), stdout=output,
                                  stderr=subprocess.STDOUT)
        wait_for_round(stopped / "metrics.jsonl", 2, victim, tmp_path / "stopped.log")
        victim.send_signal(signal.SIGTERM)
        victim.wait(timeout=120)
    assert summary_of(stopped)["status"] == "interrupted"
    assert len(read_metrics(stopped / "metrics.jsonl")) < 5
    refused = run_lab(stopped, *DP_RUN)
    assert refused.returncode == 2 and "resume=true" in config_errors(refused)[0]
    resumed = run_lab(stopped, *DP_RUN, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = without_timings(read_metrics(whole / "metrics.jsonl"))
    assert [r["round"] for r in expected] == [0, 1, 2, 3, 4] and expected[-1]["privacy"]["max_epsilon"] > 0
    assert without_timings(read_metrics(stopped / "metrics.jsonl")) == expected
    assert summary_of(stopped)["status"] == "completed"
    assert summary_of(stopped)["privacy"] == summary_of(whole)["privacy"]


def test_a_nodes_state_survives_the_checkpoint_files_exactly(tmp_path):
    """What a node keeps in `context.state` (tensors of any dtype, counters, strings) comes back equal
    from the lab's files, and only into a resumed run's still empty state."""
    import torch
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

    from fl_privacy.lab.side_channels import RunHooks

    history = torch.tensor([[0.7, 0.004, 25.0]], dtype=torch.float64)
    state = RecordDict({"dp.history": ArrayRecord({"tensor": history}),
                        "gan.generator": ArrayRecord({"w": torch.randn(3, 2), "steps": torch.tensor(7)}),
                        "dp.ledger": MetricRecord({"sigma": 0.7, "rounds": 3}),
                        "note": ConfigRecord({"phase": "attack"})})
    RunHooks(tmp_path).save_node_state(3, 2, state)
    fresh, untouched = RecordDict(), RecordDict({"x": MetricRecord({"y": 1.0})})
    RunHooks(tmp_path).restore_node_state(3, fresh)
    assert len(fresh) == 0  # not a resumed run
    RunHooks(tmp_path, resumed=True).restore_node_state(3, fresh)
    RunHooks(tmp_path, resumed=True).restore_node_state(3, untouched)
    RunHooks(tmp_path, resumed=True).restore_node_state(4, other := RecordDict())
    assert set(fresh) == set(state) and list(untouched) == ["x"] and len(other) == 0
    assert torch.equal(fresh.array_records["dp.history"].to_torch_state_dict()["tensor"], history)
    restored = fresh.array_records["gan.generator"].to_torch_state_dict()
    assert torch.equal(restored["w"], state.array_records["gan.generator"].to_torch_state_dict()["w"])
    assert dict(fresh.metric_records["dp.ledger"]) == {"sigma": 0.7, "rounds": 3}
    assert dict(fresh.config_records["note"]) == {"phase": "attack"}
