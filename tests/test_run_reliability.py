"""A run cannot lie about how it ended: client failures are counted and a lost client process fails the
run. Every run goes through the real entry point; faults and network calls are injected through
`tests/intercept/sitecustomize.py` (loaded by the driver and every Ray worker)."""

from __future__ import annotations

import pytest
from lab_process import run_lab, summary_of

from fl_privacy.results import read_metrics

TELEMETRY_HOST = "telemetry.flower.ai"


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


def test_a_diverged_federation_is_named_with_its_first_non_finite_round():
    """A loss that overflows to inf in memory or was written as null to metrics.jsonl marks the round; rounds
    without a central evaluation are not mistaken for divergence."""
    from fl_privacy.lab.summary import divergence_round

    def rounds(*losses):
        return [{"round": r, "central": {} if loss == "none" else {"loss": loss}}
                for r, loss in enumerate(losses)]

    assert divergence_round(rounds(0.8, 3.3, 2.5e34, float("inf"), float("nan"))) == 3
    assert divergence_round(rounds(0.8, 60.9, None)) == 2
    assert divergence_round(rounds("none", 0.8, 0.5)) is None
    assert divergence_round(rounds(0.8, 0.5)) is None
