"""Flower's and Ray's usage telemetry: off unless the user opts in.

Flower reads its switch once, when `flwr` is first imported, so the entry points call this before
anything imports Flower. Should Flower already be imported (a second job of a multirun, a test), its
module-level switch is set as well, so the setting holds either way.
"""

from __future__ import annotations

import os
import sys

TELEMETRY_VARIABLES = ("FLWR_TELEMETRY_ENABLED", "RAY_USAGE_STATS_ENABLED")
FLOWER_TELEMETRY_MODULE = "flwr.supercore.telemetry"


def configure_telemetry(opt_in: bool) -> None:
    """Set Flower's and Ray's telemetry switches (`telemetry=true` opts in)."""
    value = "1" if opt_in else "0"
    for name in TELEMETRY_VARIABLES:
        os.environ[name] = value
    if (flower := sys.modules.get(FLOWER_TELEMETRY_MODULE)) is not None:
        flower.FLWR_TELEMETRY_ENABLED = value  # type: ignore[attr-defined]


def telemetry_environment() -> dict[str, str | None]:
    """The switches as this process has them (recorded in summary.json)."""
    return {name: os.environ.get(name) for name in TELEMETRY_VARIABLES}
