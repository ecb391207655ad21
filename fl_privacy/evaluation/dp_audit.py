"""The empirical ε lower bound of one training run from canary scores (Steinke, Nasr & Jagielski 2023).

"Privacy Auditing with One (1) Training Run" (NeurIPS 2023, arXiv:2305.08846): m canaries are each
included independently with probability ½; the auditor guesses "in" for its k₊ highest-scored canaries,
"out" for its k₋ lowest, and abstains on the rest. If training is (ε, δ)-DP, the number of correct guesses
W among the r = k₊ + k₋ guesses satisfies (their Theorem 3.1 / Proposition 5.2)

    P[W ≥ v] ≤ P[Binomial(r, e^ε/(e^ε+1)) ≥ v] + 2mδ · max_{i=1..v} P[v > Binomial(r, ·) ≥ v − i] / i,

so the largest ε whose p-value stays below 1 − confidence is a lower bound on the true ε that holds with
that confidence. `p_value` and `epsilon_lower_bound` follow the paper's own code listing (its Algorithm
and appendix), with scipy's binomial; no library ships it in this environment (Google's `jax_privacy`
has one, but needs JAX), so it is written out here. The guess count k (k₊ = k₋ = k) is chosen from a
fixed list and the union bound pays for the choice (each k is tested at (1 − confidence)/len(list)), so
the best bound over the list still holds with the stated confidence.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from fl_privacy.evaluation.membership_metrics import finite_scores, membership_metrics


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[≥ v of r guesses correct] under (ε, δ)-DP with m canaries (Steinke et al. 2023, Prop. 5.2)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v={v} <= r={r} <= m={m}")
    q = 1 / (1 + math.exp(-epsilon))  # accuracy of ε-DP randomised response
    beta = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) ≥ v]
    # tail[i-1] = P[v > Binomial(r, q) ≥ v − i] for i = 1..v (vectorised; the paper's loop over i)
    tail = np.cumsum(stats.binom.pmf(np.arange(v - 1, -1, -1), r, q))
    alpha = float(np.max(tail / np.arange(1, v + 1))) if v else 0.0
    return min(beta + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, significance: float) -> float:
    """The largest ε (bisection, to 1e-6 of its bracket) whose p-value of v correct of r guesses is below
    `significance`; 0 when even ε = 0 cannot be rejected."""
    if p_value(m, r, v, 0.0, delta) >= significance:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < significance:
        low, high = high, 2 * high
    for _ in range(40):
        middle = (low + high) / 2
        if p_value(m, r, v, middle, delta) < significance:
            low = middle
        else:
            high = middle
    return low


def max_showable_epsilon(m: int, guesses: list[int], delta: float, confidence: float) -> float:
    """The largest ε lower bound `audit_epsilon` can give with m canaries: every one of the 2k guesses
    right, for the best k in `guesses` (each tested at (1 − confidence)/len(guesses)). An audit whose
    accounted ε is at or above this cannot contradict its accountant, whatever the model does."""
    significance = (1 - confidence) / len(guesses)
    return max((epsilon_lower_bound(m, 2 * k, 2 * k, delta, significance) for k in guesses if 2 * k <= m),
               default=0.0)


def violation_pvalue(per_k: list[dict], m: int, claimed_epsilon: float, delta: float) -> float:
    """The p-value of "the training is (claimed ε, δ)-DP" from the audit's guesses (`per_k` rows of
    `audit_epsilon`), Bonferroni over the k tried: below 1 − confidence exactly when the lower bound
    exceeds the claim. 1 for a claim of ∞. Tables adjust these across runs (Holm)."""
    if math.isinf(claimed_epsilon):
        return 1.0
    best = min(p_value(m, row["guesses"], row["correct"], claimed_epsilon, delta) for row in per_k)
    return min(1.0, best * len(per_k))


def audit_verdict(lower_bound: float, claimed_epsilon: float, showable: float,
                  pvalue: float | None = None) -> dict:
    """Whether the audit contradicts the claimed ε (`violation`: the lower bound, which holds at the
    audit's confidence, exceeds it), whether it could have (`can_fail`: the most it can show does), and
    the claim's p-value when given."""
    verdict = {"claimed_epsilon": claimed_epsilon, "violation": bool(lower_bound > claimed_epsilon),
               "can_fail": bool(showable > claimed_epsilon)}
    return verdict if pvalue is None else verdict | {"violation_pvalue": pvalue}


def audit_epsilon(scores: np.ndarray, included: np.ndarray, delta: float, confidence: float,
                  guesses: list[int]) -> dict:
    """The one-run audit of canary `scores` (higher = more likely inserted) against the truth `included`:
    the best ε lower bound over k in `guesses` (Bonferroni over the list), the guesses behind it, and the
    canaries' membership metrics (AUC, ...)."""
    scores, included = finite_scores(scores), np.asarray(included, dtype=bool)
    m, significance = len(scores), (1 - confidence) / len(guesses)
    order = np.argsort(-scores, kind="stable")
    per_k = []
    for k in guesses:
        correct = int(included[order[:k]].sum() + (~included[order[m - k:]]).sum())
        per_k.append({"k": k, "guesses": 2 * k, "correct": correct,
                      "epsilon_lower_bound": epsilon_lower_bound(m, 2 * k, correct, delta, significance)})
    best = max(per_k, key=lambda row: row["epsilon_lower_bound"])
    return {"epsilon_lower_bound": best["epsilon_lower_bound"], "confidence": confidence, "delta": delta,
            "max_showable_epsilon": max_showable_epsilon(m, guesses, delta, confidence),
            "num_canaries": m, "num_included": int(included.sum()), "best": best, "per_k": per_k,
            "method": "one-run audit (Steinke, Nasr & Jagielski 2023), Bonferroni over k",
            **{f"canary_{key}": value for key, value in membership_metrics(scores, included).items()}}
