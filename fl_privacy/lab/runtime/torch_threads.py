"""A pipeline may run with its own torch thread count; the job after it in the same process (a multirun)
must not inherit it, since the thread count changes the order of float sums and so the last bits of
every number (measured: a GAN run's central loss moved 2e-6 after a membership audit had run first)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")


def restores_torch_threads(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: the process's torch thread count is put back when `function` returns or raises."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        threads = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper
