import pytest
import torch
from opacus.validators import ModuleValidator

from fl_privacy.models import SeedCNN, SigmoidLeNet, build_model, model_factory
from fl_privacy.training import TrainSettings, evaluate, train


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("model_class", [SeedCNN, SigmoidLeNet])
def test_models_map_images_to_the_configured_outputs(model_class, shape):
    model = model_class(shape, 11)
    assert model(torch.rand(4, *shape)).shape == (4, 11)
    assert model.features(torch.rand(2, *shape)).shape[0] == 2


def test_seed_cnn_layout():
    convs = [m for m in SeedCNN((1, 28, 28), 10).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (5, 5), (2, 2)), (128, (5, 5), (2, 2))]


@pytest.mark.parametrize("name", ["cnn", "lenet"])
def test_group_norm_variants_are_opacus_compatible(settings_factory, name):
    settings = settings_factory(f"model={name}", "model.norm=group")
    assert ModuleValidator.validate(build_model(settings.model, (1, 28, 28), 10), strict=False) == []


def test_model_factory_is_deterministic(settings_factory):
    make = model_factory(settings_factory().model, (1, 28, 28), 10, seed=3)
    first, second = make().state_dict(), make().state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_training_loop_learns_and_is_reproducible(settings_factory):
    from fl_privacy.data.federation import build_federation

    federation = build_federation(settings_factory().federation)
    make = model_factory(settings_factory().model, (1, 28, 28), 10, seed=0)
    settings = TrainSettings(epochs=2, batch_size=32, lr=1e-3)
    before = evaluate(make(), federation.splits.test, 10).accuracy
    runs = []
    for _ in range(2):
        model = make()
        stats = train(model, federation.warmup, settings, seed=5)
        runs.append((stats.loss, evaluate(model, federation.splits.test, 10).accuracy))
    assert runs[0] == runs[1]
    assert runs[0][1] > before + 0.3
