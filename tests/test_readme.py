"""The README stays short, and what it and docs/ tell a reader to run or open exists.

Commands are read from fenced code blocks and inline code spans. `python -m fl_privacy.run ...` (or
`fl-privacy run ...`) must name existing presets and compose with Hydra as written (sweep lists: every
preset, the first value of other keys; upper-case placeholders such as `seed=S` are left out);
`fl-privacy COMMAND` must be a subcommand of the CLI's parser.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from fl_privacy.cli.commands import RUN_COMMANDS as RUN_DIR_COMMANDS
from fl_privacy.cli.commands import TABLE_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
RUN = re.compile(r"(?:python3? -m fl_privacy\.run|fl-privacy run)((?:\s+[^\s;|&#)]+)*)")
CLI = re.compile(r"(?:fl-privacy|python3? -m fl_privacy\.cli)\s+([^\s;&#)]+)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")
NOT_OVERRIDES = {"-m", "--multirun", "..."}


def _code(text: str) -> list[str]:
    """Every line of every fenced block (backslash continuations joined) and every inline code span."""
    blocks = [block.replace("\\\n", " ") for block in FENCE.findall(text)]
    prose = FENCE.sub("", text)
    return [line for block in blocks for line in block.splitlines()] + INLINE.findall(prose)


def _commands(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(page:command, captured part) for every match of `pattern` in the README and docs/*.md."""
    found = []
    for page in PAGES:
        for snippet in _code(page.read_text()):
            for match in pattern.finditer(snippet):
                found.append((f"{page.relative_to(ROOT)}: {match.group(0).strip()}", match.group(1)))
    return found


def _links(page: Path) -> list[Path]:
    """The files that the relative links (and images) of a page point to, anchors dropped."""
    targets = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        targets.append((page.parent / target.split("#")[0]).resolve())
    return targets


def _overrides(arguments: str) -> tuple[list[str], list[str]]:
    """The presets a run command names and the overrides to compose (one job of a sweep)."""
    presets, overrides = [], []
    for token in shlex.split(arguments):
        if token in NOT_OVERRIDES or token.startswith("hydra"):
            continue  # Hydra's own settings (launcher, run/sweep dir) are not part of the job's config
        override = OverridesParser.create().parse_override(token)
        key = override.get_key_element()
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() \
            else [override.get_value_element_as_str()]
        if key.lstrip("+~") == "experiment":
            presets += values
            overrides.append(f"{key}={values[0]}")
        elif not PLACEHOLDER.match(values[0]):
            overrides.append(f"{key}={values[0]}")
    return presets, overrides


RUN_COMMANDS = _commands(RUN)
CLI_COMMANDS = _commands(CLI)


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to a page under docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_files(page):
    missing = [str(target) for target in _links(page) if not target.exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_anchors_name_headings(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        path, _, anchor = target.partition("#")
        if not anchor or target.startswith(("http://", "https://")):
            continue
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            continue  # reported by test_relative_links_point_to_files
        headings = re.findall(r"^#+ (.*)$", FENCE.sub("", linked.read_text()), re.MULTILINE)
        if anchor not in {_slug(heading) for heading in headings}:
            broken.append(target)
    assert not broken, f"{page.name} links to anchors with no heading: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(_links(README))
    unlinked = [page.name for page in DOCS if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_the_pages_contain_the_commands_checked_below():
    """Guards the extraction itself: the README's main command and a CLI table command are found."""
    readme_runs = [where for where, _ in RUN_COMMANDS if where.startswith("README.md")]
    assert any("+experiment=gan_attack" in where for where in readme_runs)
    assert any("attack-table" in where for where, _ in CLI_COMMANDS)


@pytest.mark.parametrize("where,arguments", RUN_COMMANDS, ids=[where for where, _ in RUN_COMMANDS])
def test_run_commands_name_presets_and_compose(cfg_factory, where, arguments):
    presets, overrides = _overrides(arguments)
    for preset in presets:
        assert (ROOT / "conf" / "experiment" / f"{preset}.yaml").exists(), f"{where}: no preset {preset!r}"
    cfg_factory(*overrides)  # raises if Hydra cannot compose the command's config


@pytest.mark.parametrize("where,command", CLI_COMMANDS, ids=[where for where, _ in CLI_COMMANDS])
def test_cli_commands_exist(where, command):
    known = {"run", *RUN_DIR_COMMANDS, *TABLE_COMMANDS}  # what `fl_privacy.cli.commands.main` dispatches
    unknown = [name for name in command.split("|") if name not in known]
    assert not unknown, f"{where}: not a fl-privacy command: {unknown}"
