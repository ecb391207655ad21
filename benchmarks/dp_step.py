"""Benchmark: the cost of a DP-SGD step against a non-private step, on the code paths clients run.

Trains the default model (the seed's CNN) on one client's MNIST partition with `training.train`
(plain SGD) and with `defenses.dp_sgd.private_train` (Opacus per-sample gradients, clipping, noise,
Poisson sampling, accounting), one torch thread each, alternating several times, and reports the
CPU seconds per optimizer step (process time, which other jobs on the machine disturb less than
wall time) and their ratio. Usage:

    python benchmarks/dp_step.py [--batch-sizes 32 64 128] [--repeats 5] [--untuned]

`--untuned` skips `fl_privacy.allocator.keep_freed_memory` (glibc then returns the per-sample
gradient buffers to the OS after every step), to show what the allocator setting buys.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from functools import partial

import torch

from fl_privacy.allocator import keep_freed_memory
from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.defenses.dp_sgd import DpSettings, PrivacyLedger, private_train
from fl_privacy.models import model_factory
from fl_privacy.training import TrainSettings, train


def seconds_per_step(train_fn) -> float:
    """CPU seconds per optimizer step of one call of `train_fn` (which returns TrainStats)."""
    started = time.process_time()
    steps = train_fn().steps
    return (time.process_time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--untuned", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.untuned:
        keep_freed_memory()
    cfg = compose_settings()
    federation = build_federation(cfg.federation)
    data = federation.client_data(0)
    make_model = model_factory(cfg.model, federation.splits.image_shape, federation.splits.num_classes, 0)
    dp = DpSettings(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)
    rows = []
    for batch_size in args.batch_sizes:
        settings = replace(TrainSettings.of(cfg.client), batch_size=batch_size)
        plain, private = [], []
        for repeat in range(args.repeats + 1):  # the first pair warms up and is dropped
            plain_time = seconds_per_step(partial(train, make_model(), data, settings, seed=repeat))
            private_time = seconds_per_step(partial(private_train, make_model(), data, settings, dp,
                                                    PrivacyLedger(), seed=repeat, total_steps=1000))
            if repeat:
                plain.append(plain_time)
                private.append(private_time)
        row = {"batch_size": batch_size, "examples": len(data), "plain_ms": 1000 * min(plain),
               "dp_ms": 1000 * min(private), "ratio": min(private) / min(plain)}
        rows.append(row)
        print(json.dumps(row))
    print("| batch | plain step (ms CPU) | DP step (ms CPU) | DP / plain |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['batch_size']} | {row['plain_ms']:.1f} | {row['dp_ms']:.1f} | {row['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
