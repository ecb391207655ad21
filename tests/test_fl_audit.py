"""The federated one-shot audit (Andrew et al. 2024): canary clients, the ε of two Gaussians, and the
estimate on a simulated central-DP aggregation whose ε is known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from dp_accounting import dp_event
from dp_accounting.pld import PLDAccountant
from scipy import integrate, stats

from fl_privacy.apps.canary_client import canary_client
from fl_privacy.apps.roles import role_of
from fl_privacy.data.canary_clients import FRESH_OFFSET, flat_direction
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.one_shot_audit import gaussian_pair_epsilon, hockey_stick, one_shot_epsilon
from fl_privacy.lab.pipelines.fl_audit_pipeline import canary_cosines, fresh_control


def test_the_last_partitions_are_canaries_whose_update_is_c_times_their_own_unit_direction(settings_factory):
    settings = settings_factory("+experiment=dp_audit_fl", "defense.central_dp.clipping_norm=0.5")
    assert [role_of(settings, p) for p in (0, 3, 4, 53)] == ["honest", "honest", "canary", "canary"]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.Linear(20, 3))
    sent = {name: p.detach().clone() for name, p in model.named_parameters()}
    shapes = {name: p.shape for name, p in sent.items()}
    canary_client(SimpleNamespace(settings=settings, partition_id=7, used_indices=None), model)
    update = torch.cat([(p.detach() - sent[name]).reshape(-1).double()
                        for name, p in model.named_parameters()])
    assert update.norm().item() == pytest.approx(0.5, rel=1e-5)
    own, other = flat_direction(shapes, settings.seed, 7), flat_direction(shapes, settings.seed, 8)
    assert torch.allclose(update / 0.5, own, atol=1e-6)
    assert abs(float(own @ other)) < 0.2  # independent directions in 683 dimensions


def test_canary_clients_need_central_dp(settings_factory):
    with pytest.raises(ConfigError, match="attack.dp_audit_fl.canary_clients"):
        settings_factory("+experiment=dp_audit_fl", "defense.central_dp.enabled=false")


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_two_equal_variance_gaussians_give_dp_accountings_epsilon_of_the_composed_mechanism(sigma):
    rounds, delta = 10, 1e-5  # R Gaussian releases of multiplier σ = one of μ = √R/σ (independent: PLD)
    accountant = PLDAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), rounds))
    mu = math.sqrt(rounds) / sigma
    assert gaussian_pair_epsilon(mu, 1.0, 0.0, 1.0, delta) == pytest.approx(accountant.get_epsilon(delta),
                                                                             rel=1e-3)


def test_the_hockey_stick_of_unequal_gaussians_matches_numerical_integration():
    for mean_p, std_p, mean_q, std_q, epsilon in ((0.5, 1.3, 0.0, 1.0, 0.7), (2.0, 0.7, 0.0, 1.0, 1.5)):
        def excess(x, mp=mean_p, sp=std_p, mq=mean_q, sq=std_q, e=epsilon):
            return max(0.0, stats.norm.pdf(x, mp, sp) - math.exp(e) * stats.norm.pdf(x, mq, sq))
        numeric = integrate.quad(excess, -40, 40, limit=500, points=[-5, 0, 5])[0]
        assert hockey_stick(mean_p, std_p, mean_q, std_q, epsilon) == pytest.approx(numeric, rel=1e-4,
                                                                                    abs=1e-9)


DIMENSION, CANARIES, FRESH = 5_000, 100, 500


def simulated_run(sigma: float, insert: bool, dimension: int = DIMENSION, real: int = 4,
                  canaries: int = CANARIES, rounds: int = 10, clip: float = 1.0) -> dict[str, torch.Tensor]:
    """The final delta of central DP's fixed-denominator aggregation: `real` clipped random updates and
    `canaries` canary updates C·u_j (left out when not `insert`) per round, noise σC/n."""
    generator = torch.Generator().manual_seed(1)
    shapes = {"w": torch.Size([dimension])}
    directions = torch.stack([flat_direction(shapes, 0, j) for j in range(canaries)])
    n, delta = real + canaries, torch.zeros(dimension, dtype=torch.float64)
    for _ in range(rounds):
        updates = torch.randn(real, dimension, generator=generator, dtype=torch.float64) + 0.05
        updates = updates * (clip / updates.norm(dim=1, keepdim=True)).clamp(max=1.0)
        total = updates.sum(0) + (clip * directions.sum(0) if insert else 0)
        delta += (total + sigma * clip * torch.randn(dimension, generator=generator, dtype=torch.float64)) / n
    return {"w": delta}


def estimate(sigma: float, insert: bool = True) -> dict:
    shapes, final = {"w": torch.Size([DIMENSION])}, simulated_run(sigma, insert)
    initial = {"w": torch.zeros(DIMENSION)}
    inserted = canary_cosines(initial, final, shapes, 0, list(range(CANARIES)))
    fresh = canary_cosines(initial, final, shapes, 0, [FRESH_OFFSET + j for j in range(FRESH)])
    return one_shot_epsilon(inserted, fresh, 1e-5) | {"control": fresh_control(fresh, CANARIES, 1e-5)}


def test_the_estimate_finds_the_noise_the_server_added_and_nothing_when_nothing_was_inserted():
    exact = gaussian_pair_epsilon(math.sqrt(10) / 2.0, 1.0, 0.0, 1.0, 1e-5)  # σ = 2, 10 rounds: 7.51
    noisy = estimate(2.0)
    assert noisy["empirical_epsilon_equal_variance"] == pytest.approx(exact, rel=0.3)
    assert noisy["separation_pvalue"] < 1e-6
    assert estimate(0.0)["empirical_epsilon"] > 5 * exact  # no noise: far beyond any DP row
    nothing = estimate(2.0, insert=False)  # the canaries were never added: a null run
    assert nothing["empirical_epsilon_equal_variance"] < 1.0 and nothing["separation_pvalue"] > 0.001
    assert noisy["control"]["empirical_epsilon_equal_variance"] < 1.0


def test_the_fl_audit_table_shows_each_runs_estimates_beside_the_accounted_epsilon(tmp_path):
    from fl_privacy.report.tables import fl_audit_table
    from fl_privacy.results import write_json

    for seed, accounted, estimate in ((0, 8.08, 9.5), (1, None, 2887.3)):
        run = tmp_path / str(seed)
        write_json(run / "summary.json", {"config": {"seed": seed}, "metrics": {"final": {"accuracy": 0.5}}})
        write_json(run / "dp_audit_fl" / "scores.json", {
            "accounted_epsilon": accounted, "empirical_epsilon": estimate,
            "empirical_epsilon_equal_variance": 7.6,
            "fresh_control": {"empirical_epsilon": 1.4, "empirical_epsilon_equal_variance": 0.4},
            "inserted_cosine_mean": 0.003, "inserted_cosine_std": 0.002, "fresh_cosine_mean": 0.0,
            "fresh_cosine_std": 0.0019, "separation_pvalue": 1e-19, "num_inserted": 50, "num_fresh": 1000})
    lines = fl_audit_table(tmp_path).splitlines()
    assert lines[2].startswith("| 0 | 8.08 | 9.50 | 7.60 | 1.40 / 0.40 | 0.0030 ± 0.0020 |")
    assert lines[3].startswith("| 1 | ∞ | 2887.30 |")
