"""`python -m fl_privacy.report PATH [--out DIR] [--metric KEY] [--color KEY]`: tabulate and plot a run or
multirun directory into `PATH/report/` (jobs.csv, PNG plots, report.html)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from fl_privacy.report.build import build_report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fl_privacy.report", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run or multirun directory (multirun/DATE/TIME)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default PATH/report)")
    parser.add_argument("--metric", default=None,
                        help="attack-success column of the frontier plot, e.g. attack.median_psnr")
    parser.add_argument("--color", default=None,
                        help="column that colours the frontier, e.g. privacy.max_epsilon or a swept key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    report = build_report(args.path, args.out, args.metric, args.color)
    logging.getLogger("fl_privacy.report").info("open %s", report.html)


if __name__ == "__main__":
    main()
