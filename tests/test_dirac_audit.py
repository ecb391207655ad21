"""White-box Dirac canaries (issue 29): the canary block trains beside the model without changing it, the
observer's scores separate inserted canaries when there is no noise, honest noise gives no violation and the
planted noise fault does; a Dirac audit that cannot work is refused before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_privacy.attacks.dirac_observer import WhiteBoxObserver
from fl_privacy.data.images import ImageDataset
from fl_privacy.defenses.dp_sgd import DpSettings, PrivacyLedger, private_train
from fl_privacy.defenses.gradient_canaries import CanaryBlock, dirac_inclusion
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.dp_audit import audit_epsilon, audit_verdict
from fl_privacy.lab.preflight import check_settings
from fl_privacy.models import SeedCNN
from fl_privacy.training import TrainSettings

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")
# k = 900 < m/2: ~1000 ± 22 canaries are inserted, so the top and bottom 900 guesses can all be right
M, GUESSES = 2000, [250, 900]


def _data() -> ImageDataset:
    generator = torch.Generator().manual_seed(3)
    return ImageDataset(torch.rand(48, 1, 12, 12, generator=generator),
                        torch.randint(0, 3, (48,), generator=generator))


def _train(dp: DpSettings, block: CanaryBlock | None, epochs: int = 2) -> tuple[dict, PrivacyLedger]:
    torch.manual_seed(0)
    model, ledger = SeedCNN((1, 12, 12), 3), PrivacyLedger()
    private_train(model, _data(), TrainSettings(epochs=epochs, batch_size=8, lr=0.05, optimizer="sgd"), dp,
                  ledger, seed=1, total_steps=6 * epochs, canaries=block)
    return model.state_dict(), ledger


def _audit(dp: DpSettings, epochs: int = 2) -> tuple[dict, WhiteBoxObserver, float]:
    included = dirac_inclusion(0, M)
    observer = WhiteBoxObserver.fresh(M)
    _, ledger = _train(dp, CanaryBlock.of(included, 1 / 6, observer, seed=5), epochs)
    claimed = ledger.epsilon(dp.delta)
    result = audit_epsilon(observer.scores.numpy(), included, dp.delta, 0.95, GUESSES)
    return result | audit_verdict(result["epsilon_lower_bound"], claimed, result["max_showable_epsilon"]), \
        observer, claimed


def test_the_canary_block_leaves_the_model_s_training_unchanged(one_torch_thread):
    dp = DpSettings(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)
    without, ledger_without = _train(dp, None)
    observer = WhiteBoxObserver.fresh(M)
    with_block, ledger_with = _train(dp, CanaryBlock.of(dirac_inclusion(0, M), 1 / 6, observer, seed=5))
    assert observer.steps == 12  # 2 epochs of 6 Poisson batches, every step observed
    for name, weights in without.items():
        assert torch.equal(weights, with_block[name]), name  # same noise draws, same clipping of θ
    assert ledger_with.history == ledger_without.history  # and the same accounting


def test_without_noise_the_scores_separate_inserted_canaries_perfectly(one_torch_thread):
    result, observer, _ = _audit(DpSettings(noise_multiplier=0.0, max_grad_norm=1.0, delta=1e-5), epochs=8)
    included = dirac_inclusion(0, M)
    # out-canaries are never added (score 0); each in-canary was sampled at least once in 48 steps
    assert (observer.scores.numpy()[~included] == 0).all()
    assert (observer.scores.numpy()[included] >= 1).all()
    assert result["canary_auc"] == 1.0
    assert result["epsilon_lower_bound"] == pytest.approx(result["max_showable_epsilon"], rel=1e-6)


def test_honest_noise_is_not_flagged_and_the_planted_fault_is(one_torch_thread):
    # σ = 3 over 12 steps at q = 1/6: accounted ε ≈ 0.6
    honest, _, claimed = _audit(DpSettings(noise_multiplier=3.0, max_grad_norm=1.0, delta=1e-5))
    assert 0 < claimed < 1
    assert not honest["violation"] and honest["epsilon_lower_bound"] < claimed
    assert honest["can_fail"]
    broken, _, claimed_broken = _audit(DpSettings(noise_multiplier=3.0, max_grad_norm=1.0, delta=1e-5,
                                                  noise_factor=0.01))
    assert claimed_broken == claimed  # the faulty optimizer's accountant sees the claimed σ
    assert broken["violation"] and broken["epsilon_lower_bound"] > 2 * claimed


def test_the_observer_adds_each_step_s_likelihood_ratio():
    observer = WhiteBoxObserver.fresh(3)
    # released = (b + noise) C / B with C = 2, B = 4: x = 0, 1, 3 in units of C
    observer.observe(torch.tensor([0.0, 0.5, 1.5]), sigma=1.0, clip=2.0, scale=4.0, rate=0.25)
    x = np.array([0.0, 1.0, 3.0])
    expected = np.log(0.75 + 0.25 * np.exp(x - 0.5))
    assert observer.scores.numpy() == pytest.approx(expected, rel=1e-12)
    observer.observe(torch.tensor([0.0, 0.5, 1.5]), sigma=0.0, clip=2.0, scale=4.0, rate=0.25)
    assert observer.scores.numpy() == pytest.approx(expected + x, rel=1e-12)


def test_a_dirac_audit_that_cannot_work_is_refused_before_training(settings_factory):
    with pytest.raises(ConfigError, match="attack.dp_audit.confidence"):
        check_settings(settings_factory("+experiment=dp_audit_dirac", "data.canaries.count=20",
                                        "attack.dp_audit.guesses=[10]",
                                        "attack.dp_audit.confidence=0.9999999"))
    # 20 of 20 right has p = 2^-20 ≈ 1e-6 at ε = 0: significant at 99.999% (δ = 1e-6), so that one is allowed
    check_settings(settings_factory("+experiment=dp_audit_dirac", "data.canaries.count=20",
                                    "attack.dp_audit.guesses=[10]", "attack.dp_audit.confidence=0.99999"))
    with pytest.raises(ConfigError, match="data.canaries.kind"):  # Dirac canaries need a DP-SGD client
        settings_factory("+experiment=dp_audit_dirac", "client=honest")
    with pytest.raises(ConfigError, match="data.canaries.kind"):
        settings_factory("+experiment=dp_audit_dirac", "defense.dp.adaptive_clipping.enabled=true")
    with pytest.raises(ConfigError, match="attack.dp_audit.guesses"):
        settings_factory("+experiment=dp_audit_dirac", "data.canaries.count=100")


def test_the_pipeline_scores_what_the_observer_published_against_the_seed_s_truth(settings_factory, tmp_path):
    from fl_privacy.lab.channels.side_channels import RunHooks
    from fl_privacy.lab.pipelines.dirac_audit_pipeline import run_dirac_audit
    from fl_privacy.results import RunFileError, read_json
    from fl_privacy.run_layout import DIRAC_SCORES_ARTIFACT, DP_AUDIT_ATTACK_SCORES, DP_AUDIT_SCORES

    overrides = ("+experiment=dp_audit_dirac", "data.canaries.count=2000", "attack.dp_audit.guesses=[900]")
    settings = settings_factory(*overrides, "seed=4")
    with pytest.raises(RunFileError, match=DIRAC_SCORES_ARTIFACT):
        run_dirac_audit(tmp_path, settings, 1.0, 1e-5, "rdp")
    included = dirac_inclusion(4, 2000)
    scores = torch.from_numpy(np.where(included, 3.0, 0.0) + np.random.default_rng(0).normal(0, 0.1, 2000))
    RunHooks(tmp_path).publish(DIRAC_SCORES_ARTIFACT, 5, {"scores": scores, "steps": 120})
    result = run_dirac_audit(tmp_path, settings, 1.0, 1e-5, "rdp")
    assert result["num_included"] == included.sum() and result["observed_steps"] == 120
    assert result["epsilon_lower_bound"] == pytest.approx(result["max_showable_epsilon"], rel=1e-6)
    assert result["violation"] and result["violation_pvalue"] < 0.05
    assert read_json(tmp_path / DP_AUDIT_SCORES)["violation"]
    published = read_json(tmp_path / DP_AUDIT_ATTACK_SCORES)
    assert "included" not in published and len(published["scores"]) == 2000
    # the truth of another seed does not match these scores: chance, no bound
    other = run_dirac_audit(tmp_path, settings_factory(*overrides, "seed=5"), 1.0, 1e-5, "rdp")
    assert not other["violation"] and abs(other["canary_auc"] - 0.5) < 0.05


def test_the_canary_client_accumulates_and_publishes_the_observer_s_scores(settings_factory, monkeypatch,
                                                                           tmp_path):
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, Metadata, RecordDict

    from fl_privacy.apps.client_app import handle_train
    from fl_privacy.data.federation import build_federation
    from fl_privacy.lab.channels.side_channels import RunHooks
    from fl_privacy.models import build_model
    from fl_privacy.protocol import ARRAYS, CONFIG, PARTITION_ID, SERVER_ROUND
    from fl_privacy.results import load_tensors
    from fl_privacy.run_layout import DIRAC_SCORES_ARTIFACT, lab_artifact

    settings = settings_factory("+experiment=dp_audit_dirac", "data=lfw_offline",
                                "client.examples_per_round=64", "client.batch_size=16",
                                "client.local_epochs=1", "data.canaries.count=2000",
                                "attack.dp_audit.guesses=[900]", "defense.dp.target_epsilon=null",
                                "defense.dp.noise_multiplier=1.0")
    assert settings.data.canaries.partition == 0
    federation = build_federation(settings.federation)
    assert len(federation.canary_indices) == 0  # no input canaries: the Dirac canaries live in the optimizer
    monkeypatch.setattr("fl_privacy.apps.client_app.cached_federation", lambda _: federation)
    torch.manual_seed(0)
    splits = federation.splits
    weights = build_model(settings.model, splits.image_shape, splits.num_classes).state_dict()

    def train_message(server_round: int) -> Message:
        metadata = Metadata(run_id=1, message_id=f"m{server_round}", src_node_id=0, dst_node_id=1,
                            reply_to_message_id="", group_id="", created_at=0.0, ttl=60.0,
                            message_type=MessageType.TRAIN)
        return Message(content=RecordDict({ARRAYS: ArrayRecord(weights),
                                           CONFIG: ConfigRecord({SERVER_ROUND: server_round})}),
                       metadata=metadata)

    hooks, path = RunHooks(tmp_path), lab_artifact(tmp_path, DIRAC_SCORES_ARTIFACT)
    other = Context(run_id=1, node_id=2, node_config={PARTITION_ID: 1}, state=RecordDict(), run_config={})
    handle_train(settings, hooks, train_message(1), other)
    assert not path.exists()  # only the canary partition holds the block
    context = Context(run_id=1, node_id=1, node_config={PARTITION_ID: 0}, state=RecordDict(), run_config={})
    published = []
    for server_round in (1, 2):
        handle_train(settings, hooks, train_message(server_round), context)
        published.append(load_tensors(path))
    assert [p["round"] for p in published] == [1, 2]
    assert [p["steps"] for p in published] == [4, 8]  # 64 examples, batch 16: 4 steps a round, accumulated
    first, second = (p["scores"].numpy() for p in published)
    assert first.shape == (2000,) and not np.allclose(first, second)
