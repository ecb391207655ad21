"""One statistics standard for every table over runs (DESIGN.md, "Measurement standards").

- Per-seed values are always shown; a non-finite value (a diverged seed) is a reported value, counted
  in `diverged`, never dropped or replaced.
- **Bounded quantities** (AUC, TPR, accuracy, shares, ε lower bounds ≥ 0): a 95% percentile bootstrap of
  the mean over seeds (`scipy.stats.bootstrap`, fixed seed), clipped to the quantity's range. With n = 2 or
  3 seeds the bootstrap has few distinct resamples and its interval is close to the range of the values:
  it says "this is all the seeds show", not more.
- **Unbounded means**: a Student-t interval, only with ≥ 5 seeds; below that no interval (the values and
  their range are shown).
- **Proportions of counts**: exact (Clopper-Pearson) intervals.
- **Several claims from one table**: Holm's step-down adjustment of their p-values (`holm`); statsmodels
  is not installed here, and the procedure is a few lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_SEEDS_FOR_T = 5
BOOTSTRAP_RESAMPLES = 2000
UNIT = (0.0, 1.0)  # the range of AUCs, TPRs, accuracies and shares
NON_NEGATIVE = (0.0, math.inf)  # e.g. ε lower bounds


@dataclass(frozen=True)
class SeedSummary:
    """The per-seed values of one number, their mean over the finite ones, and the interval the
    standard allows (`method`: "bootstrap", "t", or "none" with the reason)."""

    values: tuple[float, ...]
    mean: float
    low: float
    high: float
    method: str

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def diverged(self) -> int:
        """Seeds whose value is not finite (reported, not dropped)."""
        return sum(not math.isfinite(v) for v in self.values)

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def summarise(values: Sequence[float | None], bounds: tuple[float, float] | None = None,
              confidence: float = CONFIDENCE, seed: int = 0) -> SeedSummary:
    """The standard's summary of `values` (one per seed; None or NaN = diverged): the mean of the finite
    values, and a bootstrap interval clipped to `bounds` for a bounded quantity, a t interval for an
    unbounded one with ≥ 5 finite values, else none."""
    every = tuple(math.nan if v is None else float(v) for v in values)
    finite = np.array([v for v in every if math.isfinite(v)])
    if finite.size == 0:
        return SeedSummary(every, math.nan, math.nan, math.nan, "none (no finite value)")
    mean = float(finite.mean())
    if finite.size < 2 or np.all(finite == finite[0]):
        reason = "none (one value)" if finite.size < 2 else "none (all values equal)"
        return SeedSummary(every, mean, math.nan, math.nan, reason)
    if bounds is not None:
        result = stats.bootstrap((finite,), np.mean, confidence_level=confidence,
                                 n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                                 random_state=np.random.default_rng(seed))
        low = max(float(result.confidence_interval.low), bounds[0])
        high = min(float(result.confidence_interval.high), bounds[1])
        return SeedSummary(every, mean, low, high, "bootstrap")
    if finite.size < MIN_SEEDS_FOR_T:
        return SeedSummary(every, mean, math.nan, math.nan, f"none (t needs ≥ {MIN_SEEDS_FOR_T} seeds)")
    half = float(stats.t.ppf((1 + confidence) / 2, finite.size - 1)) * float(finite.std(ddof=1)) \
        / math.sqrt(finite.size)
    return SeedSummary(every, mean, mean - half, mean + half, "t")


def summary_cell(summary: SeedSummary, fmt: str = "{:.3f}") -> str:
    """`mean [low, high]` (or the mean alone), with `(k of n diverged)` when seeds diverged."""
    if math.isnan(summary.mean):
        text = "n/a"
    elif summary.has_interval:
        text = f"{fmt.format(summary.mean)} [{fmt.format(summary.low)}, {fmt.format(summary.high)}]"
    else:
        text = fmt.format(summary.mean)
    return text + (f" ({summary.diverged} of {summary.n} diverged)" if summary.diverged else "")


def per_seed_cell(values: Sequence[float | None], fmt: str = "{:.2f}") -> str:
    """Every seed's value in order; a diverged seed shows as `diverged`."""
    return ", ".join("diverged" if v is None or not math.isfinite(v) else fmt.format(v) for v in values)


def exact_proportion(hits: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(share, low, high) with the exact Clopper-Pearson interval."""
    interval = stats.binomtest(hits, n).proportion_ci(confidence_level=confidence, method="exact")
    return hits / n, float(interval.low), float(interval.high)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control over several claims): sort
    ascending, multiply the i-th smallest by (m − i), take the running maximum, cap at 1."""
    order = np.argsort(pvalues, kind="stable")
    m, adjusted, running = len(pvalues), [0.0] * len(pvalues), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[index])))
        adjusted[index] = running
    return adjusted


def metric_bounds(name: str) -> tuple[float, float] | None:
    """The range of a metric known by its name (for tables that aggregate any metric of a run): AUCs,
    accuracies, TPRs, shares and rates in [0, 1]; ε lower bounds ≥ 0; anything else unbounded."""
    lowered = name.lower()
    if any(word in lowered for word in ("accuracy", "auc", "tpr", "share", "rate", "fraction")):
        return UNIT
    if "epsilon_lower_bound" in lowered:
        return NON_NEGATIVE
    return None
