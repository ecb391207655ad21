"""The lab's side channels: what clients hand the lab outside the Flower protocol, made explicit.

- truth: which training examples a *captured* update used (the capture schedule is the lab's knowledge, not
  the clients'); only the evaluation reads it (`truth/round_XXX/partition_YY.json`), never an attack;
- artifacts: what an insider attacker produces for the lab's monitor, e.g. the GAN adversary's generator
  (`lab/<name>.pt`, the latest round's); the server's strategy never sees them;
- node states: each node's persistent `context.state` after the rounds it trains in (`lab/nodes/`), which
  the lab's checkpoints keep and a resumed run gives back to the node (`lab.checkpoints`).

`RunHooks` is picklable, so it travels into the Ray actors with the ClientApp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import RecordDict

from fl_privacy.apps.node_state import plain_to_state, state_to_plain
from fl_privacy.config.schema import Settings
from fl_privacy.results import RunFileError, load_tensors, save_torch, write_json
from fl_privacy.run_layout import NODE_STATES, TRUTH, lab_artifact, node_state_file, round_file
from strategies import CaptureSchedule


@dataclass(frozen=True)
class RunHooks:
    """The lab's hooks for one run (`apps.roles.LabHooks`): `schedule` says which updates are captured
    (None: no capturing server, so no truth is kept)."""

    run_dir: Path
    schedule: CaptureSchedule | None = None
    # A resumed run: nodes take back the state they had at the checkpoint (`lab.checkpoints`).
    resumed: bool = False

    @classmethod
    def for_run(cls, settings: Settings, run_dir: Path) -> RunHooks:
        """The hooks of a run: truth is kept only where a capturing server captures."""
        capture = settings.strategy.capture
        capturing = settings.strategy.name == "gradient_capture"
        return cls(run_dir, CaptureSchedule.from_settings(capture) if capturing else None, settings.resume)

    def record_truth(self, server_round: int, partition_id: int, indices: np.ndarray) -> None:
        if self.schedule is not None and self.schedule.covers(server_round, partition_id):
            write_json(round_file(self.run_dir, TRUTH, server_round, partition_id, ".json"),
                       {"indices": [int(i) for i in indices]})

    def publish(self, name: str, server_round: int, payload: dict[str, Any]) -> None:
        save_torch(lab_artifact(self.run_dir, name), {"round": server_round, **payload})

    def save_node_state(self, partition_id: int, server_round: int, state: RecordDict) -> None:
        if len(state):
            save_torch(self.run_dir / NODE_STATES / node_state_file(partition_id),
                       {"round": server_round, "state": state_to_plain(state)})

    def restore_node_state(self, partition_id: int, state: RecordDict) -> None:
        """In a resumed run, fill a node's still empty state with the last it saved (the lab reset the
        saved states to the checkpoint's before the run went on)."""
        if not self.resumed or len(state):
            return
        path = self.run_dir / NODE_STATES / node_state_file(partition_id)
        if path.exists():
            plain_to_state(load_tensors(path)["state"], state)

    def artifact(self, name: str, server_round: int) -> dict | None:
        """The artifact `name` published in `server_round` (None when none was published that round)."""
        path = lab_artifact(self.run_dir, name)
        if not path.exists():
            return None
        saved = load_tensors(path)
        return saved if int(saved["round"]) == server_round else None


def truth_indices(run_dir: Path, meta: dict) -> list[int]:
    """The training-split indices a capture was computed on: one client's, or (a secure-aggregation
    capture) those of every client in the aggregate, in partition order."""
    indices: list[int] = []
    for partition in meta.get("partitions", [meta["partition"]]):
        path = round_file(run_dir, TRUTH, meta["round"], partition, ".json")
        try:
            indices += json.loads(path.read_text())["indices"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError) as error:
            raise RunFileError(f"{path} is missing or corrupt ({error})") from None
    return indices
