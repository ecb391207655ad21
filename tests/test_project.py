"""The project's promises about itself: CI runs the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return [line for line in lines if line.startswith("python3 -m pip install")]


def test_ci_runs_the_readme_test_command_verbatim():
    commands = readme_commands()
    test_command = [c for c in commands if c.endswith("-m pytest")]
    assert len(test_command) == 1
    assert test_command[0] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_run_command_runs_the_baseline_preset():
    run_command = [c for c in readme_commands() if "fl_privacy.run" in c]
    assert len(run_command) == 1
    preset = run_command[0].split("+experiment=")[1]
    assert (ROOT / "conf" / "experiment" / f"{preset}.yaml").exists()
