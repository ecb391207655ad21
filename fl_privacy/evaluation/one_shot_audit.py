"""ε estimated from canary cosines (Andrew, Kairouz, Oh, Oprea, McMahan & Suriyakumar, "One-shot
empirical privacy estimation for federated learning", ICLR 2024, Algorithm 2).

Each inserted canary's cosine with the final model delta, and each fresh (never inserted) canary's, are
summarised by a Gaussian fit (mean, standard deviation). The estimate is the ε at which the two fitted
Gaussians are (ε, δ)-indistinguishable, in both directions: the smallest ε with

    max(H_ε(P ‖ Q), H_ε(Q ‖ P)) ≤ δ,   H_ε(P ‖ Q) = ∫ max(0, p − e^ε q),

P = N(μ_in, σ_in²), Q = N(μ_fresh, σ_fresh²). With equal variances this is the Gaussian mechanism's
privacy profile at μ = |μ_in − μ_fresh| / σ (Balle & Wang 2018); unequal variances are handled exactly
(the region where log p − log q > ε is where a quadratic is positive, its masses are normal CDFs, in
log space so large ε does not overflow). It is an estimate, not a bound: it holds as far as the
cosines are Gaussian (the paper's assumption, good for many rounds of high-dimensional noise).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import logsumexp


def _log_interval_mass(low: float, high: float, mean: float, std: float) -> float:
    """log P[low < X < high] for X ~ N(mean, std²), accurate far in the tails."""
    a, b = (low - mean) / std, (high - mean) / std
    if a >= b:
        return -math.inf
    if a > 0:  # right tail: survival functions
        upper, lower = float(stats.norm.logsf(a)), float(stats.norm.logsf(b))
    else:
        upper, lower = float(stats.norm.logcdf(b)), float(stats.norm.logcdf(a))
    return upper + math.log1p(-math.exp(lower - upper)) if lower > -math.inf else upper


def _region(mean_p: float, std_p: float, mean_q: float, std_q: float, epsilon: float
            ) -> list[tuple[float, float]]:
    """Intervals where log p(x) − log q(x) > ε (a quadratic A x² + B x + C > 0)."""
    a = 1 / (2 * std_q**2) - 1 / (2 * std_p**2)
    b = mean_p / std_p**2 - mean_q / std_q**2
    c = mean_q**2 / (2 * std_q**2) - mean_p**2 / (2 * std_p**2) + math.log(std_q / std_p) - epsilon
    if abs(a) < 1e-12 * max(abs(b), 1e-300):
        if b == 0:
            return [(-math.inf, math.inf)] if c > 0 else []
        root = -c / b
        return [(root, math.inf)] if b > 0 else [(-math.inf, root)]
    discriminant = b * b - 4 * a * c
    if discriminant <= 0:
        return [(-math.inf, math.inf)] if a > 0 else []
    roots = sorted(((-b - math.sqrt(discriminant)) / (2 * a), (-b + math.sqrt(discriminant)) / (2 * a)))
    return [(-math.inf, roots[0]), (roots[1], math.inf)] if a > 0 else [(roots[0], roots[1])]


def hockey_stick(mean_p: float, std_p: float, mean_q: float, std_q: float, epsilon: float) -> float:
    """H_ε(P ‖ Q) = ∫ max(0, p − e^ε q) for P = N(mean_p, std_p²), Q = N(mean_q, std_q²)."""
    region = _region(mean_p, std_p, mean_q, std_q, epsilon)
    if not region:
        return 0.0
    log_p = logsumexp([_log_interval_mass(lo, hi, mean_p, std_p) for lo, hi in region])
    log_q = logsumexp([_log_interval_mass(lo, hi, mean_q, std_q) for lo, hi in region])
    if log_p == -math.inf:
        return 0.0
    return max(0.0, math.exp(log_p) * -math.expm1(min(epsilon + log_q - log_p, 0.0)))


def gaussian_pair_epsilon(mean_p: float, std_p: float, mean_q: float, std_q: float, delta: float) -> float:
    """The smallest ε ≥ 0 at which N(mean_p, std_p²) and N(mean_q, std_q²) are (ε, δ)-indistinguishable
    both ways (bisection to 1e-6 relative)."""

    def excess(epsilon: float) -> float:
        return max(hockey_stick(mean_p, std_p, mean_q, std_q, epsilon),
                   hockey_stick(mean_q, std_q, mean_p, std_p, epsilon)) - delta

    if excess(0.0) <= 0:
        return 0.0
    low, high = 0.0, 1.0
    while excess(high) > 0:
        low, high = high, 2 * high
        if high > 1e7:
            return math.inf
    while high - low > 1e-6 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if excess(middle) > 0 else (low, middle)
    return high


def one_shot_epsilon(inserted: np.ndarray, fresh: np.ndarray, delta: float) -> dict:
    """Andrew et al.'s estimate from the cosines of `inserted` and `fresh` canaries with the final model
    delta: the two Gaussian fits, the ε they imply at δ, and a two-sample test that the inserted
    cosines differ from the fresh ones at all (Mann-Whitney U, one-sided)."""
    inserted, fresh = np.asarray(inserted, dtype=float), np.asarray(fresh, dtype=float)
    if len(inserted) < 2 or len(fresh) < 2:
        raise ValueError("need at least 2 inserted and 2 fresh canaries for a Gaussian fit")
    mean_in, std_in = float(inserted.mean()), float(inserted.std(ddof=1))
    mean_fresh, std_fresh = float(fresh.mean()), float(fresh.std(ddof=1))
    test = stats.mannwhitneyu(inserted, fresh, alternative="greater")
    pooled = math.sqrt(((len(inserted) - 1) * std_in**2 + (len(fresh) - 1) * std_fresh**2)
                       / (len(inserted) + len(fresh) - 2))
    return {"empirical_epsilon": gaussian_pair_epsilon(mean_in, std_in, mean_fresh, std_fresh, delta),
            # one pooled variance: the Gaussian mechanism at μ = |Δmean| / pooled std (less sensitive to the
            # sampling error of the two standard deviations, which alone gives ε > 0 at small δ)
            "empirical_epsilon_equal_variance": gaussian_pair_epsilon(mean_in, pooled, mean_fresh, pooled,
                                                                      delta),
            "delta": delta, "num_inserted": len(inserted), "num_fresh": len(fresh),
            "inserted_cosine_mean": mean_in, "inserted_cosine_std": std_in,
            "fresh_cosine_mean": mean_fresh, "fresh_cosine_std": std_fresh,
            "separation_pvalue": float(test.pvalue),
            "method": "one-shot estimate (Andrew et al., ICLR 2024): Gaussian fits of canary cosines"}
