"""The honest-but-curious server's membership attack on one client's updates, round by round.

1. the lab draws the candidates (`data.membership_split.audit_split` with target=client): every record of
   `attack.membership.target_partition` (members) and `attack.membership.update_attack.non_members`
   records of its classes from the auditor's pool; the truth stays here;
2. the server attacker gets one `UpdateAuditorView` per captured round of that client (the weights it
   sent, the weights the client returned) and scores the candidates (`attacks.update_membership`);
3. the evaluation scores each round against the truth, beside the LOSS attack on the final global model
   over the same candidates (the post-run audit's attacker), into `mia/updates.json` and
   `mia/updates_auc.png`.
Members are the client's whole partition: every captured round trained on all of it (a rule refuses
`client.examples_per_round` with this attack).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from fl_privacy.attacks.membership_inference import loss_score, model_logits
from fl_privacy.attacks.update_membership import update_membership_scores
from fl_privacy.attacks.views import UpdateAuditorView
from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import build_federation
from fl_privacy.data.membership_split import audit_split
from fl_privacy.evaluation.membership_metrics import membership_metrics
from fl_privacy.figures import plot_auc_per_round
from fl_privacy.lab.pipelines.inversion_pipeline import load_capture
from fl_privacy.lab.runtime.torch_threads import restores_torch_threads
from fl_privacy.models import model_factory, model_outputs
from fl_privacy.results import RunFileError, load_tensors, write_json
from fl_privacy.run_layout import CAPTURES, FINAL_MODEL, MIA_UPDATES, MIA_UPDATES_FIGURE, round_files
from fl_privacy.seeding import Stream, derive_seed

log = logging.getLogger(__name__)



@restores_torch_threads
def audit_updates(run_dir: Path, settings: Settings) -> dict:
    """Attack every captured update of the target client; returns (and writes) the metrics per round."""
    mia, run_dir = settings.attack.membership, Path(run_dir)
    torch.set_num_threads(mia.torch_threads)
    started, partition = time.monotonic(), mia.target_partition
    captures = round_files(run_dir, CAPTURES, ".pt", partition)
    if not captures:
        raise RunFileError(f"no capture of partition {partition} under {run_dir / CAPTURES}: run with "
                           f"strategy=gradient_capture strategy.capture.partitions=[{partition}]")
    federation = build_federation(settings.federation)
    splits = federation.splits
    split = audit_split(federation, "client", partition, derive_seed(settings.seed, Stream.MEMBERSHIP_AUDIT),
                        mia.update_attack.non_members)
    num_outputs = model_outputs(settings.client, splits.num_classes)

    def fresh_model(seed: int) -> torch.nn.Module:
        return model_factory(settings.model, splits.image_shape, num_outputs, seed)()

    rounds: list[dict] = []
    for path in captures:
        update, meta = load_capture(path)
        scores = update_membership_scores(UpdateAuditorView(update, split.candidates, fresh_model))
        rounds.append({"round": int(meta["round"]),
                       "attacks": {name: membership_metrics(values, split.is_member, mia.bootstrap)
                                   for name, values in scores.items()}})
        log.info("update attack, round %d: AUC %s", meta["round"],
                 {name: round(m["auc"], 3) for name, m in rounds[-1]["attacks"].items()})
    final = fresh_model(0)
    final.load_state_dict(load_tensors(run_dir / FINAL_MODEL))
    final_loss = loss_score(model_logits(final.eval(), split.candidates), split.candidates.labels)
    baseline = membership_metrics(final_loss, split.is_member, mia.bootstrap)
    best = {name: max(rounds, key=lambda r: r["attacks"][name]["auc"])["round"]  # noqa: B023 (used at once)
            for name in rounds[0]["attacks"]}
    result: dict = {"target_partition": partition, "num_members": int(split.is_member.sum()),
              "num_non_members": int((~split.is_member).sum()), "rounds": rounds,
              "final_model_loss": baseline, "best_round": best, "seconds": time.monotonic() - started}
    write_json(run_dir / MIA_UPDATES, result)
    numbers = [r["round"] for r in rounds]
    series = {name: ([r["attacks"][name]["auc"] for r in rounds],
                     *np.array([r["attacks"][name].get("auc_ci", [np.nan] * 2) for r in rounds]).T.tolist())
              for name in rounds[0]["attacks"]}
    plot_auc_per_round(numbers, series, baseline["auc"], run_dir / MIA_UPDATES_FIGURE,
                       f"server's attack on client {partition}'s updates "
                       f"({result['num_members']} members, {result['num_non_members']} non-members)")
    return result
