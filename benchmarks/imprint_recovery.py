"""Robbing the Fed in-process: recovered share (SSIM >= 0.9) vs batch size, clients in a secure aggregate and
DP noise, without Ray (the measurement needs no Flower: the same crafting, client gradient, aggregate view and
attack code as the `imprint` preset, which runs them through Flower).

    python benchmarks/imprint_recovery.py --batch 1 4 16 32 64 --clients 1 4 --sigma 0 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scipy.stats import binomtest

from fl_privacy.attacks.imprint import imprint_attack
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.defenses.dp_sgd import DpSettings, PrivacyLedger, private_gradient
from fl_privacy.evaluation.reconstruction import score_reconstruction
from fl_privacy.models import model_factory
from fl_privacy.training import batch_gradient
from strategies.malicious_imprint import FEEDBACK, brightness_thresholds, craft_imprint

RECOVERED_SSIM = 0.9


def one_round(settings, federation, batch: int, clients: int, sigma: float, seed: int, feedback: float
              ) -> list[float]:
    """Per-image SSIM of the imprint attack on the mean gradient of `clients` clients' batches of `batch`."""
    splits = federation.splits
    model = model_factory(settings.model, splits.image_shape, splits.num_classes, seed)()
    thresholds = brightness_thresholds(settings.model.imprint_bins, federation.warmup)
    model.load_state_dict(craft_imprint(model.state_dict(), thresholds, feedback))
    sent = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(seed)
    gradients, truth = [], []
    for partition in range(clients):
        data, _ = federation.local_data(partition).draw(batch, rng)
        if sigma > 0:
            dp = DpSettings(noise_multiplier=sigma, max_grad_norm=settings.defense.dp.max_grad_norm,
                            delta=settings.defense.dp.delta)
            gradient, _ = private_gradient(model, data, dp, PrivacyLedger(), seed * 100 + partition)
        else:
            gradient, _ = batch_gradient(model, data)
        gradients.append(gradient)
        truth.append(data.images)
    mean = {name: torch.stack([g[name] for g in gradients]).mean(dim=0) for name in gradients[0]}
    view = CapturedUpdate(sent, splits.image_shape, batch_size=batch * clients,
                          num_examples=batch * clients, gradient=mean)
    result = imprint_attack(model, view)
    assert result.images is not None
    return score_reconstruction(result.images, torch.cat(truth)).ssim.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, nargs="+", default=[16])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bins", type=int, default=128)
    parser.add_argument("--feedback", type=float, default=FEEDBACK, help="imprint.linear1 weight")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = compose_settings(["+experiment=imprint", f"model.imprint_bins={args.bins}",
                                 "simulation.num_clients=8"])
    federation = build_federation(settings.federation)
    for sigma in args.sigma:
        for clients in args.clients:
            for batch in args.batch:
                per_seed = [one_round(settings, federation, batch, clients, sigma, seed,
                                      args.feedback) for seed in args.seeds]
                hits = [sum(s >= RECOVERED_SSIM for s in seed) for seed in per_seed]
                n = sum(len(seed) for seed in per_seed)
                ci = binomtest(sum(hits), n).proportion_ci(method="wilson")
                shares = [h / len(s) for h, s in zip(hits, per_seed, strict=True)]
                print(json.dumps({"bins": args.bins, "feedback": args.feedback, "sigma": sigma,
                                  "clients": clients, "batch": batch,
                                  "images": n, "seeds": args.seeds, "recovered": sum(hits),
                                  "share": round(sum(hits) / n, 3),
                                  "wilson95": [round(ci.low, 3), round(ci.high, 3)],
                                  "share_per_seed": [round(s, 3) for s in shares],
                                  "median_ssim": round(float(np.median(np.concatenate(per_seed))), 3)}),
                      flush=True)


if __name__ == "__main__":
    main()
