"""Audits that can fail: the most an audit can show, its verdict against the claimed ε, the planted
noise bug it must catch, and the refusal of an audit that cannot give any bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus import GradSampleModule

from fl_privacy.data.images import ImageDataset
from fl_privacy.defenses.dp_sgd import DpSettings, PrivacyLedger, _dp_optimizer, private_train
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.dp_audit import (
    audit_epsilon,
    audit_verdict,
    epsilon_lower_bound,
    max_showable_epsilon,
)
from fl_privacy.lab.preflight import check_settings
from fl_privacy.models import SeedCNN
from fl_privacy.training import TrainSettings


def test_max_showable_epsilon_is_the_bound_of_all_guesses_right_and_grows_with_canaries():
    # the documented ceiling of the 200-canary audit (k in 10, 25, 50 at 95%, Bonferroni over 3)
    assert max_showable_epsilon(200, [10, 25, 50], 1e-5, 0.95) == pytest.approx(3.17, abs=0.01)
    assert max_showable_epsilon(200, [50], 1e-5, 0.95) == pytest.approx(
        epsilon_lower_bound(200, 100, 100, 1e-5, 0.05), rel=1e-9)
    ceilings = [max_showable_epsilon(m, [m // 2], 1e-5, 0.95) for m in (100, 1000, 10000)]
    assert ceilings[0] < ceilings[1] < ceilings[2]
    assert max_showable_epsilon(200, [300], 1e-5, 0.95) == 0.0  # no k fits 200 canaries
    rng = np.random.default_rng(0)
    included = rng.random(200) < 0.5
    perfect = audit_epsilon(included.astype(float), included, 1e-5, 0.95, [10, 25, 50])
    assert perfect["epsilon_lower_bound"] == pytest.approx(perfect["max_showable_epsilon"], rel=1e-6)


def test_the_verdict_flags_a_bound_above_the_claim_and_says_whether_it_could():
    assert audit_verdict(1.5, 1.0, 3.17) == {"claimed_epsilon": 1.0, "violation": True, "can_fail": True}
    assert audit_verdict(0.4, 8.0, 3.17) == {"claimed_epsilon": 8.0, "violation": False, "can_fail": False}
    assert not audit_verdict(2.0, math.inf, 3.17)["violation"]


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_the_faulty_optimizer_adds_less_noise_but_its_accountant_sees_the_claimed_sigma():
    torch.manual_seed(0)
    model = GradSampleModule(torch.nn.Linear(2000, 1, bias=False))
    released = {}
    for factor in (1.0, 0.1):
        dp = DpSettings(noise_multiplier=2.0, max_grad_norm=1.0, delta=1e-5, noise_factor=factor)
        optimizer = _dp_optimizer(torch.optim.SGD(model.parameters(), lr=0.0), dp, 2.0, 1.0, 1,
                                  torch.Generator().manual_seed(1))
        seen = []
        optimizer.attach_step_hook(lambda opt, seen=seen: seen.append(opt.noise_multiplier))
        optimizer.zero_grad()
        model(torch.zeros(1, 2000)).sum().backward()  # zero input: zero gradient, the grad is the noise
        optimizer.pre_step()
        released[factor] = model._module.weight.grad.std().item()
        assert seen == [2.0]  # the accountant's hook sees σ, not the noise actually added
    assert released[1.0] == pytest.approx(2.0, rel=0.05)
    assert released[0.1] == pytest.approx(0.2, rel=0.05)


def test_a_faulty_client_reports_the_same_epsilon_as_an_honest_one(one_torch_thread):
    generator = torch.Generator().manual_seed(3)
    data = ImageDataset(torch.rand(40, 1, 12, 12, generator=generator),
                        torch.randint(0, 3, (40,), generator=generator))
    settings = TrainSettings(epochs=1, batch_size=8, lr=0.05, optimizer="sgd")
    epsilons = []
    for factor in (1.0, 0.01):
        ledger = PrivacyLedger()
        private_train(SeedCNN((1, 12, 12), 3), data, settings,
                      DpSettings(1.0, 1.0, 1e-5, noise_factor=factor), ledger, seed=1, total_steps=5)
        epsilons.append(ledger.epsilon(1e-5))
    assert epsilons[0] == epsilons[1] > 0


def test_an_audit_that_cannot_give_a_bound_is_refused_before_training(settings_factory):
    # 20 canaries, k = 10: 20 of 20 right is not significant at 99.999% (nor with two k at 99.99%)
    for guesses in ("[10]", "[5,10]"):
        settings = settings_factory("data.canaries.count=20", "attack.dp_audit.after_run=true",
                                    f"attack.dp_audit.guesses={guesses}",
                                    "attack.dp_audit.confidence=0.99999")
        with pytest.raises(ConfigError, match="attack.dp_audit.confidence"):
            check_settings(settings)
    check_settings(settings_factory("data.canaries.count=20", "attack.dp_audit.after_run=true",
                                    "attack.dp_audit.guesses=[10]", "attack.dp_audit.confidence=0.95"))


def test_the_noise_fault_is_refused_with_adaptive_clipping(settings_factory):
    with pytest.raises(ConfigError, match="defense.dp.fault_noise_factor"):
        settings_factory("+experiment=dp_audit_broken", "defense.dp.adaptive_clipping.enabled=true")
