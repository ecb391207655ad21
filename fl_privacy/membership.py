"""`python -m fl_privacy.membership RUN_DIR [mia.KEY=VALUE ...]`: membership-inference audit of a run.

Three steps, the threat-model boundary between the second and the third:
1. the lab draws the audit's records from the run's federation (`fl_privacy.data.audit`): shuffled
   candidates (members and non-members) and population data; the truth stays with the lab;
2. the auditor (`attack_scores`) gets the target model (the final global model, or with
   `mia.target_model=client` the weights the target client sent in the last captured round), the
   candidates and the population, runs `mia.attacks` and writes `mia/attack_scores.json`;
3. the evaluation (`fl_privacy.evaluation.membership`) compares the scores with the truth and writes
   `mia/scores.json` and `mia/roc.png`.
Settings come from the run's `mia` config (or `conf/mia/default.yaml`) with `mia.KEY=VALUE` overrides.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fl_privacy.attack import node_config, run_command
from fl_privacy.attacks.membership import (
    LabelledImages,
    MembershipSettings,
    Records,
    Trainer,
    membership_scores,
)
from fl_privacy.errors import ConfigError
from fl_privacy.models import model_factory
from fl_privacy.results import CAPTURES, write_json

log = logging.getLogger("fl_privacy.membership")

DEFAULT_MIA = Path(__file__).resolve().parents[1] / "conf" / "mia" / "default.yaml"
MIA_DIR = "mia"


def mia_config(cfg: DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's `mia` node (or the default one, without holdout) with `mia.KEY=VALUE` overrides applied.

    `mia.holdout_fraction` decided which records the clients got, so it cannot change after the run."""
    for override in overrides:
        if override.startswith("mia.holdout_fraction="):
            raise ConfigError("mia.holdout_fraction", override.split("=", 1)[1],
                              "is fixed by the run (it decided the clients' data); set it for fl_privacy.run")
    default = OmegaConf.merge(OmegaConf.load(DEFAULT_MIA), {"holdout_fraction": 0.0})
    return node_config(cfg, "mia", default, overrides)


def settings_from_cfg(mia: DictConfig) -> MembershipSettings:
    return MembershipSettings(attacks=tuple(mia.attacks), num_shadow=int(mia.num_shadow),
                              num_reference=int(mia.num_reference), fixed_variance=bool(mia.fixed_variance),
                              seed=int(mia.seed))


def reference_trainer(mia: DictConfig) -> Trainer:
    """The auditor's recipe for shadow/reference models: the lab's training loop with `mia.training`."""
    from fl_privacy.data.datasets import ImageDataset
    from fl_privacy.training import TrainSettings, train

    settings = TrainSettings.from_cfg(mia.training)

    def fit(model: torch.nn.Module, records: Records, seed: int) -> None:
        train(model, ImageDataset(records.images, records.labels), settings, seed)

    return fit


def last_client_update(run_dir: Path, partition: int) -> dict[str, torch.Tensor]:
    """The weights `partition` sent in the last captured round (what the server received)."""
    files = sorted(Path(run_dir, CAPTURES).glob(f"round_*/partition_{partition:02d}.pt"))
    if not files:
        raise FileNotFoundError(f"no capture of partition {partition} under {Path(run_dir, CAPTURES)}: "
                                "run with strategy=gradient_capture "
                                f"strategy.capture.partitions=[{partition}]"
                                " and the last round in strategy.capture.rounds")
    record = torch.load(files[-1], weights_only=True)
    if "updated_state" not in record:
        raise FileNotFoundError(f"{files[-1]} holds a FedSGD gradient, not the client's weights")
    return record["updated_state"]


def target_model(run_dir: Path, cfg: DictConfig, mia: DictConfig, image_shape, num_outputs: int
                 ) -> torch.nn.Module:
    """The attacked model: the final global model or the target client's last sent weights."""
    model = model_factory(cfg.model, image_shape, num_outputs, int(cfg.seed))()
    if mia.target_model == "client":
        state = last_client_update(run_dir, int(mia.target_partition))
    else:
        state = torch.load(Path(run_dir) / "final_model.pt", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def attack_scores(run_dir: Path, cfg: DictConfig, mia: DictConfig, candidates: LabelledImages,
                  population: LabelledImages, num_outputs: int) -> dict[str, np.ndarray]:
    """The auditor's step: scores per attack for the candidates; written to `mia/attack_scores.json`."""
    image_shape = tuple(candidates.images.shape[1:])
    model = target_model(run_dir, cfg, mia, image_shape, num_outputs)

    def fresh_model(seed: int) -> torch.nn.Module:
        return model_factory(cfg.model, image_shape, num_outputs, seed)()

    started = time.monotonic()
    scores = membership_scores(model, candidates, population, fresh_model, reference_trainer(mia),
                               settings_from_cfg(mia))
    write_json(Path(run_dir) / MIA_DIR / "attack_scores.json",
               {"seconds": time.monotonic() - started, "scores": {k: v.tolist() for k, v in scores.items()}})
    return scores


def membership_run(run_dir: Path, cfg: DictConfig, mia: DictConfig) -> dict:
    """All three steps; returns (and writes as `mia/scores.json`) the metrics per attack."""
    from fl_privacy.clients import model_outputs
    from fl_privacy.data.audit import audit_data
    from fl_privacy.data.federation import build_federation
    from fl_privacy.evaluation.membership import evaluate_scores
    from fl_privacy.seeding import MEMBERSHIP_AUDIT, derive_seed
    from fl_privacy.training import evaluate

    torch.set_num_threads(int(mia.torch_threads))
    started = time.monotonic()
    federation = build_federation(cfg)
    partition = int(mia.target_partition) if mia.target == "client" else None
    audit = audit_data(federation, mia.target, partition, derive_seed(int(cfg.seed), MEMBERSHIP_AUDIT))
    num_outputs = model_outputs(cfg, federation.splits.num_classes)
    log.info("membership audit of the %s model: %d candidates, %d population records", mia.target_model,
             len(audit.candidates), len(audit.population))
    scores = attack_scores(run_dir, cfg, mia, audit.candidates, audit.population, num_outputs)
    out_dir = Path(run_dir) / MIA_DIR
    model = target_model(run_dir, cfg, mia, federation.splits.image_shape, num_outputs)
    classes = federation.splits.num_classes
    members, non_members = np.flatnonzero(audit.is_member), np.flatnonzero(~audit.is_member)
    accuracy = {"target_accuracy": evaluate(model, federation.splits.test, classes).accuracy,
                "member_accuracy": evaluate(model, audit.candidates.subset(members), classes).accuracy,
                "non_member_accuracy": evaluate(model, audit.candidates.subset(non_members),
                                                classes).accuracy}
    title = f"{mia.target_model} model, members: " + (f"client {partition}" if partition is not None
                                                      else "all clients")
    result = {"target": mia.target, "target_partition": partition, "target_model": mia.target_model,
              **accuracy, "num_members": int(audit.is_member.sum()),
              "num_non_members": int((~audit.is_member).sum()), "num_population": len(audit.population),
              "attacks": evaluate_scores(scores, audit.is_member, out_dir, title),
              "seconds": time.monotonic() - started, "settings": OmegaConf.to_container(mia, resolve=True)}
    write_json(out_dir / "scores.json", result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    def settings(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
        from fl_privacy.config import check_mia

        mia = mia_config(cfg, overrides)
        check_mia(mia, cfg)
        return mia

    def execute(run_dir: Path, cfg: DictConfig, mia: DictConfig) -> None:
        result = membership_run(run_dir, cfg, mia)
        log.info("membership AUC: %s", json.dumps({name: round(m["auc"], 4)
                                                   for name, m in result["attacks"].items()}))

    return run_command(argv, "fl_privacy.membership", __doc__.splitlines()[0],
                       "a finished fl_privacy.run directory", "mia.KEY=VALUE, e.g. mia.target=all",
                       settings, execute)


if __name__ == "__main__":
    sys.exit(main())
