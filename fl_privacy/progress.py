"""Progress of long work: a tqdm bar when stderr is a terminal; otherwise the log lines are the progress."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def in_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: list[Item], desc: str, unit: str) -> Iterable[Item]:
    """tqdm over `items` in a terminal, the plain list otherwise."""
    if in_terminal():
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, unit=unit)
    return items


def steps(count: int, desc: str, show: bool) -> Iterable[int]:
    """range(count), as a transient tqdm bar when `show` (the caller decides, e.g. `in_terminal()`)."""
    if show:
        from tqdm.auto import trange

        return trange(count, desc=desc, leave=False)
    return range(count)


class RoundBar:
    """A bar over FL rounds (round 0 = warm-up is shown but not counted); a no-op without a terminal."""

    def __init__(self, bar=None) -> None:
        self.bar = bar

    def update(self, server_round: int, **postfix: float) -> None:
        if self.bar is None:
            return
        if server_round > 0:
            self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in postfix.items()}, refresh=True)


@contextlib.contextmanager
def round_progress(num_rounds: int) -> Iterator[RoundBar]:
    """A `RoundBar` for `num_rounds`; in a terminal the log lines print above the bar, not through it."""
    if not in_terminal():
        yield RoundBar()
        return
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(total=num_rounds, desc="FL rounds", unit="round") as bar:
        yield RoundBar(bar)
