"""Score membership-inference attacks against the truth (the only place that knows who is a member):
ROC AUC, balanced accuracy, TPR at low FPR, LOGAN's top-k accuracy, and the log-log ROC figure."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import auc, roc_auc_score, roc_curve

from fl_privacy.figures import plot_roc_curves

log = logging.getLogger(__name__)

LOW_FPRS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}
CONFIDENCE = 0.95


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The highest TPR of any threshold whose FPR is at most `max_fpr`."""
    return float(tpr[fpr <= max_fpr].max())


def measurable(max_fpr: float, num_out: int) -> bool:
    """Whether `num_out` non-members can resolve an FPR of `max_fpr` (one false positive is 1/num_out)."""
    return max_fpr * num_out >= 1


def _point_metrics(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float | None]:
    fpr, tpr, _ = roc_curve(is_member, scores)
    num_out = int((~is_member).sum())
    # the trapezoidal area under the whole ROC curve equals roc_auc_score (ties included), one sort fewer
    metrics: dict[str, float | None] = {"auc": float(auc(fpr, tpr)),
                                        "balanced_accuracy": float(((tpr + 1 - fpr) / 2).max()),
                                        "tpr_at_zero_fpr": tpr_at_fpr(fpr, tpr, 0.0)}
    metrics.update({key: tpr_at_fpr(fpr, tpr, bound) if measurable(bound, num_out) else None
                    for key, bound in LOW_FPRS.items()})
    return metrics


def bootstrap_intervals(scores: np.ndarray, is_member: np.ndarray, resamples: int, seed: int = 0
                        ) -> dict[str, list[float]]:
    """95% percentile intervals of AUC and the measurable TPR@FPR figures, from a stratified bootstrap.

    Hand-written because scipy.stats.bootstrap resamples records jointly, which changes the number of
    non-members (and so the FPR grid) from resample to resample; resampling members and non-members
    separately keeps both counts fixed, as for ROC curves in pROC (Robin et al. 2011)."""
    rng = np.random.default_rng(seed)
    ins, outs = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    labels = np.concatenate([np.ones(len(ins), bool), np.zeros(len(outs), bool)])
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        chosen = np.concatenate([rng.choice(ins, len(ins)), rng.choice(outs, len(outs))])
        for key, value in _point_metrics(scores[chosen], labels).items():
            if value is not None and key != "balanced_accuracy":
                draws.setdefault(key, []).append(value)
    tail = (1 - CONFIDENCE) / 2 * 100
    return {f"{key}_ci": [float(v) for v in np.percentile(values, [tail, 100 - tail])]
            for key, values in draws.items()}


class UnscorableModel(ValueError):
    """The attacked model gave non-finite scores (it diverged): no membership measure exists."""


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """`scores` as floats, or `UnscorableModel` saying how many are NaN/inf."""
    scores = np.asarray(scores, dtype=float)
    if bad := int((~np.isfinite(scores)).sum()):
        raise UnscorableModel(f"{bad} of {len(scores)} membership scores are not finite: the attacked "
                              "model diverged (see the central accuracy in metrics.jsonl); nothing to audit")
    return scores


def membership_metrics(scores: np.ndarray, is_member: np.ndarray, resamples: int = 0) -> dict:
    """AUC, balanced accuracy at the best threshold, TPR at zero, 1% and 0.1% FPR, the smallest measurable
    FPR (`fpr_resolution` = 1/non-members), and with `resamples` their bootstrap CIs.

    A TPR at an FPR below 1/non-members is not measured: it is None, not the TPR at zero false positives
    (that is `tpr_at_zero_fpr`)."""
    scores, is_member = finite_scores(scores), np.asarray(is_member, dtype=bool)
    num_out = int((~is_member).sum())
    metrics: dict = _point_metrics(scores, is_member)
    metrics.update({"num_members": int(is_member.sum()), "num_non_members": num_out,
                    "fpr_resolution": 1 / num_out})
    if resamples:
        metrics.update(bootstrap_intervals(scores, is_member, resamples))
    return metrics


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluate_scores(scores: dict[str, np.ndarray], is_member: np.ndarray, figure: Path,
                    title: str = "", resamples: int = 0) -> dict[str, dict]:
    """Metrics per attack (CIs from `resamples` bootstrap draws), and the ROC curves of all attacks on
    log-log axes in the PNG `figure`."""
    results, curves = {}, {}
    for name, values in scores.items():
        results[name] = membership_metrics(values, is_member, resamples)
        fpr, tpr, _ = roc_curve(is_member, values)
        curves[f"{name} (AUC {results[name]['auc']:.3f})"] = (fpr, tpr)
        log.info("membership %s: AUC %.3f, balanced acc. %.3f, TPR@1%%FPR %s, TPR@0.1%%FPR %s",
                 name, results[name]["auc"], results[name]["balanced_accuracy"],
                 _fmt(results[name]["tpr_at_1pct_fpr"]), _fmt(results[name]["tpr_at_0.1pct_fpr"]))
    plot_roc_curves(curves, Path(figure), 1 / int((~np.asarray(is_member)).sum()), title)
    return results


def top_k_accuracy(scores: np.ndarray, is_member: np.ndarray) -> float:
    """LOGAN's accuracy: the share of members among the |members| highest-scored records
    (0.5 = chance when members and non-members are equally many; ties broken by position)."""
    is_member = np.asarray(is_member, dtype=bool)
    count = int(is_member.sum())
    if count == 0:
        raise ValueError("top_k_accuracy needs at least one member")
    top = np.argsort(-np.asarray(scores), kind="stable")[:count]
    return float(is_member[top].mean())


def logan_metrics(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float]:
    """Top-|members| accuracy and ROC AUC (scikit-learn) of one attack's scores."""
    return {"accuracy": top_k_accuracy(scores, is_member),
            "auc": float(roc_auc_score(np.asarray(is_member, dtype=int), scores))}
