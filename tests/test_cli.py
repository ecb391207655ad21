"""`fl-privacy COMMAND`: one convention, one clear line and exit code 2 for bad input, before heavy work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fl_privacy.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]


def test_run_goes_through_hydra_and_fails_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fl_privacy.cli", "run", "strategy.num_rounds=0",
                             f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "config error" in line]
    assert result.returncode == 2 and len(errors) == 1 and "strategy.num_rounds" in errors[0]


def test_a_folder_that_is_no_run_is_named(tmp_path, caplog):
    assert main(["attack", str(tmp_path)]) == 2
    assert str(tmp_path / "summary.json") in caplog.text


@pytest.fixture
def finished_run(tmp_path, settings_factory):
    """A run directory as far as the commands read it before heavy work: its summary's settings."""
    settings = settings_factory("+experiment=mia")
    (tmp_path / "summary.json").write_text(json.dumps({"config": settings.model_dump(mode="json")}))
    return tmp_path


@pytest.mark.parametrize("command,override,key", [
    ("audit", "data.holdout_fraction=0.2", "data.holdout_fraction"),  # not the auditor's to change
    ("audit", "attack.membership.target=everyone", "attack.membership.target"),
    ("attack", "attack.gradient_inversion.iterations=0", "attack.gradient_inversion.iterations"),
    ("invert", "attack.representation_inversion.layers=[nowhere]", "attack.representation_inversion.layers"),
])
def test_bad_overrides_name_the_key(finished_run, caplog, command, override, key):
    assert main([command, str(finished_run), override]) == 2
    assert key in caplog.text and len(caplog.records) == 1


@pytest.mark.parametrize("command", ["attack-table", "membership-table", "dp-audit-table", "fl-audit-table",
                                     "gan-table", "par-gan-table"])
def test_a_table_over_a_folder_with_nothing_to_read_says_so_and_exits_2(finished_run, caplog, command):
    """A folder with a finished run but none of the files the table reads: one line naming what is missing,
    exit 2 (not an empty table and exit 0)."""
    assert main([command, str(finished_run)]) == 2
    assert len(caplog.records) == 1 and str(finished_run) in caplog.text


def test_corrupt_summary_is_named(tmp_path, caplog):
    (tmp_path / "summary.json").write_text('{"config": ')
    assert main(["audit", str(tmp_path)]) == 2
    assert "summary.json" in caplog.text and "corrupt" in caplog.text
