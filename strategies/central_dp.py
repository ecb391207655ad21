"""Central DP: Flower's server-side fixed-clipping wrapper around our strategies, with a fixed denominator,
an accountant and a budget.

`DifferentialPrivacyServerSideFixedClipping` clips each client's update (reply − sent weights) to
`clipping_norm` C and adds Gaussian noise with std σ·C/n to the aggregate, n = `num_sampled_clients`
(McMahan et al. 2018). The wrapped strategy averages the clipped replies uniformly (reply metric
`protocol.UNIT_WEIGHT`) over the k replies received; this subclass turns that mean into the sum of the
clipped updates divided by the *fixed* n before the noise is added (McMahan et al.'s fixed-denominator
estimator). Then adding or removing one client's update moves the aggregate by at most C/n, exactly the
sensitivity that noise σ·C/n and an accountant composing Gaussian releases of multiplier σ assume (a mean
over the k replies received could move by up to 2C/n). When fewer than n clients reply, the update is
shrunk by k/n, as that estimator does.

Accounting is client-level, add-or-remove-one, without amplification by client sampling (an upper bound
on ε; Flower's accounted mode makes the same choice): each release is one Gaussian of multiplier σ at
rate 1, and `epsilon_of` (the lab's accountant, RDP or PLD, at the run's δ) gives ε of the history. With
`max_epsilon`, a round whose release would take ε past the budget is not trained: the global model
stays as it is for the rest of the run and `round_record` says from which round. It wraps from outside:
the wrapped strategy knows nothing of it, and whoever records rounds reads `round_record`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

from fl_privacy.privacy_record import CentralPrivacy
from strategies.fedavg_warmup import FedAvgWithWarmup

# ε at the run's δ of a history of (σ, sampling rate, releases)
EpsilonOf = Callable[[list[tuple[float, float, int]]], float]


class AccountedServerSideClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side clipping + noise around `strategy` with a fixed denominator, reporting
    cumulative ε per round and stopping at `max_epsilon`."""

    def __init__(self, strategy: FedAvgWithWarmup, *, noise_multiplier: float, clipping_norm: float,
                 num_sampled_clients: int, delta: float, epsilon_of: EpsilonOf, accountant: str,
                 max_epsilon: float | None = None) -> None:
        super().__init__(strategy, noise_multiplier, clipping_norm, num_sampled_clients)
        self.wrapped = strategy
        self.delta = delta
        self.epsilon_of = epsilon_of
        self.accountant_name = accountant
        self.max_epsilon = max_epsilon
        self.releases = 0
        self.stopped_at_round: int | None = None
        self._received = 0

    def history(self, releases: int) -> list[tuple[float, float, int]]:
        """`releases` unsampled Gaussian releases of multiplier σ."""
        return [(self.noise_multiplier, 1.0, releases)] if releases else []

    @property
    def sensitivity(self) -> float:
        """How far one client's update can move the aggregate: C/n (fixed denominator)."""
        return self.clipping_norm / self.num_sampled_clients

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                        ) -> Iterable[Message]:
        """The wrapped strategy's sample, or nobody once the next release would pass `max_epsilon`."""
        next_epsilon = self.epsilon_of(self.history(self.releases + 1))
        if self.max_epsilon is not None and next_epsilon > self.max_epsilon:
            if self.stopped_at_round is None:
                self.stopped_at_round = server_round
            self.current_arrays = arrays
            return []
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        unchanged = [reply for reply in replies if not reply.has_error() and not self._moved(reply)]
        self.wrapped.set_aside(unchanged)
        replies = [reply for reply in replies if reply not in unchanged]
        self._received = sum(not reply.has_error() for reply in replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is not None:
            self.releases += 1
        return arrays, metrics

    def state_dict(self) -> dict:
        """The ledger's releases so far (for the lab's checkpoints)."""
        return {"releases": self.releases, "stopped_at_round": self.stopped_at_round}

    def resume(self, state: dict) -> None:
        """Continue the count of releases (and the budget stop) of the rounds a resumed run did before."""
        self.releases = int(state["releases"])
        self.stopped_at_round = state["stopped_at_round"]

    def _moved(self, reply: Message) -> bool:
        """Whether a reply changes the sent weights: Flower's clipping divides by the update's norm, and
        a zero update (a client whose local budget is spent) adds nothing to the fixed-denominator sum."""
        sent = self.current_arrays.to_numpy_ndarrays()
        return any(not np.array_equal(value, base) for record in reply.content.array_records.values()
                   for value, base in zip(record.to_numpy_ndarrays(), sent, strict=True))

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        """Flower's noise σ·C/n, added to the fixed-denominator aggregate (see `fixed_denominator`)."""
        return super()._add_noise_to_aggregated_arrays(self.fixed_denominator(aggregated_arrays))

    def fixed_denominator(self, mean: ArrayRecord) -> ArrayRecord:
        """sent + Σ clipped updates / n, from the wrapped strategy's uniform mean over the k replies:
        sent + (k/n)·(mean − sent)."""
        scale = self._received / self.num_sampled_clients
        sent = dict(zip(self.current_arrays.keys(), self.current_arrays.to_numpy_ndarrays(), strict=True))
        return ArrayRecord({name: Array(sent[name] + scale * (value - sent[name]))
                            for name, value in zip(mean.keys(), mean.to_numpy_ndarrays(), strict=True)})

    def epsilon(self) -> float:
        """Cumulative client-level ε at `delta` (∞ without noise, 0 before the first release)."""
        return self.epsilon_of(self.history(self.releases))

    def round_record(self) -> dict:
        """Central DP's state after a round: cumulative ε, the accountant, its parameters, the sensitivity
        it assumes, and the round the budget stopped training (when it did)."""
        return CentralPrivacy(self.epsilon(), self.delta, self.accountant_name, self.releases,
                              self.noise_multiplier, self.clipping_norm, self.sensitivity,
                              self.stopped_at_round).to_json()
