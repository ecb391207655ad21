"""Empirical DP audit of a run with canaries (`+experiment=dp_audit`), attack step then scoring step.

1. the auditor gets one `AuditorView`: the final global model and every canary (image + its canary label),
   never which canaries were inserted; it scores them with the membership scorer `attack.dp_audit.attack`
   (`attacks.membership_inference`), written to `dp_audit/attack_scores.json`;
2. the evaluation reads the insertion truth from the federation and turns the scores into an ε lower
   bound at the run's δ (`evaluation.dp_audit`, one-run auditing), written beside the accounted ε to
   `dp_audit/scores.json`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fl_privacy.attacks.membership_inference import membership_scores
from fl_privacy.attacks.views import AuditorView
from fl_privacy.config.schema import MembershipSettings, Settings
from fl_privacy.data.federation import build_federation
from fl_privacy.evaluation.dp_audit import audit_epsilon, audit_verdict, violation_pvalue
from fl_privacy.lab.pipelines.reference_training import reference_trainer
from fl_privacy.models import model_factory, model_outputs
from fl_privacy.privacy_record import PrivacySummary
from fl_privacy.results import load_tensors, read_summary, write_json
from fl_privacy.run_layout import DP_AUDIT_ATTACK_SCORES, DP_AUDIT_SCORES, FINAL_MODEL

log = logging.getLogger(__name__)



def audited_privacy(settings: Settings, run_dir: Path) -> tuple[float, float, str]:
    """(accounted ε, δ, accountant) the audit is compared with: the canary client's ε under local DP,
    else central DP's, else ∞ (no DP) at `defense.dp.delta`."""
    privacy = PrivacySummary.from_json(read_summary(run_dir).get("privacy"))
    return privacy.accounted(settings.data.canaries.partition, settings.defense.dp.delta)


def run_dp_audit(run_dir: Path, settings: Settings) -> dict:
    """Both steps; returns (and writes as `dp_audit/scores.json`) the empirical and the accounted ε."""
    audit, run_dir = settings.attack.dp_audit, Path(run_dir)
    if settings.data.canaries.kind == "dirac":  # white-box gradient canaries: scored during training
        from fl_privacy.lab.pipelines.dirac_audit_pipeline import run_dirac_audit

        return run_dirac_audit(run_dir, settings, *audited_privacy(settings, run_dir))
    federation = build_federation(settings.federation)
    splits = federation.splits
    num_outputs = model_outputs(settings.client, splits.num_classes)
    model = model_factory(settings.model, splits.image_shape, num_outputs, settings.seed)()
    model.load_state_dict(load_tensors(run_dir / FINAL_MODEL))
    canaries = splits.train.subset(federation.canary_indices)

    def fresh_model(seed: int) -> torch.nn.Module:
        return model_factory(settings.model, splits.image_shape, num_outputs, seed)()

    # the auditor's step: the canaries, not which were inserted (metric scorers need no population)
    view = AuditorView(model.eval(), canaries, canaries.subset([]), fresh_model,
                       reference_trainer(settings))
    scores = membership_scores(view, MembershipSettings(attacks=[audit.attack]))[audit.attack]
    write_json(run_dir / DP_AUDIT_ATTACK_SCORES,
               {"attack": audit.attack, "scores": scores.tolist()})
    # the evaluation's step
    accounted, delta, accountant = audited_privacy(settings, run_dir)
    result = {"attack": audit.attack, "kind": settings.data.canaries.kind,
              "canary_partition": settings.data.canaries.partition, "accounted_epsilon": accounted,
              "accountant": accountant, **audit_epsilon(scores, federation.canary_included, delta,
                                                        audit.confidence, list(audit.guesses))}
    result.update(audit_verdict(result["epsilon_lower_bound"], accounted, result["max_showable_epsilon"],
                                violation_pvalue(result["per_k"], result["num_canaries"], accounted, delta)))
    log.info("DP audit: empirical ε ≥ %.3f (%.0f%% confidence, %d canaries, AUC %.3f, at most %.3f "
             "showable), accounted ε %.3f: %s", result["epsilon_lower_bound"], 100 * audit.confidence,
             result["num_canaries"], result["canary_auc"], result["max_showable_epsilon"], accounted,
             "VIOLATION" if result["violation"] else "no violation")
    write_json(run_dir / DP_AUDIT_SCORES, result)
    return result
