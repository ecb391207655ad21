"""Client role `dp`: local training with DP-SGD (Opacus) and a privacy budget that accumulates over rounds.

The accountant's history, σ₀, the current σ of a decaying schedule and the current clipping bound are
kept in the node's `context.state` (see `fl_privacy.defenses.dp_sgd.PrivacyLedger`), so the ε each
reply reports covers every round this client has trained in, not only the last one. Settings come
from `defense.dp`; the model sent back is a plain `state_dict` (no Opacus wrapper).
"""

from __future__ import annotations

import math

import torch
from flwr.app import Context
from torch import nn

from fl_privacy.apps import node_state
from fl_privacy.apps.roles import ClientJob, update_metrics
from fl_privacy.defenses.dp_sgd import DpSettings, PrivacyLedger, private_gradient, private_train

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


def dp_client(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """One round of DP-SGD training (FedAvg) or one DP gradient (FedSGD); its cumulative ε goes to
    `job.privacy` (the reply's "privacy" record), its metrics are those of every client."""
    dp = DpSettings.of(job.settings.defense.dp)
    ledger = load_ledger(job.context)
    data = job.training_data()
    if job.update_mode == "fedsgd":
        job.gradient, stats = private_gradient(model, data, dp, ledger, job.seed)
    else:
        settings = job.train_settings
        run_steps = (job.settings.strategy.num_rounds * settings.epochs
                     * math.ceil(len(data) / settings.batch_size))
        stats = private_train(model, data, settings, dp, ledger, job.seed, run_steps,
                              after_step=job.suppression(model))
    save_ledger(job.context, ledger)
    assert ledger.initial_sigma is not None and ledger.clip_bound is not None  # the round started the ledger
    job.privacy = {"epsilon": ledger.epsilon(dp.delta), "delta": dp.delta,
                   "noise_multiplier": ledger.initial_sigma, "clip_bound": ledger.clip_bound,
                   "dp_steps": ledger.steps}
    return update_metrics(stats)
