"""Flower's and Ray's usage telemetry: off unless the user opts in.

Flower reads its switch once, when `flwr` is first imported, so this must run before anything imports
Flower (the entry point calls it right after validating the settings, before it imports the lab).
"""

from __future__ import annotations

import os

TELEMETRY_VARIABLES = ("FLWR_TELEMETRY_ENABLED", "RAY_USAGE_STATS_ENABLED")


def configure_telemetry(opt_in: bool) -> None:
    """Set Flower's and Ray's telemetry switches (`telemetry=true` opts in)."""
    for name in TELEMETRY_VARIABLES:
        os.environ[name] = "1" if opt_in else "0"


def telemetry_environment() -> dict[str, str | None]:
    """The switches as this process has them (recorded in summary.json)."""
    return {name: os.environ.get(name) for name in TELEMETRY_VARIABLES}
