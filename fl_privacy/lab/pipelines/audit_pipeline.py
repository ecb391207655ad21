"""Membership-inference audit of a run: three steps, the threat-model boundary between the second and third.

1. the lab draws the audit's records from the run's federation (`data.membership_split`): shuffled
   candidates (members and non-members) and population data; the truth stays with the lab;
2. the auditor gets one `AuditorView` (the target model: the final global model, or with
   `attack.membership.target_model=client` the weights the target client sent in the last captured round;
   the candidates; the population; its reference-model recipe from `lab.reference_training`), runs
   `attack.membership.attacks` and its scores are written to `mia/attack_scores.json`;
3. the evaluation (`evaluation.membership_metrics`) compares the scores with the truth and writes
   `mia/scores.json` and `mia/roc.png`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from fl_privacy.attacks.membership_inference import membership_scores
from fl_privacy.attacks.views import AuditorView
from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import build_federation
from fl_privacy.data.membership_split import audit_split
from fl_privacy.evaluation.membership_metrics import evaluate_scores
from fl_privacy.lab.pipelines.reference_training import reference_trainer
from fl_privacy.lab.runtime.torch_threads import restores_torch_threads
from fl_privacy.models import model_factory, model_outputs
from fl_privacy.results import RunFileError, load_tensors, write_json
from fl_privacy.run_layout import CAPTURES, FINAL_MODEL, MIA_ATTACK_SCORES, MIA_ROC, MIA_SCORES, round_files
from fl_privacy.seeding import Stream, derive_seed
from fl_privacy.training import evaluate

log = logging.getLogger(__name__)



def last_client_update(run_dir: Path, partition: int) -> dict[str, torch.Tensor]:
    """The weights `partition` sent in the last captured round (what the server received)."""
    files = round_files(run_dir, CAPTURES, ".pt", partition)
    if not files:
        raise RunFileError(f"no capture of partition {partition} under {Path(run_dir, CAPTURES)}: "
                           f"run with strategy=gradient_capture strategy.capture.partitions=[{partition}] "
                           "and the last round in strategy.capture.rounds")
    record = load_tensors(files[-1])
    if "updated_state" not in record:
        raise RunFileError(f"{files[-1]} holds a FedSGD gradient, not the client's weights")
    return record["updated_state"]


def target_model(run_dir: Path, settings: Settings, image_shape, num_outputs: int) -> torch.nn.Module:
    """The attacked model: the final global model or the target client's last sent weights."""
    mia = settings.attack.membership
    model = model_factory(settings.model, image_shape, num_outputs, settings.seed)()
    if mia.target_model == "client":
        state = last_client_update(run_dir, mia.target_partition)
    else:
        state = load_tensors(Path(run_dir) / FINAL_MODEL)
    model.load_state_dict(state)
    return model.eval()


@restores_torch_threads
def audit_run(run_dir: Path, settings: Settings) -> dict:
    """All three steps; returns (and writes as `mia/scores.json`) the metrics per attack."""
    mia, run_dir = settings.attack.membership, Path(run_dir)
    torch.set_num_threads(mia.torch_threads)
    started = time.monotonic()
    federation = build_federation(settings.federation)
    splits = federation.splits
    partition = mia.target_partition if mia.target == "client" else None
    seed = derive_seed(settings.seed, Stream.MEMBERSHIP_AUDIT)
    split = audit_split(federation, mia.target, partition, seed, mia.non_members, mia.population_size)
    num_outputs = model_outputs(settings.client, splits.num_classes)
    model = target_model(run_dir, settings, splits.image_shape, num_outputs)
    log.info("membership audit of the %s model: %d candidates, %d population records", mia.target_model,
             len(split.candidates), len(split.population))

    def fresh_model(seed: int) -> torch.nn.Module:
        return model_factory(settings.model, splits.image_shape, num_outputs, seed)()

    # the auditor's step: no truth in the view
    view = AuditorView(model, split.candidates, split.population, fresh_model, reference_trainer(settings))
    attack_started = time.monotonic()
    scores = membership_scores(view, mia)
    write_json(run_dir / MIA_ATTACK_SCORES, {"seconds": time.monotonic() - attack_started,
                                                        "scores": {k: v.tolist() for k, v in scores.items()}})
    # the evaluation's step
    classes = splits.num_classes
    accuracy = {"target_accuracy": evaluate(model, splits.test, classes).accuracy,
                "member_accuracy": evaluate(model, split.members, classes).accuracy,
                "non_member_accuracy": evaluate(model, split.non_members, classes).accuracy}
    title = f"{mia.target_model} model, members: " + (f"client {partition}" if partition is not None
                                                      else "all clients")
    result = {"target": mia.target, "target_partition": partition, "target_model": mia.target_model,
              **accuracy, "num_members": int(split.is_member.sum()),
              "num_non_members": int((~split.is_member).sum()), "num_population": len(split.population),
              "attacks": evaluate_scores(scores, split.is_member, run_dir / MIA_ROC, title,
                                         mia.bootstrap),
              "seconds": time.monotonic() - started, "settings": mia.model_dump(mode="json")}
    write_json(run_dir / MIA_SCORES, result)
    return result
