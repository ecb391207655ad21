"""The lab's GAN-attack monitor: the oracle scores the generator the adversary published each round."""

from __future__ import annotations

import logging
from pathlib import Path

from fl_privacy.apps.gan_adversary import GENERATOR_ARTIFACT
from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation
from fl_privacy.evaluation.gan_judges import primary_oracle
from fl_privacy.evaluation.gan_monitor import GanAttackMonitor
from fl_privacy.evaluation.oracle import FeatureSpace, load_or_train_oracle
from fl_privacy.lab.channels.side_channels import RunHooks
from fl_privacy.models import model_outputs
from fl_privacy.seeding import Stream, derive_seed

log = logging.getLogger(__name__)


class PublishedGeneratorMonitor:
    """Hands the monitor what the adversary published in each round (nothing in rounds it did not attack)."""

    def __init__(self, monitor: GanAttackMonitor, hooks: RunHooks) -> None:
        self.monitor = monitor
        self.hooks = hooks

    def __call__(self, server_round: int) -> dict:
        return self.monitor(server_round, self.hooks.artifact(GENERATOR_ARTIFACT, server_round))

    def state_dict(self) -> dict:
        return self.monitor.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state)

    def finish(self) -> dict:
        result = self.monitor.finish()
        if result["attack_rounds"] == 0:
            log.warning("the GAN adversary never attacked "
                        "(attack.gan.start_round / start_accuracy never reached)")
        return result


def gan_monitor(settings: Settings, federation: Federation, run_dir: Path, hooks: RunHooks
                ) -> PublishedGeneratorMonitor | None:
    """The monitor for a run with a GAN adversary (oracle: `evaluation.oracle.monitor_judge`), else None."""
    splits = federation.splits
    if not model_outputs(settings.client, splits.num_classes) > splits.num_classes:
        return None
    oracle_settings = settings.evaluation.oracle
    if oracle_settings.monitor_judge:  # shared by every run and seed: trained once from judge_seed
        oracle = primary_oracle(settings.data, oracle_settings)
        log.info("oracle (shared judge %s): accuracy %.3f on images neither judge trained on",
                 oracle.cache_path.name, oracle.heldout_accuracy)
    else:
        oracle = load_or_train_oracle(splits, oracle_settings, settings.seed)
        log.info("oracle: accuracy %.3f on the training split it never saw", oracle.heldout_accuracy)
    monitor = GanAttackMonitor(run_dir, splits, oracle, FeatureSpace(oracle, oracle_settings.components),
                               settings.attack.gan.victim_class, oracle_settings.samples_per_round,
                               derive_seed(settings.seed, Stream.GAN_EVALUATION),
                               oracle_settings.save_generators)
    return PublishedGeneratorMonitor(monitor, hooks)
