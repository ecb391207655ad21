"""Resumable runs: every `checkpoint_every` rounds the lab saves what the next round depends on.

A checkpoint (`checkpoint/`, swapped in whole so a crash mid-save leaves the previous one) holds:
- `server.pt`: the round, the global model, the server's state (strategy, central DP ledger, the
  server process's RNG states) and the lab's monitors' state;
- `nodes/partition_XX.pt`: each node's persistent `context.state` (DP ledgers, the GAN adversary's
  generator, ...) as of that round. Clients hand it to the lab after every round they train in
  (`RunHooks.save_node_state`, in `lab/nodes/`); the checkpoint copies the latest of each.
metrics.jsonl keeps its lines up to the checkpoint's round when the run resumes. Clients draw their
randomness from (seed, round, partition), so nothing else is needed for a resumed run to end with the
same numbers as an uninterrupted one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fl_privacy.results import load_tensors, save_torch, staged_folder
from fl_privacy.run_layout import CHECKPOINT, CHECKPOINT_NODES, CHECKPOINT_SERVER, NODE_STATES


@dataclass(frozen=True)
class Checkpoint:
    """What a run resumes from: the last round it completed and the state after it."""

    round: int
    arrays: dict[str, torch.Tensor]
    server: dict[str, Any]
    monitors: dict[str, Any]


def checkpoint_round(run_dir: Path) -> int | None:
    """The round of `run_dir`'s checkpoint (None when it has none)."""
    path = Path(run_dir) / CHECKPOINT_SERVER
    return int(load_tensors(path)["round"]) if path.exists() else None


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """The run's checkpoint; the nodes' saved states go back to theirs (a node sampled after the checkpoint
    in the stopped run saved a later one)."""
    saved = load_tensors(Path(run_dir) / CHECKPOINT_SERVER)
    nodes = Path(run_dir) / NODE_STATES
    shutil.rmtree(nodes, ignore_errors=True)
    if (saved_nodes := Path(run_dir) / CHECKPOINT_NODES).exists():
        shutil.copytree(saved_nodes, nodes)
    return Checkpoint(int(saved["round"]), saved["arrays"], saved["server"], saved["monitors"])


class Checkpointer:
    """Saves a checkpoint every `every` rounds (0: never) into `run_dir/checkpoint`; `monitors_state`
    gives the lab's monitors' state at save time."""

    def __init__(self, run_dir: Path, every: int, monitors_state) -> None:
        self.run_dir = Path(run_dir)
        self.every = every
        self.monitors_state = monitors_state

    def due(self, server_round: int) -> bool:
        return self.every > 0 and server_round > 0 and server_round % self.every == 0

    def save(self, server_round: int, arrays: dict[str, torch.Tensor], server: dict[str, Any]) -> None:
        with staged_folder(self.run_dir / CHECKPOINT) as staging:
            save_torch(staging / CHECKPOINT_SERVER.relative_to(CHECKPOINT),
                       {"round": server_round, "arrays": arrays, "server": server,
                        "monitors": self.monitors_state()})
            if (nodes := self.run_dir / NODE_STATES).exists():
                shutil.copytree(nodes, staging / CHECKPOINT_NODES.relative_to(CHECKPOINT))
