"""The white-box Dirac-canary audit of a run (`data.canaries.kind=dirac`, `+experiment=dp_audit_dirac`).

1. the auditor's scores: the white-box observer in the canary client's DP-SGD read φ's privatised gradient
   at every step (`defenses.gradient_canaries`) and handed its running scores to the lab after each round
   (`lab/<DIRAC_SCORES_ARTIFACT>.pt`); they are copied to `dp_audit/attack_scores.json`;
2. the evaluation recomputes which canaries were inserted from the seed (`dirac_inclusion`) and turns the
   scores into the one-run ε lower bound at the run's δ (`evaluation.dp_audit`), written beside the
   accounted ε of the canary client to `dp_audit/scores.json`, as the input-canary audit does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fl_privacy.config.schema import Settings
from fl_privacy.defenses.gradient_canaries import dirac_inclusion
from fl_privacy.evaluation.dp_audit import audit_epsilon, audit_verdict, violation_pvalue
from fl_privacy.results import RunFileError, load_tensors, write_json
from fl_privacy.run_layout import DIRAC_SCORES_ARTIFACT, DP_AUDIT_ATTACK_SCORES, DP_AUDIT_SCORES, lab_artifact

log = logging.getLogger(__name__)


def run_dirac_audit(run_dir: Path, settings: Settings, accounted: float, delta: float,
                    accountant: str) -> dict:
    """Both steps for Dirac canaries; returns (and writes as `dp_audit/scores.json`) the empirical ε
    lower bound beside the accounted ε (`accounted`, at `delta`, of the canary client)."""
    audit, canaries, run_dir = settings.attack.dp_audit, settings.data.canaries, Path(run_dir)
    path = lab_artifact(run_dir, DIRAC_SCORES_ARTIFACT)
    if not path.exists():
        raise RunFileError(f"{path} is missing: the canary client (partition {canaries.partition}) "
                           "never trained with its Dirac canaries")
    published = load_tensors(path)
    scores = published["scores"].numpy().astype(np.float64)
    write_json(run_dir / DP_AUDIT_ATTACK_SCORES,
               {"attack": "dirac_likelihood_ratio", "steps": int(published["steps"]),
                "round": int(published["round"]), "scores": scores.tolist()})
    # the evaluation's step: the truth, from the seed
    result = {"attack": "dirac_likelihood_ratio", "kind": canaries.kind,
              "canary_partition": canaries.partition, "observed_steps": int(published["steps"]),
              "accounted_epsilon": accounted, "accountant": accountant,
              **audit_epsilon(scores, dirac_inclusion(settings.seed, canaries.count), delta,
                              audit.confidence, list(audit.guesses))}
    result.update(audit_verdict(result["epsilon_lower_bound"], accounted, result["max_showable_epsilon"],
                                violation_pvalue(result["per_k"], result["num_canaries"], accounted, delta)))
    log.info("DP audit (Dirac canaries, white-box, %d steps): empirical ε ≥ %.3f (%.0f%% confidence, %d "
             "canaries, AUC %.3f, at most %.3f showable), accounted ε %.3f: %s", result["observed_steps"],
             result["epsilon_lower_bound"], 100 * audit.confidence, result["num_canaries"],
             result["canary_auc"], result["max_showable_epsilon"], accounted,
             "VIOLATION" if result["violation"] else "no violation")
    write_json(run_dir / DP_AUDIT_SCORES, result)
    return result
