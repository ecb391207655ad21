"""tracking=tensorboard|mlflow: the round recorder's records and the run's image grids, read back with each
library's own reader (TensorBoard's EventAccumulator, MLflow's client)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fl_privacy.config.schema import Settings
from fl_privacy.lab.channels.rounds import RoundRecorder
from fl_privacy.lab.channels.tracking import MlflowTracker, TensorBoardTracker, open_tracker, round_scalars
from fl_privacy.results import MetricsLog
from fl_privacy.run_layout import METRICS, TRACKING_TENSORBOARD

RECORDS = [{"round": r, "central": {"accuracy": 0.1 + 0.2 * r, "loss": 2.0 - r / 2},
            "privacy": {"max_epsilon": 0.5 * r, "accountant": "rdp", "per_client": {"0": 0.5 * r}},
            "failures": {"train": []}, "flag": True, "nan": float("nan")} for r in range(3)]


def _run(tracker, run_dir) -> None:
    """Three rounds through the recorder; a GAN-style sample grid appears in round 2, the accuracy figure
    after the rounds (as the post-run pipelines write theirs)."""
    recorder = RoundRecorder(MetricsLog(run_dir / METRICS), {}, 2, tracker)
    for record in RECORDS:
        if record["round"] == 2:
            Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(run_dir / "gan" / "samples_round_002.png")
        recorder(record["round"], json.loads(json.dumps(record)))
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(run_dir / "accuracy.png")
    tracker.finish()
    assert len((run_dir / METRICS).read_text().splitlines()) == 3  # metrics.jsonl as before


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "gan").mkdir()
    return tmp_path


def test_round_scalars_are_the_numeric_leaves():
    assert dict(round_scalars(RECORDS[1])) == {
        "central/accuracy": pytest.approx(0.3), "central/loss": 1.5, "privacy/max_epsilon": 0.5,
        "privacy/per_client/0": 0.5}


def test_tensorboard_event_files_read_back(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _run(TensorBoardTracker(run_dir, Settings(tracking="tensorboard")), run_dir)
    events = EventAccumulator(str(run_dir / TRACKING_TENSORBOARD), size_guidance={"images": 0}).Reload()
    accuracy = events.Scalars("central/accuracy")
    assert [e.step for e in accuracy] == [0, 1, 2]
    assert [e.value for e in accuracy] == pytest.approx([0.1, 0.3, 0.5])
    assert [e.value for e in events.Scalars("privacy/max_epsilon")] == [0.0, 0.5, 1.0]
    assert set(events.Tags()["images"]) == {"gan/samples", "accuracy"}
    (samples,) = events.Images("gan/samples")
    assert (samples.step, samples.width, samples.height) == (2, 8, 6)
    assert events.Images("accuracy")[0].step == 2  # post-run figures at the last round
    assert "config/text_summary" in events.Tags()["tensors"]  # the run's settings as text


def test_mlflow_store_reads_back(run_dir):
    from mlflow.tracking import MlflowClient

    tracker = open_tracker(Settings(tracking="mlflow", seed=7), run_dir)
    assert isinstance(tracker, MlflowTracker)
    _run(tracker, run_dir)
    client = MlflowClient(tracking_uri=MlflowTracker.tracking_uri(run_dir))
    (run,) = client.search_runs([client.get_experiment_by_name("fl-privacy").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    history = client.get_metric_history(run.info.run_id, "central/loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.5), (2, 1.0)]
    assert run.data.params["seed"] == "7" and run.data.params["model._target_"] == "None"
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any(path.startswith("images/gan~samples+step+2+") for path in images), images  # MLflow spells / ~
    assert any("accuracy" in path for path in images), images


def test_the_lab_gives_its_round_recorder_the_tracker_asked_for(settings_factory, tmp_path):
    from types import SimpleNamespace

    from fl_privacy.lab.experiment import prepare_run

    # prepare_run only logs the federation's sizes here (no GAN adversary): a stand-in spares loading data
    federation = SimpleNamespace(splits=SimpleNamespace(train=[0] * 8, test=[0] * 2, num_classes=10),
                                 warmup_indices=[0],
                                 client_indices=[[1, 2], [3, 4]])
    for tracking, expected in (("tensorboard", TensorBoardTracker), ("none", type(None))):
        settings = settings_factory(f"tracking={tracking}", "simulation.num_clients=2")
        run_dir = tmp_path / tracking
        run_dir.mkdir()
        _, recorder, _ = prepare_run(settings, federation, run_dir)
        assert isinstance(recorder.tracker, expected)
        if recorder.tracker is not None:
            recorder.tracker.finish()
            assert (run_dir / TRACKING_TENSORBOARD).is_dir()
