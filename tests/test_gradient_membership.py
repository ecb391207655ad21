"""The white-box per-example-gradient attacks on a client's update (Nasr et al. 2019), with their
positive control (a client that trained on the members) and negative control (an update that used none
of the candidates)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fl_privacy.attacks.gradient_membership import gradient_membership_scores, per_example_gradient_stats
from fl_privacy.attacks.views import CapturedUpdate, UpdateAuditorView
from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.membership_metrics import membership_metrics
from fl_privacy.training import TrainSettings, train


def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))


def records(count: int, seed: int) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    # distinct records (wide Gaussian pixels), so each member's gradient is its own
    return ImageDataset(3 * torch.randn(count, 1, 8, 8, generator=generator),
                        torch.randint(0, 4, (count,), generator=generator))


def client_update(trained_on: ImageDataset) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    model = small_model(0)
    sent = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, trained_on, TrainSettings(epochs=5, batch_size=8, lr=0.1, optimizer="sgd"), seed=0)
    return model, sent


def test_per_example_gradients_match_autograd_one_record_at_a_time():
    model, data = small_model(1), records(5, 1)
    direction = torch.randn(sum(p.numel() for p in model.parameters()))
    norms, cosines = per_example_gradient_stats(model, data, direction, chunk=2)
    for index in range(5):
        model.zero_grad()
        one = slice(index, index + 1)
        nn.functional.cross_entropy(model(data.images[one]), data.labels[one]).backward()
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert np.isclose(norms[index], flat.norm().item(), rtol=1e-4)
        cosine = flat @ direction / flat.norm() / direction.norm()
        assert np.isclose(cosines[index], cosine.item(), atol=1e-4)


def test_the_gradient_attacks_find_the_clients_records_and_nothing_in_an_update_that_did_not_use_them():
    members, outsiders, unrelated = records(40, 2), records(200, 3), records(40, 4)
    candidates = ImageDataset(torch.cat([members.images, outsiders.images]),
                              torch.cat([members.labels, outsiders.labels]))
    is_member = np.arange(len(candidates.labels)) < len(members.labels)
    aucs = {}
    for name, data in (("trained", members), ("unrelated", unrelated)):
        model, sent = client_update(data)
        update = CapturedUpdate(sent, (1, 8, 8), batch_size=8, num_examples=40,
                                updated_state=model.state_dict(), lr=0.1, local_steps=25)
        scores = gradient_membership_scores(UpdateAuditorView(update, candidates, small_model))
        aucs[name] = {attack: membership_metrics(values, is_member)["auc"]
                      for attack, values in scores.items()}
    assert aucs["trained"]["gradient_cosine"] > 0.9 and aucs["trained"]["returned_gradient_norm"] > 0.9
    assert all(0.35 < auc < 0.65 for auc in aucs["unrelated"].values())
