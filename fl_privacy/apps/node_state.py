"""Keep a node's torch state across rounds in Flower's `context.state`.

Client apps run inside Ray actors and are rebuilt every round, so anything a node must remember
(a generator and its optimizer, a privacy accountant's history) lives in `context.state`, a
RecordDict Flower keeps per node for the whole run. These helpers store module and optimizer
state as ArrayRecords and small counters as a MetricRecord.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from torch import nn


def save_module(context: Context, key: str, module: nn.Module) -> None:
    context.state[key] = ArrayRecord(module.state_dict())


def load_module(context: Context, key: str, module: nn.Module) -> bool:
    """Load the saved state into `module`; False (module untouched) when nothing was saved."""
    if key not in context.state:
        return False
    module.load_state_dict(context.state.array_records[key].to_torch_state_dict())
    return True


def save_optimizer(context: Context, key: str, optimizer: torch.optim.Optimizer) -> None:
    """Store the optimizer's per-parameter tensors (e.g. Adam's moments and step counts)."""
    flat = {f"{index}.{name}": torch.as_tensor(value).clone()
            for index, slots in optimizer.state_dict()["state"].items()
            for name, value in slots.items()}
    context.state[key] = ArrayRecord(flat)


def load_optimizer(context: Context, key: str, optimizer: torch.optim.Optimizer) -> bool:
    """Restore what `save_optimizer` stored; hyper-parameters come from the fresh optimizer."""
    if key not in context.state:
        return False
    state: dict[int, dict[str, torch.Tensor]] = {}
    for flat_name, value in context.state.array_records[key].to_torch_state_dict().items():
        index, name = flat_name.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state,
                               "param_groups": optimizer.state_dict()["param_groups"]})
    return True


def save_tensor(context: Context, key: str, tensor: torch.Tensor) -> None:
    context.state[key] = ArrayRecord({"tensor": tensor})


def load_tensor(context: Context, key: str) -> torch.Tensor | None:
    if key not in context.state:
        return None
    return context.state.array_records[key].to_torch_state_dict()["tensor"]


def load_counters(context: Context, key: str) -> dict[str, float]:
    # `save_counters` stores scalar counters only (never lists)
    return cast(dict[str, float], dict(context.state.metric_records[key])) if key in context.state else {}


def save_counters(context: Context, key: str, counters: Mapping[str, float]) -> None:
    context.state[key] = MetricRecord(dict(counters))


# A node's whole `context.state` as plain tensors and values (for the lab's checkpoints) and back.
_RECORD_TYPES = {"arrays": ArrayRecord, "metrics": MetricRecord, "config": ConfigRecord}


def state_to_plain(state: RecordDict) -> dict[str, tuple[str, dict]]:
    """`context.state` as {key: (record type, contents)}, loadable with `torch.load(weights_only=True)`."""
    plain: dict[str, tuple[str, dict]] = {}
    for key, record in state.items():
        if isinstance(record, ArrayRecord):
            plain[key] = ("arrays", record.to_torch_state_dict())
        else:
            plain[key] = ("metrics" if isinstance(record, MetricRecord) else "config", dict(record))
    return plain


def plain_to_state(plain: Mapping[str, tuple[str, dict]], state: RecordDict) -> None:
    """Put what `state_to_plain` returned back into `state`."""
    for key, (kind, contents) in plain.items():
        state[key] = _RECORD_TYPES[kind](dict(contents))
