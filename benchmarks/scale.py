"""Benchmark: many virtual clients. Seconds per round and peak memory of the whole process tree.

Runs `python -m fl_privacy.run` (real Flower simulation on Ray) with `partition=iid` and
`strategy.fraction_train` (and `fraction_evaluate`) chosen so that about `--per-round` clients train
(and evaluate) per round, for each client count. A thread samples the resident memory (RSS) of the
driver and all its descendants (Ray's GCS, raylet, workers and client actors) every `--interval`
seconds and keeps the peak of the sum. Prints a JSON list and a Markdown table. Usage:

    nice -n 10 python benchmarks/scale.py [--clients 100 1000] [--rounds 4] [--per-round 10] \
        [--json results.json] [hydra overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from fl_privacy.results import read_metrics

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of `process` and all its descendants (processes that vanish are skipped)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_sampled(command: list[str], interval: float) -> tuple[float, int, int]:
    """Run `command`; returns wall seconds, the peak tree RSS and the most processes seen at once."""
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(child.pid)
    peak = {"rss": 0, "processes": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak["rss"] = max(peak["rss"], tree_rss(root))
                peak["processes"] = max(peak["processes"], 1 + len(root.children(recursive=True)))
            except psutil.Error:
                pass
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return time.monotonic() - started, peak["rss"], peak["processes"]


def measure(clients: int, rounds: int, per_round: int, interval: float, overrides: list[str]) -> dict:
    """One simulation of `clients` virtual clients; its round times and memory."""
    fraction = min(1.0, per_round / clients)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as run_dir:
        command = [sys.executable, "-m", "fl_privacy.run", "partition=iid",
                   f"simulation.num_clients={clients}", f"strategy.num_rounds={rounds}",
                   f"strategy.fraction_train={fraction}",
                   f"strategy.fraction_evaluate={fraction}", "save_model=false", *overrides,
                   f"hydra.run.dir={run_dir}"]
        wall, peak_rss, processes = run_sampled(command, interval)
        records = read_metrics(Path(run_dir) / "metrics.jsonl")
        log_text = (Path(run_dir) / "run.log").read_text()
    seconds = [r["seconds"] for r in records]
    discovery = [line for line in log_text.splitlines() if "partition ids of" in line]
    return {"clients": clients, "rounds": rounds, "fraction_train": fraction,
            "clients_per_round": records[-1]["train"].get("num-clients"),
            "round_s_median": statistics.median(seconds[2:] or seconds[1:]),
            "round1_s": seconds[1] if len(seconds) > 1 else None, "round0_s": seconds[0],
            "outside_rounds_s": wall - sum(seconds), "wall_s": wall,
            "peak_tree_rss_gib": peak_rss / GIB, "peak_processes": processes,
            "discovery_log": discovery[-1].split(" - ", 1)[-1] if discovery else None,
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "overrides": overrides}


def markdown(results: list[dict]) -> str:
    lines = ["| clients | train per round | s / round (median, rounds >= 2) | round 0 s | outside rounds s "
             "| wall s | peak RSS of the process tree (GiB) | processes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['clients']} | {r['clients_per_round']} | {r['round_s_median']:.2f} | "
                     f"{r['round0_s']:.1f} | {r['outside_rounds_s']:.1f} | {r['wall_s']:.0f} | "
                     f"{r['peak_tree_rss_gib']:.2f} | {r['peak_processes']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args, overrides = parser.parse_known_args()
    results = [measure(n, args.rounds, args.per_round, args.interval, overrides) for n in args.clients]
    print(json.dumps(results, indent=2))
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
