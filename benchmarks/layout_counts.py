"""Counts that say how well the package keeps its house rules (issue "House, step 2"), on any checkout:

- run-directory names: how many modules spell a run's file or folder names as string literals (only
  `fl_privacy/run_layout.py` should), and how many literals in all;
- upward imports: imports from a lower layer into a higher one (leaves into anything, attacks /
  evaluation / defenses / apps / strategies into the lab, the commands or the report);
- the lab's top-level modules;
- whole-`Settings` parameters: public functions outside the entry points and the lab that take the whole
  `Settings` rather than their own section.

    python benchmarks/layout_counts.py [ROOT]   # ROOT: a checkout (default: this one); prints JSON
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import Counter
from pathlib import Path

# The names a run directory holds (as of this issue); a literal that is one of them, or ends in one after a
# slash, counts as spelling a run-directory name.
RUN_NAMES = ("summary.json", "metrics.jsonl", "final_model.pt", "run.log", "accuracy.png", "scores.json",
             "attack_scores.json", "updates.json", "updates_auc.png", "evaluation.json", "progression.png",
             "grid.png", "table.json", "table.csv", "par_gan_table.json", "par_gan_table.csv", "roc.png",
             "server.pt", "report.html", "jobs.csv", "seeds.csv", "captures", "truth", "attack", "mia",
             "dp_audit", "gan", "checkpoint", "nodes", "lab", "generators", "grids", "reconstructions",
             "representation_inversion")
NAME = re.compile(r"^(?:[\w.{}-]+/)*(?:" + "|".join(re.escape(n) for n in RUN_NAMES) + r")$")
# Layers, lowest first: an import from a module into a higher layer climbs up; an entry point or command
# importing past the lab (into apps or strategies) reaches around it.
LAYERS = (("fl_privacy.data", "fl_privacy.models", "fl_privacy.training", "fl_privacy.protocol",
           "fl_privacy.seeding", "fl_privacy.results", "fl_privacy.errors", "fl_privacy.figures",
           "fl_privacy.run_layout", "fl_privacy.config"),
          ("fl_privacy.attacks", "fl_privacy.evaluation", "fl_privacy.defenses", "fl_privacy.apps",
           "strategies"),
          ("fl_privacy.lab",),
          ("fl_privacy.report",),
          ("fl_privacy.cli", "fl_privacy.run", "fl_privacy.launch_checks"))
SETTINGS_ALLOWED = ("fl_privacy.lab", "fl_privacy.cli", "fl_privacy.run", "fl_privacy.launch_checks",
                    "fl_privacy.config", "fl_privacy.report")


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in ("fl_privacy", "strategies"):
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _path_literals(node: ast.AST) -> list[str]:
    """String literals used as paths: a file name with a suffix anywhere, a bare folder name only as an
    operand of `/` or an argument of `Path(...)`, `glob`, `rglob` (a bare word elsewhere is a key)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value.lstrip("."):
        return [node.value]
    operands: list[ast.AST] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        operands = [node.left, node.right]
    elif isinstance(node, ast.Call):
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if callee in ("Path", "glob", "rglob"):
            operands = list(node.args)
    return [o.value for o in operands
            if isinstance(o, ast.Constant) and isinstance(o.value, str) and "." not in o.value.lstrip(".")]


def _layer(name: str) -> int | None:
    return next((rank for rank, layer in enumerate(LAYERS) if _within(name, layer)), None)


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def counts(root: Path) -> dict:
    modules = _modules(root)
    spelled: Counter = Counter()
    upward, settings_params = [], []
    for name, path in modules.items():
        if name == "fl_privacy.run_layout":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if found := sum(1 for literal in _path_literals(node) if NAME.match(literal)):
                spelled[name] += found
            if (isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
                    and not _within(name, SETTINGS_ALLOWED)):
                for arg in node.args.args:
                    if isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Settings":
                        settings_params.append(f"{name}.{node.name}")
        for target in _imports(tree):
            here, there = _layer(name), _layer(target)
            if there is not None and here is not None and (there > here or (here >= 3 and there == 1)):
                upward.append(f"{name} -> {target}")
    lab = root / "fl_privacy" / "lab"
    names = {"modules": len(spelled), "modules_more_than_once": sum(c > 1 for c in spelled.values()),
             "literals": sum(spelled.values()), "per_module": dict(spelled.most_common())}
    return {"run_dir_names": names,
            "upward_or_around_imports": sorted(upward),
            "lab_top_level_modules": sorted(p.stem for p in lab.glob("*.py") if p.stem != "__init__"),
            "whole_settings_parameters": sorted(settings_params)}


if __name__ == "__main__":
    print(json.dumps(counts(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]),
                     indent=1))
