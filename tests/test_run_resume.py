"""A stopped run ends `interrupted` within seconds, whoever it was signalled by, and resumes to the numbers
of an uninterrupted one; what a node keeps in its state survives the checkpoint files exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from farm import DP_RUN
from lab_process import ROOT, config_errors, intercepted, lab_command, run_lab, summary_of
from test_end_to_end import without_timings

from fl_privacy.results import read_metrics


def wait_for_round(metrics: Path, server_round: int, process: subprocess.Popen, output: Path,
                   timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) > server_round:
            return
        time.sleep(0.5)
    raise AssertionError(f"round {server_round} never appeared in {metrics}: {output.read_text()[-3000:]}")


@pytest.mark.simulation
@pytest.mark.own_runs
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


def _living(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.simulation
@pytest.mark.own_runs
@pytest.mark.parametrize("stop,to_group",
                         [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGINT, False)],
                         ids=["ctrl-c-to-group", "sigterm-to-group", "sigint-to-main"])
def test_a_stopped_run_ends_interrupted_within_10_s_and_leaves_no_ray_process(tmp_path, stop, to_group):
    """As a terminal (Ctrl-C), `timeout`, SLURM or Kubernetes stop a run: the signal goes to the whole process
    group, or to the main process alone. The run ends within 10 s with exit code 130 and status
    `interrupted`, and none of the processes it started (Ray's GCS, raylet, client actors) outlives it by
    10 s. (SIGTERM to the main process alone: the resume test above.)"""
    import psutil

    run = tmp_path / "run"
    with (tmp_path / "run.log").open("w") as output:
        victim = subprocess.Popen(lab_command(run, *DP_RUN), cwd=ROOT, env=intercepted(), stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_round(run / "metrics.jsonl", 1, victim, tmp_path / "run.log")
        started = [child.pid for child in psutil.Process(victim.pid).children(recursive=True)]
        stopped_at = time.monotonic()
        os.killpg(victim.pid, stop) if to_group else victim.send_signal(stop)
        assert victim.wait(timeout=10) == 130, (tmp_path / "run.log").read_text()[-3000:]
    assert time.monotonic() - stopped_at < 10
    assert summary_of(run)["status"] == "interrupted"
    assert started, "the run had started Ray's processes"
    while time.monotonic() - stopped_at < 10 and any(_living(pid) for pid in started):
        time.sleep(0.2)
    assert [pid for pid in started if _living(pid)] == []


def test_a_nodes_state_survives_the_checkpoint_files_exactly(tmp_path):
    """What a node keeps in `context.state` (tensors of any dtype, counters, strings) comes back equal
    from the lab's files, and only into a resumed run's still empty state."""
    import torch
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

    from fl_privacy.lab.channels.side_channels import RunHooks

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
