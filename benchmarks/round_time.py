"""Benchmark: seconds per FL round in the Flower simulation vs a plain sequential PyTorch loop.

Runs `python -m fl_privacy.run` (real Flower simulation on Ray) and a plain loop that trains the
same clients one after another with the same data, model, settings and FedAvg averaging, then
prints both, their ratio, and Ray's start-up cost. For a run with a GAN adversary it also splits the
rounds into honest and attack rounds (`gan_breakdown`); `--from-run DIR` prints that breakdown for a
finished run without running anything. Usage:

    python benchmarks/round_time.py [--rounds 10] [hydra overrides ...]
    python benchmarks/round_time.py --from-run outputs/DATE/TIME
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.models import model_factory
from fl_privacy.results import read_metrics, read_summary
from fl_privacy.training import TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]


def flower_round_times(rounds: int, overrides: list[str]) -> tuple[list[float], float, float]:
    """Per-round seconds (rounds >= 2), round 0's seconds (partition query to the freshly spawned
    actors + central warm-up), and the rest of the wall time (imports, data, Ray start, shutdown)."""
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "fl_privacy.run", f"strategy.num_rounds={rounds}",
                        "save_model=false", *overrides, f"hydra.run.dir={run_dir}"],
                       cwd=ROOT, check=True, capture_output=True)
        wall = time.monotonic() - started
        records = read_metrics(Path(run_dir) / "metrics.jsonl")
    seconds = [r["seconds"] for r in records]
    return seconds[2:], seconds[0], wall - sum(seconds)


def gan_breakdown(run_dir: Path) -> dict:
    """Seconds of round 0 (partition query + warm-up), the median honest round (rounds >= 2 without the
    GAN monitor's scores), the median attack round, and the lab's wall time outside the rounds."""
    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    honest = [r["seconds"] for r in records if r["round"] >= 2 and not r.get("gan_attack")]
    attack = [r["seconds"] for r in records if r.get("gan_attack")]
    wall = read_summary(Path(run_dir))["wall_seconds"]
    return {"rounds": len(records) - 1, "round0_s": records[0]["seconds"], "honest_rounds": len(honest),
            "honest_round_s": statistics.median(honest) if honest else None, "attack_rounds": len(attack),
            "attack_round_s": statistics.median(attack) if attack else None, "lab_wall_s": wall,
            "outside_rounds_s": wall - sum(r["seconds"] for r in records)}


def plain_round_times(rounds: int, overrides: list[str]) -> list[float]:
    """The same FedAvg rounds as a sequential loop in this process, with all cores for torch."""
    cfg = compose_settings(overrides)
    torch.set_num_threads(torch.get_num_threads())
    federation = build_federation(cfg.federation)
    splits = federation.splits
    make = model_factory(cfg.model, splits.image_shape, splits.num_classes, cfg.seed)
    global_model, settings = make(), TrainSettings.of(cfg.client)
    times = []
    for server_round in range(1, rounds + 1):
        started = time.monotonic()
        states, sizes = [], []
        for partition in range(cfg.simulation.num_clients):
            local = make()
            local.load_state_dict(global_model.state_dict())
            stats = train(local, federation.client_data(partition), settings, seed=server_round)
            states.append(local.state_dict())
            sizes.append(stats.num_examples)
        total = sum(sizes)
        average = {key: sum(s[key] * n / total for s, n in zip(states, sizes, strict=True))
                   for key in states[0]}
        global_model.load_state_dict(average)
        times.append(time.monotonic() - started)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--from-run", type=Path, default=None, help="a finished run: its GAN breakdown only")
    args, overrides = parser.parse_known_args()
    if args.from_run is not None:
        print(json.dumps(gan_breakdown(args.from_run), indent=2))
        return
    flower, round_zero, outside_rounds = flower_round_times(args.rounds, overrides)
    plain = plain_round_times(args.rounds, overrides)
    result = {"rounds": args.rounds, "overrides": overrides,
              "flower_round_s": statistics.median(flower), "plain_round_s": statistics.median(plain),
              "ratio": statistics.median(flower) / statistics.median(plain),
              "flower_round0_s": round_zero, "flower_outside_rounds_s": outside_rounds,
              "torch_threads_plain": torch.get_num_threads()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
