"""ε of a history of Gaussian releases, by the accountant the config names (`rdp` or `pld`).

A history is a list of `(σ, q, steps)`: `steps` releases of the Gaussian mechanism with noise multiplier
σ, each on a Poisson sample at rate q (q = 1: no sampling, e.g. one central-DP round). Both accountants
use add-or-remove-one adjacency.

- `rdp`: Opacus's RDP accountant (what DP-SGD has always reported here; it matches Google's dp-accounting
  RDP to 0.01%);
- `pld`: Google's dp-accounting privacy-loss-distribution accountant (Meiser & Mohammadi 2018, Koskela et
  al. 2020): tight up to its discretisation, ~16% below RDP on typical DP-SGD settings. It composes one
  PLD per distinct (σ, q), so it is meant for a constant σ (a decaying schedule has a new σ every step).
"""

from __future__ import annotations

import math
from typing import Literal

from dp_accounting import dp_event
from dp_accounting.pld import PLDAccountant
from opacus.accountants import RDPAccountant

Accountant = Literal["rdp", "pld"]
History = list[tuple[float, float, int]]


def resumed_accountant(history: History) -> RDPAccountant:
    """An Opacus RDP accountant that continues `history` (loaded through its public state dict)."""
    accountant = RDPAccountant()
    accountant.load_state_dict({"history": list(history), "mechanism": accountant.mechanism()})
    return accountant


def history_event(history: History) -> dp_event.DpEvent:
    """The history as one dp-accounting event: each entry a self-composed (Poisson-sampled) Gaussian."""
    events: list[dp_event.DpEvent] = []
    for sigma, rate, steps in history:
        release: dp_event.DpEvent = dp_event.GaussianDpEvent(sigma)
        if rate < 1:
            release = dp_event.PoissonSampledDpEvent(rate, release)
        events.append(dp_event.SelfComposedDpEvent(release, int(steps)))
    return dp_event.ComposedDpEvent(events)


def epsilon(history: History, delta: float, accountant: Accountant = "rdp") -> float:
    """ε(δ) of every release in `history` (0 for none; ∞ once a release had σ = 0)."""
    if not history:
        return 0.0
    if any(sigma == 0 for sigma, _, _ in history):
        return math.inf
    if accountant == "rdp":
        return float(resumed_accountant(history).get_epsilon(delta))
    pld = PLDAccountant()
    pld.compose(history_event(history))
    return float(pld.get_epsilon(delta))
