"""Benchmark: the GAN attack round's critical path, in-process, before vs after the speed-up.

Times, with one torch thread (as in a client actor), the adversary's attack round (generator steps,
fakes, local training on own data + fakes) for the old generator batch (64) and the current one,
and the monitor's oracle scoring with two forward passes (before) and one (`Oracle.judge`, after).
The variants alternate, repeat by repeat, so a shared machine's load hits both alike. Usage:

    python benchmarks/gan_round.py [--repeats 3] [hydra overrides ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from fl_privacy.attacks.gan import AdversaryState, attack_round, make_generator_optimizer
from fl_privacy.attacks.views import InsiderView
from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.evaluation.oracle import FeatureSpace, load_or_train_oracle
from fl_privacy.models import DCGANGenerator, model_factory
from fl_privacy.training import TrainSettings

OLD_BATCH = 64


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, overrides = parser.parse_known_args()
    torch.set_num_threads(1)
    settings = compose_settings(["+experiment=gan_attack", *overrides])
    federation = build_federation(settings.federation)
    splits, gan = federation.splits, settings.attack.gan
    make = model_factory(settings.model, splits.image_shape, splits.num_classes + 1, settings.seed)
    own = federation.client_data(0)

    def adversary_round(batch: int) -> float:
        generator = DCGANGenerator(gan.latent_dim, splits.image_shape)
        state = AdversaryState(generator, make_generator_optimizer(generator, gan.generator_lr))
        view = InsiderView(own_data=own, model=make(), server_round=9, announced_accuracy=None,
                           fake_class=splits.num_classes)
        variant = gan.model_copy(update={"generator_batch_size": batch})
        return _seconds(lambda: attack_round(view, state, variant, TrainSettings.of(settings.client), [1]))

    oracle = load_or_train_oracle(splits, settings.evaluation.oracle, settings.seed)
    space = FeatureSpace(oracle, settings.evaluation.oracle.components)
    samples = DCGANGenerator(gan.latent_dim, splits.image_shape).sample(
        settings.evaluation.oracle.samples_per_round, 0)
    new = f"adversary_batch{gan.generator_batch_size}"
    times: dict[str, list[float]] = {"adversary_batch64": [], new: [], "scoring_two_passes": [],
                                     "scoring_one_pass": []}
    for _ in range(args.repeats):
        times["adversary_batch64"].append(adversary_round(OLD_BATCH))
        times[new].append(adversary_round(gan.generator_batch_size))
        times["scoring_two_passes"].append(_seconds(lambda: (oracle.probabilities(samples), space(samples))))
        times["scoring_one_pass"].append(_seconds(lambda: space.project(oracle.judge(samples)[1])))
    print(json.dumps({"overrides": overrides, "repeats": args.repeats,
                      "median_s": {name: statistics.median(t) for name, t in times.items()},
                      "all_s": times}, indent=2))


if __name__ == "__main__":
    main()
