"""Benchmark: per-job fixed cost inside a multirun, with one Ray per sweep vs one Ray per job.

Runs the same multirun twice (`-m seed=0..N-1` of a short default job): with `simulation.reuse_ray=true`
(Ray and the client actors kept from job to job, the default) and `false` (each job starts and stops its own
Ray and actors, the behaviour before). Per-job fixed cost = (the sweep's wall time, process start to exit,
minus the seconds of every job's FL rounds 1..R) / N: imports, data, Ray, actors, the partition query, the
warm-up, writing results and shutdown. Round 0 (the warm-up and the first contact with the actors) is shown on
its own. Usage:

    python benchmarks/sweep_fixed_cost.py [--jobs 8] [--rounds 2] [hydra overrides ...]
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

from fl_privacy.results import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def sweep_cost(jobs: int, rounds: int, reuse_ray: bool, overrides: list[str]) -> dict:
    """Wall time of one multirun and its per-job fixed cost (see the module docstring)."""
    with tempfile.TemporaryDirectory() as sweep_dir:
        started = time.monotonic()
        seeds = ",".join(map(str, range(jobs)))
        command = [sys.executable, "-m", "fl_privacy.run", "-m", f"seed={seeds}",
                   f"strategy.num_rounds={rounds}", "save_model=false", f"simulation.reuse_ray={reuse_ray}",
                   *overrides, f"hydra.sweep.dir={sweep_dir}"]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        wall = time.monotonic() - started
        records = [read_metrics(Path(sweep_dir) / str(job) / "metrics.jsonl") for job in range(jobs)]
    round_seconds = sum(r["seconds"] for job in records for r in job if r["round"] >= 1)
    return {"reuse_ray": reuse_ray, "sweep_wall_s": wall, "round_seconds": round_seconds,
            "fixed_cost_per_job_s": (wall - round_seconds) / jobs,
            "round_zero_s_median": statistics.median(job[0]["seconds"] for job in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args, overrides = parser.parse_known_args()
    results = [sweep_cost(args.jobs, args.rounds, reuse, overrides) for reuse in (False, True)]
    print(json.dumps({"jobs": args.jobs, "rounds": args.rounds, "overrides": overrides, "runs": results},
                     indent=2))


if __name__ == "__main__":
    main()
