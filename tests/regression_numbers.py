"""The numbers the regression guard pins for a finished run: everything measured, nothing timed.

Reads a run directory (of today's code, or of the main the numbers were first pinned on) and returns plain
JSON: metrics.jsonl without `seconds` (client metric names in today's kebab-case), the GAN monitor's summary,
the gradient-inversion scores and the membership auditor's raw scores.
"""

from __future__ import annotations

import json
from pathlib import Path

TIMINGS = {"seconds", "wall_seconds", "median_seconds_per_capture"}


def _kebab(section: dict) -> dict:
    return {key.replace("_", "-"): value for key, value in section.items()}


def _without_timings(node):
    if isinstance(node, dict):
        return {k: _without_timings(v) for k, v in node.items() if k not in TIMINGS}
    if isinstance(node, list):
        return [_without_timings(v) for v in node]
    return node


def pinned_numbers(run_dir: Path) -> dict:
    """What a run measured, comparable across the refactoring."""
    run_dir = Path(run_dir)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    for record in records:
        record["train"], record["evaluate"] = _kebab(record["train"]), _kebab(record["evaluate"])
        # failed replies are counted since the golden files were made; a pinned run has none
        assert not any(record.pop("failures", {}).values()), f"round {record['round']} had failed replies"
    numbers: dict = {"rounds": _without_timings(records)}
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get("attacks"):
        numbers["attacks"] = _without_timings(summary["attacks"])
    scores = run_dir / "attack" / "scores.json"
    if scores.exists():
        captures = json.loads(scores.read_text())["captures"]
        numbers["inversion"] = _without_timings(captures)
    mia = run_dir / "mia" / "attack_scores.json"
    if mia.exists():
        numbers["membership_scores"] = json.loads(mia.read_text())["scores"]
    return numbers
