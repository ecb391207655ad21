"""Throughput of Inverting Gradients in iterations x captures per second: (a) the one-capture-at-a-time loop
(`inverting_gradients`), (b) the batched engine (`invert_gradients_batched`, all captures one problem),
(c) breaching's own IG on one of the same captures when breaching is importable (run this file with the
scratch environment's python for (c); see benchmarks/breaching_ig.py). The captures are FedSGD gradients of
`--examples` offline-MNIST digits each on the seed CNN at init (one global model: a round's captures).

    python benchmarks/inversion_engine.py --quick                 # 32 captures x 4 examples, 20 iterations
    python benchmarks/inversion_engine.py --captures 32 --iterations 50 --threads 2 --device cuda

`--quick` prints one JSON line with `speedup` (batched over loop) and each engine's throughput. Beside them,
the roofline: the floating-point operations one loop iteration of one capture performs (torch's
`FlopCounterMode`: convolutions and matrix products, forward, backward and double backward), the rate the
loop reaches, and the rates of a large single-precision matrix product and of a large convolution on the
same threads (`peak_matmul_gflops`, `peak_convolution_gflops`). An engine that does the same operations
cannot beat the loop by more than `speedup_bound` = the higher peak / loop rate on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fl_privacy.attacks.gradient_inversion import InvertingConfig, inverting_gradients
from fl_privacy.attacks.inverting_engine import invert_gradients_batched
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import DataSettings
from fl_privacy.data.datasets import load_splits
from fl_privacy.models import SeedCNN

sys.path.insert(0, str(Path(__file__).parent))
import breaching_ig  # noqa: E402  (the benchmark's own adapter, next to this file)

SHAPE = (1, 28, 28)


def captures(count: int, examples: int, seed: int) -> tuple[torch.nn.Module, list[CapturedUpdate]]:
    """The seed CNN at init and `count` FedSGD gradients of `examples` training digits each."""
    data = DataSettings(name="mnist_offline", test_fraction=0.2, exclude_classes=[], root=None,
                        download=False)
    train = load_splits(data, seed).train
    torch.manual_seed(seed)
    model = SeedCNN(SHAPE, 10, dropout=0.0).eval()
    names = [name for name, _ in model.named_parameters()]
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        rows = torch.randperm(len(train), generator=generator)[:examples]
        grads = torch.autograd.grad(F.cross_entropy(model(train.images[rows]), train.labels[rows]),
                                    list(model.parameters()))
        out.append(CapturedUpdate(model.state_dict(), SHAPE, batch_size=examples, num_examples=examples,
                                  gradient=dict(zip(names, grads, strict=True))))
    return model, out


def flops_per_iteration(model: torch.nn.Module, capture: CapturedUpdate) -> float:
    """Operations of one loop iteration on one capture: the difference of a 4- and a 2-iteration attack
    (which cancels the label restoration and the final scoring), halved."""
    counts = []
    for iterations in (2, 4):
        with FlopCounterMode(display=False) as counter:
            inverting_gradients(model, capture,
                                InvertingConfig(iterations=iterations, restarts=1, log_every=0))
        counts.append(counter.get_total_flops())
    return (counts[1] - counts[0]) / 2


def _best_gflops(operation, flops: float, repeats: int) -> float:
    """GFLOP/s of the fastest of `repeats` calls of `operation` (after one warm-up call)."""
    operation()
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        best = max(best, flops / (time.perf_counter() - started) / 1e9)
    return best


def peak_matmul_gflops(sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> float:
    """Single-precision GFLOP/s of the fastest single matrix product (BLAS) among `sizes` x `repeats` on the
    current torch threads (the best one, so that a busy machine's pauses do not lower the peak)."""
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        best = max(best, _best_gflops(lambda: a @ b, 2 * size**3, repeats))  # noqa: B023 (called at once)
    return best


def peak_convolution_gflops(repeats: int = 5) -> float:
    """Single-precision GFLOP/s of the fastest large convolution (torch's CPU convolutions run on oneDNN,
    whose kernels can be faster than the BLAS matrix product: 2x on this machine's AMD EPYC), the seed
    CNN's second layer at batch 64 and a 256-channel 3x3 layer."""
    best = 0.0
    for batch, channels, out, size, kernel, stride in ((64, 64, 128, 14, 5, 2), (32, 256, 256, 14, 3, 1)):
        x, w = torch.randn(batch, channels, size, size), torch.randn(out, channels, kernel, kernel)
        output = F.conv2d(x, w, stride=stride, padding=kernel // 2)
        flops = 2 * output.numel() * channels * kernel * kernel
        best = max(best, _best_gflops(lambda: F.conv2d(x, w, stride=stride, padding=kernel // 2),  # noqa: B023
                                      flops, repeats))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captures", type=int, default=32)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="32 captures, 20 iterations, one JSON line")
    args = parser.parse_args()
    if args.quick:
        args.captures, args.iterations = 32, 20
    torch.set_num_threads(args.threads)
    model, caps = captures(args.captures, args.examples, args.seed)
    config = InvertingConfig(iterations=args.iterations, restarts=args.restarts, tv_weights=(0.2,),
                             log_every=0)
    inverting_gradients(model, caps[0], InvertingConfig(iterations=2, restarts=1, log_every=0))  # warm-up
    work = args.iterations * args.restarts * args.captures

    started = time.perf_counter()
    for capture in caps:
        inverting_gradients(model, capture, config)
    loop = work / (time.perf_counter() - started)

    invert_gradients_batched(model, caps[:2], InvertingConfig(iterations=2, restarts=1, log_every=0),
                             args.device)  # warm-up
    started = time.perf_counter()
    invert_gradients_batched(model, caps, config, args.device)
    batched = work / (time.perf_counter() - started)

    reference = None
    if breaching_ig.available():
        names = [name for name, _ in model.named_parameters()]
        breaching_ig.breaching_ig(model, model.state_dict(), caps[0].effective_gradient(names),
                                  args.examples, SHAPE, 2)  # warm-up (its config and TorchScript)
        started = time.perf_counter()
        breaching_ig.breaching_ig(model, model.state_dict(), caps[0].effective_gradient(names),
                                  args.examples, SHAPE, args.iterations)
        reference = args.iterations / (time.perf_counter() - started)
    flops = flops_per_iteration(model, caps[0])
    matmul, convolution = peak_matmul_gflops(), peak_convolution_gflops()
    peak = max(matmul, convolution)
    result = {"captures": args.captures, "examples": args.examples, "iterations": args.iterations,
              "restarts": args.restarts, "threads": args.threads, "device": args.device,
              "loop_iterations_x_captures_per_s": round(loop, 2),
              "batched_iterations_x_captures_per_s": round(batched, 2),
              "breaching_iterations_x_captures_per_s": None if reference is None else round(reference, 2),
              "speedup": round(batched / loop, 2),
              "mflop_per_capture_iteration": round(flops / 1e6, 1),
              "loop_gflops": round(loop * flops / 1e9, 1), "batched_gflops": round(batched * flops / 1e9, 1),
              "peak_matmul_gflops": round(matmul, 1),
              "peak_convolution_gflops": round(convolution, 1),
              "speedup_bound": round(peak / (loop * flops / 1e9), 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
