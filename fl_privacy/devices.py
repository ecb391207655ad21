"""Where tensors compute: the `device` key (`auto` | `cpu` | `cuda`), resolved in each process.

Models are built on CPU (the same seeded initialisation everywhere) and then moved; the training loop and
evaluation move each batch to the model's device, so `cpu` and `auto` on a machine without CUDA run exactly
the code and numbers they always did. Ray hides GPUs from actors that do not ask for a share, so when the run
computes on CUDA each client actor asks for one (`client_gpu_share`).
"""

from __future__ import annotations

import torch

from fl_privacy.errors import ConfigError

NO_CUDA = "no CUDA device is visible here (torch.cuda.is_available() is false); use device=auto or device=cpu"


def torch_device(name: str) -> torch.device:
    """`cpu` or `cuda` as named; `auto` is CUDA when this process sees a CUDA device, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_device(name: str) -> None:
    """`device=cuda` needs a CUDA device (a one-line `ConfigError` before anything heavy)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, NO_CUDA)


def client_gpu_share(name: str, requested: float | None, client_cpus: float, total_cpus: float) -> float:
    """Ray's `num_gpus` per client actor: `requested` when set; else 0 on CPU, and on CUDA the fraction that
    lets every actor that fits by CPUs share the one GPU."""
    if requested is not None:
        return requested
    if torch_device(name).type != "cuda":
        return 0.0
    return min(1.0, client_cpus / total_cpus)
