"""Score membership-inference attacks against the truth (the only place that knows who is a member):
ROC AUC, balanced accuracy, TPR at low FPR, LOGAN's top-k accuracy, and the log-log ROC figure."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from fl_privacy.report.figures import plot_roc_curves

log = logging.getLogger(__name__)

LOW_FPRS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The highest TPR of any threshold whose FPR is at most `max_fpr`."""
    return float(tpr[fpr <= max_fpr].max())


def membership_metrics(scores: np.ndarray, is_member: np.ndarray) -> dict:
    """AUC, balanced accuracy at the best threshold, TPR at 1% and 0.1% FPR, and the FPR resolution."""
    scores, is_member = np.asarray(scores, dtype=float), np.asarray(is_member, dtype=bool)
    fpr, tpr, _ = roc_curve(is_member, scores)
    num_out = int((~is_member).sum())
    metrics = {"auc": float(roc_auc_score(is_member, scores)),
               "balanced_accuracy": float(((tpr + 1 - fpr) / 2).max())}
    metrics.update({key: tpr_at_fpr(fpr, tpr, bound) for key, bound in LOW_FPRS.items()})
    metrics.update({"num_members": int(is_member.sum()), "num_non_members": num_out,
                    "fpr_resolution": 1 / num_out})
    return metrics


def evaluate_scores(scores: dict[str, np.ndarray], is_member: np.ndarray, out_dir: Path,
                    title: str = "") -> dict[str, dict]:
    """Metrics per attack, and the ROC curves of all attacks on log-log axes in `out_dir/roc.png`."""
    results, curves = {}, {}
    for name, values in scores.items():
        results[name] = membership_metrics(values, is_member)
        fpr, tpr, _ = roc_curve(is_member, values)
        curves[f"{name} (AUC {results[name]['auc']:.3f})"] = (fpr, tpr)
        log.info("membership %s: AUC %.3f, balanced acc. %.3f, TPR@1%%FPR %.3f, TPR@0.1%%FPR %.3f",
                 name, results[name]["auc"], results[name]["balanced_accuracy"],
                 results[name]["tpr_at_1pct_fpr"], results[name]["tpr_at_0.1pct_fpr"])
    plot_roc_curves(curves, Path(out_dir) / "roc.png", 1 / int((~np.asarray(is_member)).sum()), title)
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
