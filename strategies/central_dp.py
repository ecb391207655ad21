"""Central DP: Flower's server-side fixed-clipping wrapper around our strategies, with an accountant.

`DifferentialPrivacyServerSideFixedClipping` clips each client's update (reply − sent weights) to
`clipping_norm` and adds Gaussian noise with std σ·C/n to the aggregate of the n sampled clients
(McMahan et al. 2018). Flower's wrapper can account only around the stock `FedAvg.aggregate_train`;
ours orders replies by partition first, so this subclass composes each noisy release into Flower's
own RDP accountant itself. Accounting is client-level, add-or-remove-one, without amplification by
client sampling (an upper bound on ε; Flower's accounted mode makes the same choice). For the
noise to match the sensitivity C/n the wrapped strategy averages clients uniformly (the reply metric
`protocol.UNIT_WEIGHT`). It wraps from outside: the wrapped strategy knows nothing of it, and whoever
records rounds reads `round_record`.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from strategies.fedavg_warmup import FedAvgWithWarmup


class AccountedServerSideClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side clipping + noise around `strategy`, reporting cumulative ε per round."""

    def __init__(self, strategy: FedAvgWithWarmup, *, noise_multiplier: float, clipping_norm: float,
                 num_sampled_clients: int, population: int, delta: float) -> None:
        super().__init__(strategy, noise_multiplier, clipping_norm, num_sampled_clients)
        self.population = population
        self.delta = delta
        self.ledger = RdpAccountant(PrivacyConfig(
            target_delta=delta, population_size=population,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION))

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is not None and self.noise_multiplier > 0:
            self.ledger.compose(GaussianPrivacyEvent(self.noise_multiplier, self.num_sampled_clients,
                                                     self.population))
        return arrays, metrics

    def state_dict(self) -> dict:
        """The ledger's releases so far (for the lab's checkpoints)."""
        return {"releases": self.ledger.num_releases}

    def resume(self, state: dict) -> None:
        """Compose the releases of the rounds a resumed run did before."""
        for _ in range(int(state["releases"])):
            self.ledger.compose(GaussianPrivacyEvent(self.noise_multiplier, self.num_sampled_clients,
                                                     self.population))

    def epsilon(self) -> float:
        """Cumulative client-level ε at `delta` (∞ without noise, 0 before the first release)."""
        if self.noise_multiplier == 0:
            return float("inf")
        return float(self.ledger.get_epsilon(self.delta)) if self.ledger.num_releases else 0.0

    def round_record(self) -> dict:
        """Central DP's state after a round: cumulative ε and its parameters."""
        return {"epsilon": self.epsilon(), "delta": self.delta, "releases": self.ledger.num_releases,
                "noise_multiplier": self.noise_multiplier, "clipping_norm": self.clipping_norm}
