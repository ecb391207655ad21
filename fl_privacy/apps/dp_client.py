"""Client role `dp`: local training with DP-SGD (Opacus) and a privacy budget that accumulates over rounds.

The accountant's history, σ₀, the current σ of a decaying schedule and the current clipping bound are
kept in the node's `context.state` (see `fl_privacy.defenses.dp_sgd.PrivacyLedger`), so the ε each
reply reports covers every round this client has trained in, not only the last one. Settings come
from `defense.dp`; the model sent back is a plain `state_dict` (no Opacus wrapper).

A reply holds nothing computed on the private data outside the DP release: the privatised weights (or
gradient), the data set size and step count (public: the sampling rate q is computed from them and the
accountant treats them as known), and the privacy spent, which depends on σ, q and the steps only. The
training loss and accuracy are sent as NaN ("not reported": Flower's FedAvg needs every client's metric
keys) unless `defense.dp.report_train_metrics` is on (a lab-only leak).
With `defense.dp.max_epsilon`, a client whose next round would take its ε past the budget sends the
received model back untouched with weight 0 and `budget_exhausted` = 1 in its privacy record.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from flwr.app import Context
from torch import nn

from fl_privacy.apps import node_state
from fl_privacy.apps.dirac_canaries import canary_block, save_scores
from fl_privacy.apps.roles import ClientJob, update_metrics
from fl_privacy.defenses.dp_sgd import (
    DpSettings,
    PrivacyLedger,
    epsilon_after_round,
    private_gradient,
    private_train,
    sample_rate,
    start_ledger,
)
from fl_privacy.privacy_record import ClientPrivacy
from fl_privacy.training import TrainStats

HISTORY_KEY, LEDGER_KEY = "dp.accountant_history", "dp.ledger"


def load_ledger(context: Context) -> PrivacyLedger:
    """The ledger this node saved in an earlier round (an empty one in its first round)."""
    counters = node_state.load_counters(context, LEDGER_KEY)
    history = node_state.load_tensor(context, HISTORY_KEY)
    if not counters:
        return PrivacyLedger()
    return PrivacyLedger(
        history=[(float(s), float(q), int(n)) for s, q, n in history.tolist()] if history is not None else [],
        initial_sigma=counters["initial_sigma"], sigma=counters["sigma"], clip_bound=counters["clip_bound"])


def save_ledger(context: Context, ledger: PrivacyLedger) -> None:
    assert ledger.initial_sigma is not None and ledger.sigma is not None and ledger.clip_bound is not None, \
        "only a ledger that a DP round has started is saved"
    if ledger.history:
        node_state.save_tensor(context, HISTORY_KEY, torch.tensor(ledger.history, dtype=torch.float64))
    node_state.save_counters(context, LEDGER_KEY, {"initial_sigma": ledger.initial_sigma,
                                                   "sigma": ledger.sigma, "clip_bound": ledger.clip_bound})


def round_plan(job: ClientJob, num_examples: int) -> tuple[float, int]:
    """(sampling rate, steps) of this round's DP releases: one unsampled gradient in FedSGD, else
    `epochs` Poisson-sampled passes over the round's data."""
    if job.update_mode == "fedsgd":
        return 1.0, 1
    settings = job.train_settings
    return (sample_rate(num_examples, settings.batch_size),
            settings.epochs * math.ceil(num_examples / settings.batch_size))


def dp_client(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """One round of DP-SGD training (FedAvg) or one DP gradient (FedSGD), unless the budget is spent; its
    cumulative ε goes to `job.privacy` (the reply's "privacy" record)."""
    dp = DpSettings.of(job.settings.defense.dp)
    ledger = load_ledger(job.context)
    data = job.training_data()
    rate, steps = round_plan(job, len(data))
    start_ledger(ledger, dp, rate, job.settings.strategy.num_rounds * steps)
    exhausted = dp.max_epsilon is not None and epsilon_after_round(ledger, dp, rate, steps) > dp.max_epsilon
    if exhausted:
        job.used_indices = None  # no update used the data
        if job.update_mode == "fedsgd":
            job.gradient = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        stats = TrainStats(math.nan, math.nan, 0, 0)
    elif job.update_mode == "fedsgd":
        job.gradient, stats = private_gradient(model, data, dp, ledger, job.seed)
    else:
        canaries = canary_block(job, rate)  # the audit's Dirac canaries (data.canaries.kind=dirac)
        stats = private_train(model, data, job.train_settings, dp, ledger, job.seed,
                              job.settings.strategy.num_rounds * steps, after_step=job.suppression(model),
                              canaries=canaries)
        if canaries is not None:
            save_scores(job, canaries)
    save_ledger(job.context, ledger)
    assert ledger.initial_sigma is not None and ledger.clip_bound is not None  # the round started the ledger
    job.privacy = ClientPrivacy(ledger.epsilon(dp.delta, dp.accountant), dp.delta, dp.accountant,
                                ledger.initial_sigma, ledger.clip_bound, ledger.steps, exhausted)
    if job.settings.defense.dp.report_train_metrics:
        return update_metrics(stats)
    # Flower's FedAvg needs the same metric keys from every client: NaN = not reported
    return update_metrics(replace(stats, loss=math.nan, accuracy=math.nan))
