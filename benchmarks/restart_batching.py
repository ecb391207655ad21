"""Does optimising restarts together pay on CPU? Seconds per matching-loss evaluation (forward, parameter
gradient with create_graph, backward to the images) of R restarts of a batch of B images on the seed CNN:
batched with torch.func.vmap over the restarts, against a loop over the restarts. One torch thread.

    python benchmarks/restart_batching.py --restarts 4 --batch 1 4 16 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from fl_privacy.models import SeedCNN

SHAPE = (1, 28, 28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SeedCNN(SHAPE, 10, dropout=0.0).eval()
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p: dict, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, p, (images,)), labels)

    for size in args.batch:
        labels = torch.randint(0, 10, (size,))
        observed = grad(loss)(params, torch.rand(size, *SHAPE), labels)
        dummies = torch.rand(args.restarts, size, *SHAPE, requires_grad=True)
        started = time.perf_counter()
        for _ in range(args.repeats):
            batched = vmap(grad(loss), in_dims=(None, 0, None))(params, dummies, labels)
            sum(((batched[n] - observed[n]) ** 2).sum() for n in batched).backward()
        together = (time.perf_counter() - started) / args.repeats
        leaves = {name: p.clone().requires_grad_(True) for name, p in params.items()}
        started = time.perf_counter()
        for _ in range(args.repeats):
            for images in dummies.detach().clone().requires_grad_(True):
                grads = torch.autograd.grad(loss(leaves, images, labels), list(leaves.values()),
                                            create_graph=True)
                sum(((g - observed[n]) ** 2).sum() for g, n in zip(grads, leaves, strict=True)).backward()
        looped = (time.perf_counter() - started) / args.repeats
        print(json.dumps({"batch": size, "restarts": args.restarts, "vmap_seconds": round(together, 4),
                          "loop_seconds": round(looped, 4)}), flush=True)


if __name__ == "__main__":
    main()
