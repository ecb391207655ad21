"""The typed privacy record: what each DP mechanism of a run has spent, written and read only here.

Three producers, one consumer shape:
- a DP client's reply carries `ClientPrivacy` (its DP-SGD so far) as a flat `ConfigRecord`;
- the strategy keeps each client's latest as `ClientsPrivacy` (per-client ε, the maximum, budget stops),
  a round's `privacy` section in metrics.jsonl;
- central DP reports `CentralPrivacy` after each round (a round's `central_dp` section);
and `PrivacySummary` is summary.json's `privacy` section, built from the last round and read back by the
audits and the report. The JSON keys are the ones runs have always written, so earlier runs still read.
A leaf: plain dataclasses, no torch, no Flower.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# metrics.jsonl sections of a round
CLIENTS_SECTION, CENTRAL_SECTION = "privacy", "central_dp"


def _epsilon(value: Any) -> float:
    return math.inf if value is None else float(value)  # strict JSON writes ∞ as null


@dataclass(frozen=True)
class ClientPrivacy:
    """One DP client's DP-SGD so far (cumulative ε at `delta` by `accountant`)."""

    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    clip_bound: float
    dp_steps: int
    budget_exhausted: bool = False

    def to_record(self) -> dict[str, float | int | str]:
        """Flat values for a reply's `ConfigRecord` (a bool travels as 0/1)."""
        return {**asdict(self), "budget_exhausted": int(self.budget_exhausted)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ClientPrivacy:
        return cls(_epsilon(record["epsilon"]), float(record["delta"]), str(record["accountant"]),
                   float(record["noise_multiplier"]), float(record["clip_bound"]), int(record["dp_steps"]),
                   bool(record.get("budget_exhausted", 0)))


@dataclass(frozen=True)
class CentralPrivacy:
    """Central (client-level) DP after a round: cumulative ε at `delta` by `accountant`, and what it assumes
    (always written by the lab; optional when reading, so a summary written by older code still reads)."""

    epsilon: float
    delta: float
    accountant: str
    releases: int | None = None
    noise_multiplier: float | None = None
    clipping_norm: float | None = None
    sensitivity: float | None = None
    budget_stopped_at_round: int | None = None

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        if self.budget_stopped_at_round is None:
            del record["budget_stopped_at_round"]
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> CentralPrivacy:
        described = {key: record.get(key) for key in ("releases", "noise_multiplier", "clipping_norm",
                                                      "sensitivity", "budget_stopped_at_round")}
        return cls(_epsilon(record["epsilon"]), float(record["delta"]), str(record["accountant"]),
                   **described)


@dataclass(frozen=True)
class ClientsPrivacy:
    """The DP clients' privacy as the server sees it: each client's latest cumulative ε, the accountant,
    and the round each client stopped at its budget."""

    per_client: dict[int, float]
    accountant: str
    budget_stopped_at_round: dict[int, int] = field(default_factory=dict)

    @property
    def max_epsilon(self) -> float:
        return max(self.per_client.values())

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"per_client": {str(p): e for p, e in sorted(self.per_client.items())},
                                  "max_epsilon": self.max_epsilon, "accountant": self.accountant}
        if self.budget_stopped_at_round:
            record["budget_stopped_at_round"] = {str(p): r for p, r
                                                 in sorted(self.budget_stopped_at_round.items())}
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ClientsPrivacy:
        return cls({int(p): _epsilon(e) for p, e in record["per_client"].items()}, str(record["accountant"]),
                   {int(p): int(r) for p, r in record.get("budget_stopped_at_round", {}).items()})


@dataclass(frozen=True)
class PrivacySummary:
    """summary.json's `privacy`: the clients' DP (at `delta`) and central DP, either or both or neither."""

    delta: float | None = None
    clients: ClientsPrivacy | None = None
    central: CentralPrivacy | None = None

    @classmethod
    def from_round(cls, record: Mapping[str, Any], client_delta: float) -> PrivacySummary:
        """From a round's metrics (the last round: everything is cumulative)."""
        clients = record.get(CLIENTS_SECTION)
        central = record.get(CENTRAL_SECTION)
        return cls(client_delta if clients else None,
                   ClientsPrivacy.from_json(clients) if clients else None,
                   CentralPrivacy.from_json(central) if central else None)

    @property
    def max_epsilon(self) -> float | None:
        """The largest ε of any mechanism (None without DP)."""
        if self.clients is not None:
            return self.clients.max_epsilon
        return self.central.epsilon if self.central is not None else None

    def accounted(self, partition: int, default_delta: float) -> tuple[float, float, str]:
        """(ε, δ, accountant) that protects `partition`: its own DP-SGD's, else central DP's, else ∞."""
        if self.clients is not None and partition in self.clients.per_client:
            assert self.delta is not None
            return self.clients.per_client[partition], self.delta, self.clients.accountant
        if self.central is not None:
            return self.central.epsilon, self.central.delta, self.central.accountant
        return math.inf, default_delta, "none"

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.clients is not None:
            record = {"delta": self.delta, **self.clients.to_json()}
        if self.central is not None:
            record["central"] = self.central.to_json()
            record.setdefault("max_epsilon", self.central.epsilon)
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any] | None) -> PrivacySummary:
        record = record or {}
        return cls(record.get("delta"),
                   ClientsPrivacy.from_json(record) if "per_client" in record else None,
                   CentralPrivacy.from_json(record["central"]) if "central" in record else None)
