"""Score membership-inference attacks against the truth: who was a member is loaded here only."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def top_k_accuracy(scores: np.ndarray, is_member: np.ndarray) -> float:
    """LOGAN's accuracy: the share of members among the |members| highest-scored records
    (0.5 = chance when members and non-members are equally many; ties broken by position)."""
    is_member = np.asarray(is_member, dtype=bool)
    count = int(is_member.sum())
    if count == 0:
        raise ValueError("top_k_accuracy needs at least one member")
    top = np.argsort(-np.asarray(scores), kind="stable")[:count]
    return float(is_member[top].mean())


def membership_scores(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float]:
    """Top-|members| accuracy and ROC AUC (scikit-learn) of one attack's scores."""
    return {"accuracy": top_k_accuracy(scores, is_member),
            "auc": float(roc_auc_score(np.asarray(is_member, dtype=int), scores))}
