"""The house rules of the code layout (docs/architecture.md), checked on the source: who may import whom,
typed settings below the entry points (and leaves receive their own section), one name per module, no
import cycle, run-directory names spelled only in `run_layout`, a lab of sub-packages with few top modules."""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import layout_counts  # noqa: E402  (the counts benchmarks/layout_counts.py prints, asserted here)

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fl_privacy", "strategies")
# The entry points and the translator from Hydra's config: the only modules that may touch DictConfig.
DICTCONFIG_ALLOWED = {"fl_privacy.run", "fl_privacy.launch_checks", "fl_privacy.config",
                      "fl_privacy.config.sweeps", "fl_privacy.lab.flwr_entry"}
LEAVES = ("fl_privacy.data", "fl_privacy.models", "fl_privacy.training", "fl_privacy.protocol",
          "fl_privacy.seeding", "fl_privacy.results", "fl_privacy.config", "fl_privacy.errors",
          "fl_privacy.progress", "fl_privacy.allocator", "fl_privacy.figures", "fl_privacy.run_layout",
          "fl_privacy.privacy_record", "fl_privacy.user_model")
COMMANDS = ("fl_privacy.cli", "fl_privacy.report", "fl_privacy.run", "fl_privacy.launch_checks")
UPPER = ("fl_privacy.lab", *COMMANDS)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = source_modules()
IMPORTS = {name: {i for i in imports_of(path) if i in MODULES} for name, path in MODULES.items()}


def test_each_module_name_appears_once():
    names = Counter(path.stem for path in MODULES.values() if path.stem not in ("__init__", "__main__"))
    assert [name for name, count in names.items() if count > 1] == []


def test_dictconfig_stays_at_the_entry_points():
    users = {name for name, path in MODULES.items() if "DictConfig" in path.read_text()}
    assert users <= DICTCONFIG_ALLOWED, f"below the entry points: {sorted(users - DICTCONFIG_ALLOWED)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("strategies")))
def test_strategies_import_only_flower_torch_and_leaves(module):
    allowed = ("strategies", "fl_privacy.data.images", "fl_privacy.models", "fl_privacy.training",
               "fl_privacy.protocol", "fl_privacy.results", "fl_privacy.seeding", "fl_privacy.errors",
               "fl_privacy.run_layout", "fl_privacy.privacy_record")
    outside = {i for i in imports_of(MODULES[module])
               if i.startswith("fl_privacy") and not _within(i, allowed)}
    assert outside == set()


RULES = [  # (importer, must not import)
    ("fl_privacy.attacks", ("fl_privacy.lab", "fl_privacy.cli", "fl_privacy.apps", "fl_privacy.evaluation",
                            "fl_privacy.data.datasets", "fl_privacy.data.federation",
                            "fl_privacy.data.partition", "fl_privacy.data.membership_split", "strategies")),
    ("fl_privacy.evaluation", ("fl_privacy.attacks", *UPPER, "fl_privacy.apps")),
    ("fl_privacy.apps", UPPER),
    ("fl_privacy.defenses", (*UPPER, "fl_privacy.apps", "fl_privacy.attacks", "fl_privacy.evaluation")),
    ("strategies", (*UPPER, "fl_privacy.apps", "fl_privacy.attacks", "fl_privacy.evaluation")),
    ("fl_privacy.lab", COMMANDS),  # nothing below the commands imports the report or the cli
    *[(leaf, (*UPPER, "fl_privacy.apps", "fl_privacy.attacks", "fl_privacy.defenses",
              "fl_privacy.evaluation", "strategies")) for leaf in LEAVES],
    # the report reads finished runs' files: leaves only
    ("fl_privacy.report", ("fl_privacy.lab", "fl_privacy.cli", "fl_privacy.run", "fl_privacy.apps",
                           "fl_privacy.attacks", "fl_privacy.defenses", "fl_privacy.evaluation",
                           "strategies")),
]


@pytest.mark.parametrize("importer,forbidden", RULES, ids=[rule[0] for rule in RULES])
def test_import_direction(importer, forbidden):
    crossing = {f"{name} -> {target}" for name, targets in IMPORTS.items()
                if _within(name, [importer])
                for target in targets if _within(target, forbidden)}
    assert crossing == set()


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module import graph: none may hold two modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in IMPORTS[node]:
            target = target if target in IMPORTS else target.rsplit(".", 1)[0]
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in IMPORTS:
        if module not in index:
            visit(module)
    # a package's __init__ re-exporting its own modules is not a cycle between modules
    cycles = [c for c in cycles if not all(m.startswith(min(c, key=len)) for m in c)]
    assert cycles == []


def test_run_directory_names_are_spelled_only_in_run_layout():
    """No module but `fl_privacy/run_layout.py` spells a run's file or folder name as a path literal."""
    spelled = layout_counts.counts(ROOT)["run_dir_names"]
    assert spelled["per_module"] == {}


def test_lab_is_sub_packages_with_at_most_8_top_modules_and_leaves_take_their_own_section():
    counts = layout_counts.counts(ROOT)
    assert len(counts["lab_top_level_modules"]) <= 8, counts["lab_top_level_modules"]
    assert counts["upward_or_around_imports"] == []
    takers = counts["whole_settings_parameters"]  # outside the entry points, the lab and the commands
    assert [name for name in takers if _within(name, LEAVES)] == [], takers
