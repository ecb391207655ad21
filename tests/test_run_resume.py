"""A killed run resumes to the numbers of an uninterrupted one, and what a node keeps in its state survives
the checkpoint files exactly."""

from __future__ import annotations

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
