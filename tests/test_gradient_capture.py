"""GradientCapture inside a tiny real Flower simulation, the attack command, and the threat-model boundary."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fl_privacy.cli import commands
from fl_privacy.data.federation import cached_federation
from fl_privacy.lab.pipelines import inversion_pipeline
from fl_privacy.lab.pipelines.inversion_pipeline import load_capture
from fl_privacy.models import model_factory
from fl_privacy.report.tables import attack_table
from fl_privacy.run_layout import CAPTURES, TRUTH, round_file
from fl_privacy.seeding import Stream, derive_seed
from fl_privacy.training import TrainSettings, batch_gradient, train

ROOT = Path(__file__).resolve().parents[1]
CLIENTS, ROUNDS = 3, 2  # as in tests/farm.py `CAPTURE`
MODES = ("fedavg", "fedsgd")
pytestmark = pytest.mark.farm(*(f"capture_{mode}" for mode in MODES))


@pytest.fixture(scope="module")
def runs(farm_runs) -> dict[str, Path]:
    """FedAvg clients whose captured rounds are FedAvg or FedSGD probes; both restore labels after the run."""
    return {mode: farm_runs.run_dir(f"capture_{mode}") for mode in MODES}


def run_settings(run_dir: Path):
    """The settings a finished run recorded (as the attack command reads them)."""
    return commands.run_settings(run_dir, "attack.gradient_inversion", [])


def replay(run_dir: Path, settings, global_state, server_round: int, partition: int):
    """Redo the client's local update from the truth it recorded, as the lab (not the attacker) can."""
    federation = cached_federation(settings.federation)
    indices = json.loads(round_file(run_dir, TRUTH, server_round, partition, ".json").read_text())["indices"]
    data = federation.splits.train.subset(indices)
    model = model_factory(settings.model, federation.splits.image_shape, federation.splits.num_classes, 0)()
    model.load_state_dict(global_state)
    assert set(indices) <= set(federation.client_indices[partition].tolist())
    if settings.strategy.capture.update_mode == "fedsgd":
        return batch_gradient(model, data)[0]
    train(model, data, TrainSettings.of(settings.client),
          seed=derive_seed(settings.seed, Stream.CLIENT_TRAINING, server_round, partition))
    return model.state_dict()


@pytest.mark.simulation
@pytest.mark.parametrize("mode", MODES)
def test_capture_records_what_the_server_saw(runs, mode):
    run_dir = runs[mode]
    settings = run_settings(run_dir)
    files = sorted((run_dir / CAPTURES).glob("round_*/partition_*.pt"))
    assert [(f.parent.name, f.name) for f in files] == [
        (f"round_{r:03d}", f"partition_{p:02d}.pt") for r in (1, 2) for p in range(CLIENTS)]
    init = model_factory(settings.model, (1, 28, 28), 10, settings.seed)().state_dict()
    returned = {}
    for server_round in (1, 2):
        for partition in range(CLIENTS):
            payload, meta = load_capture(round_file(run_dir, CAPTURES, server_round, partition, ".pt"))
            assert meta["round"] == server_round and meta["partition"] == partition
            assert meta["mode"] == mode and meta["lr"] == pytest.approx(0.05)
            assert meta["input_shape"] == [1, 28, 28] and meta["num_classes"] == 10
            if server_round == 1:  # no warm-up: the server sent the initial model
                assert all(torch.equal(payload.global_state[k], init[k]) for k in init)
            expected = replay(run_dir, settings, payload.global_state, server_round, partition)
            if mode == "fedsgd":
                assert payload.is_gradient and meta["local_steps"] == 1
                assert meta["batch_size"] == meta["num_examples"] == 2  # one batch of client.batch_size
                got = payload.gradient
            else:
                assert not payload.is_gradient and meta["num_examples"] == 4
                assert meta["batch_size"] == 2 and meta["local_steps"] == 2  # 4 examples in batches of 2
                got = payload.updated_state
            assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)
            returned.setdefault(server_round, []).append((payload.global_state, got))
    # the run is real: round 2 starts from the aggregate of every client's round-1 update
    sent_round_2 = returned[2][0][0]
    for name, value in sent_round_2.items():
        mean = torch.stack([got[name] for _, got in returned[1]]).mean(0)
        start = returned[1][0][0][name]
        aggregate = start - 0.05 * mean if mode == "fedsgd" else mean
        assert torch.allclose(value, aggregate, atol=1e-6), name


@pytest.mark.simulation
def test_truth_is_written_only_for_captured_updates(runs):
    truth = sorted(p.relative_to(runs["fedavg"] / TRUTH).as_posix()
                   for p in (runs["fedavg"] / TRUTH).rglob("*.json"))
    assert truth == [f"round_{r:03d}/partition_{p:02d}.json" for r in (1, 2) for p in range(CLIENTS)]


@pytest.mark.simulation
@pytest.mark.parametrize("mode", MODES)
def test_attack_after_run_writes_label_scores_into_the_summary(runs, mode):
    run_dir = runs[mode]
    scores = json.loads((run_dir / "attack" / "scores.json").read_text())
    assert scores["summary"]["captures"] == CLIENTS * ROUNDS
    for capture in scores["captures"]:
        restored, true = capture["restored_labels"], capture["true_labels"]
        assert capture["attack"] == "labels" and "images" not in capture
        assert len(restored) == len(true) == (2 if mode == "fedsgd" else 4)
        assert capture["label_count_accuracy"] == sum(min(restored.count(c), true.count(c))
                                                      for c in set(true)) / len(true)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attack"] == scores["summary"]


def attack_cli(caplog, *args: str) -> tuple[int, str]:
    """`fl-privacy attack ARGS` in-process: exit code and log text."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fl_privacy"):
        code = commands.main(["attack", *args])
    return code, caplog.text


@pytest.mark.simulation
@pytest.mark.parametrize("mode,name", [("fedsgd", "dlg"), ("fedavg", "fedavg")])
def test_attack_command_writes_image_scores_and_grids(runs, tmp_path, caplog, mode, name):
    run_dir = tmp_path / "run"
    shutil.copytree(runs[mode], run_dir)
    code, log = attack_cli(caplog, str(run_dir), f"attack.gradient_inversion.name={name}",
                           "attack.gradient_inversion.iterations=2",
                           "attack.gradient_inversion.max_captures=2")
    assert code == 0 and f"{name} 2/2" in log  # progress lines when not in a terminal
    scores = json.loads((run_dir / "attack" / "scores.json").read_text())
    assert [(c["round"], c["partition"]) for c in scores["captures"]] == [(1, 0), (1, 1)]
    for capture in scores["captures"]:
        images = capture["images"]
        assert len(images["psnr"]) == capture["num_inputs"] and all(m >= 0 for m in images["mse_255"])
        assert all(-1 <= s <= 1 for s in images["ssim"]) and 0 <= capture["label_accuracy"] <= 1
    assert len(list((run_dir / "attack" / "grids").glob("*.png"))) == 2
    assert (run_dir / "attack" / "grid.png").stat().st_size > 100


@pytest.mark.simulation
def test_attack_command_rejects_a_bad_key_before_work(runs, caplog):
    code, log = attack_cli(caplog, str(runs["fedavg"]), "attack.gradient_inversion.name=telepathy")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2 and len(errors) == 1 and "attack.gradient_inversion.name" in errors[0].getMessage()


def test_attack_command_is_a_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "fl_privacy.cli", "attack", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    # its one positional argument is the finished run's directory, then attack.gradient_inversion overrides
    assert result.returncode == 0 and "run directory" in result.stdout.lower()
    assert "attack.gradient_inversion.KEY=VALUE" in result.stdout


@pytest.mark.simulation
def test_reconstruction_step_never_reads_the_truth(runs, tmp_path, monkeypatch):
    """The attacker's step runs with the truth gone and every data loader sabotaged."""
    import fl_privacy.data.datasets as datasets
    import fl_privacy.data.federation as federation

    run_dir = tmp_path / "run"
    shutil.copytree(runs["fedsgd"], run_dir, ignore=shutil.ignore_patterns(TRUTH, "attack"))

    def no_data(*_args, **_kwargs):
        raise AssertionError("the attack step loaded data")

    monkeypatch.setattr(datasets, "load_splits", no_data)
    monkeypatch.setattr(datasets, "DATASETS", {name: no_data for name in datasets.DATASETS})
    # the names the lab's modules imported the loaders under
    for module in (inversion_pipeline, federation):
        monkeypatch.setattr(module, "load_splits", no_data)
    for name in ("build_federation", "cached_federation"):
        monkeypatch.setattr(federation, name, no_data)
    settings = commands.run_settings(run_dir, "attack.gradient_inversion", [
        "attack.gradient_inversion.name=dlg", "attack.gradient_inversion.iterations=1"])
    written = inversion_pipeline.reconstruct_captures(run_dir, settings)
    assert len(written) == CLIENTS * ROUNDS and not (run_dir / TRUTH).exists()
    assert settings.data.name == "mnist_offline"


@pytest.mark.simulation
def test_attack_table_has_a_row_per_run_and_round(runs, tmp_path):
    for mode, run_dir in runs.items():
        shutil.copytree(run_dir, tmp_path / mode)
    table = attack_table(tmp_path, by=["strategy.capture.update_mode"], per_round=True)
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [(row[0].strip("| "), row[1]) for row in rows] == [
        ("fedavg", "1"), ("fedavg", "2"), ("fedsgd", "1"), ("fedsgd", "2")]
    assert all(row[2] == str(CLIENTS * (4 if row[0] == "| fedavg" else 2)) for row in rows)
