"""What the Dirac-canary audit can give for the mechanism it audits, without the lab (issue 29).

Simulates the canary block's mechanism alone in numpy: m canaries, each inserted with probability ½ (the
seed's `dirac_inclusion`), T steps in which each inserted canary is Poisson-sampled with rate q and every
coordinate gets Gaussian noise σ·factor (σ calibrated by the lab's accountant to spend the target ε); scores
by the lab's white-box observer, bound by the lab's one-run audit. Per target ε, the ideal the lab's runs
can be compared with (the simulation shares no code with the optimizer, so a run far below it would point
at a bug in the block). Usage:

    .venv/bin/python benchmarks/simulate_dirac_audit.py [--seeds 0 1 2] [--factor 1.0] [--targets 1 8] \\
        [--delta 1e-6] [--k 14700]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fl_privacy.attacks.dirac_observer import WhiteBoxObserver
from fl_privacy.defenses.dp_sgd import calibrate_initial_sigma
from fl_privacy.defenses.gradient_canaries import dirac_inclusion
from fl_privacy.defenses.noise_schedules import NoiseSchedule
from fl_privacy.evaluation.dp_audit import audit_epsilon


def simulate(target: float, seed: int, m: int, rate: float, steps: int, k: int, factor: float,
             delta: float = 1e-5) -> dict:
    """The audit of one simulated run of the canary block (σ from the accountant for `target`)."""
    sigma = calibrate_initial_sigma(target, delta, NoiseSchedule(), rate, steps)
    included = dirac_inclusion(seed, m)
    rng = np.random.default_rng(1000 + seed)
    observer = WhiteBoxObserver.fresh(m)
    for _ in range(steps):
        x = included * (rng.random(m) < rate) + rng.normal(0, sigma * factor, m) if sigma else \
            included * (rng.random(m) < rate) * 1.0
        observer.observe(torch.from_numpy(x), sigma, 1.0, 1.0, rate)
    result = audit_epsilon(observer.scores.numpy(), included, delta, 0.95, [k])
    return {"sigma": sigma, "bound": result["epsilon_lower_bound"], "auc": result["canary_auc"],
            "correct": result["best"]["correct"], "guesses": result["best"]["guesses"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=float, nargs="+", default=[1.0, 8.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--factor", type=float, default=1.0, help="noise actually added / σ (the fault)")
    parser.add_argument("--canaries", type=int, default=30000)
    parser.add_argument("--k", type=int, default=14700)
    parser.add_argument("--rate", type=float, default=1 / 15)  # dp_audit_dirac: 1900 records, batch 128
    parser.add_argument("--steps", type=int, default=225)  # 5 rounds x 3 epochs x 15 batches
    parser.add_argument("--delta", type=float, default=1e-6)
    args = parser.parse_args()
    for target in args.targets:
        for seed in args.seeds:
            row = simulate(target, seed, args.canaries, args.rate, args.steps, args.k, args.factor,
                           args.delta)
            print(f"target ε {target}, seed {seed}: σ {row['sigma']:.3f}, bound {row['bound']:.3f}, "
                  f"AUC {row['auc']:.3f}, {row['correct']} of {row['guesses']} right")


if __name__ == "__main__":
    main()
