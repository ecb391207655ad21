"""The federated one-shot audit of a run with canary clients (`+experiment=dp_audit_fl`).

Andrew et al. (ICLR 2024): the last `attack.dp_audit_fl.canary_clients` clients are canaries whose every
update is a fixed random unit direction (`apps.canary_client`). After the run the auditor, who chose the
canaries, takes the final model's delta from the model the first federated round sent
(`initial_model.pt`, after the warm-up), its cosine with each inserted canary's direction and with
`fresh_canaries` directions never inserted, and `evaluation.one_shot_audit` turns the two sets of cosines
into an ε estimate, written beside the accounted (central DP) ε to `dp_audit_fl/scores.json`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from fl_privacy.config.schema import Settings
from fl_privacy.data.canary_clients import FRESH_OFFSET, flat_direction
from fl_privacy.data.federation import build_federation
from fl_privacy.evaluation.one_shot_audit import one_shot_epsilon
from fl_privacy.models import model_factory, model_outputs
from fl_privacy.results import load_tensors, write_json
from fl_privacy.run_layout import DP_AUDIT_FL_COSINES, DP_AUDIT_FL_SCORES, FINAL_MODEL, INITIAL_MODEL, SUMMARY

log = logging.getLogger(__name__)


def canary_cosines(initial: dict[str, torch.Tensor], final: dict[str, torch.Tensor],
                   shapes: dict[str, torch.Size], seed: int, indices: list[int]) -> np.ndarray:
    """Cosine of the final model delta (over the trainable parameters in `shapes`) with each canary."""
    delta = torch.cat([(final[name].double() - initial[name].double()).reshape(-1) for name in shapes])
    unit = (delta / delta.norm().clamp_min(1e-300)).numpy()
    return np.array([float(np.dot(flat_direction(shapes, seed, index).numpy(), unit)) for index in indices])


def fresh_control(fresh: np.ndarray, count: int, delta: float) -> dict:
    """The negative control on the same run: the estimate when `count` fresh (never inserted) canaries
    pose as the inserted ones against the rest; what the estimator reports with nothing to find."""
    if len(fresh) < count + 2:
        return {}
    control = one_shot_epsilon(fresh[:count], fresh[count:], delta)
    return {key: control[key] for key in ("empirical_epsilon", "empirical_epsilon_equal_variance",
                                          "separation_pvalue", "num_inserted", "num_fresh")}


def accounted_central(run_dir: Path, settings: Settings) -> tuple[float, float, str]:
    """(accounted client-level ε, δ, accountant) of central DP from the run's summary (∞ without noise)."""
    central = json.loads((run_dir / SUMMARY).read_text()).get("privacy", {}).get("central", {})
    value = central.get("epsilon")
    return (math.inf if value is None else float(value),
            float(central.get("delta", settings.defense.central_dp.delta)),
            str(central.get("accountant", settings.defense.central_dp.accountant)))


def run_fl_audit(run_dir: Path, settings: Settings) -> dict:
    """Cosines, the estimate and the accounted ε; written to `dp_audit_fl/` and returned."""
    audit, run_dir = settings.attack.dp_audit_fl, Path(run_dir)
    splits = build_federation(settings.federation).splits
    num_outputs = model_outputs(settings.client, splits.num_classes)
    model = model_factory(settings.model, splits.image_shape, num_outputs, settings.seed)()
    shapes = {name: parameter.shape for name, parameter in model.named_parameters()}
    initial, final = load_tensors(run_dir / INITIAL_MODEL), load_tensors(run_dir / FINAL_MODEL)
    num_clients = settings.simulation.num_clients
    inserted_ids = list(range(num_clients - audit.canary_clients, num_clients))
    inserted = canary_cosines(initial, final, shapes, settings.seed, inserted_ids)
    fresh = canary_cosines(initial, final, shapes, settings.seed,
                           [FRESH_OFFSET + j for j in range(audit.fresh_canaries)])
    write_json(run_dir / DP_AUDIT_FL_COSINES, {"inserted": inserted.tolist(), "fresh": fresh.tolist(),
                                               "inserted_partitions": inserted_ids})
    accounted, delta, accountant = accounted_central(run_dir, settings)
    result = {"accounted_epsilon": accounted, "accountant": accountant,
              "noise_multiplier": settings.defense.central_dp.noise_multiplier,
              "canary_clients": audit.canary_clients, "dimension": sum(s.numel() for s in shapes.values()),
              **one_shot_epsilon(inserted, fresh, delta),
              "fresh_control": fresh_control(fresh, audit.canary_clients, delta)}
    log.info("federated audit: ε estimate %.3f (%d canary clients, %d fresh), accounted ε %.3f",
             result["empirical_epsilon"], audit.canary_clients, audit.fresh_canaries, accounted)
    write_json(run_dir / DP_AUDIT_FL_SCORES, result)
    return result
