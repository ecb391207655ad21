"""The one supervised training loop and evaluation, shared by clients, warm-up and baselines."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from fl_privacy.config.schema import ClientSettings, ReferenceTrainingSettings, WarmupSettings
from fl_privacy.data.images import ImageDataset

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainSettings:
    """How to train locally: epochs over the data, batch size, the optimizer and optional clipping.

    `max_grad_norm` clips each step's whole gradient to that L2 norm (None = no clipping).
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float | None = None

    @classmethod
    def of(cls, recipe: ClientSettings | WarmupSettings | ReferenceTrainingSettings) -> TrainSettings:
        """The training recipe of the clients (`local_epochs` as epochs), the warm-up or reference models."""
        if isinstance(recipe, ClientSettings):
            return cls(recipe.local_epochs, recipe.batch_size, recipe.lr, recipe.optimizer, recipe.momentum,
                       recipe.weight_decay, recipe.max_grad_norm)
        return cls(recipe.epochs, recipe.batch_size, recipe.lr, recipe.optimizer)


@dataclass(frozen=True)
class TrainStats:
    loss: float
    accuracy: float
    num_examples: int
    steps: int


@dataclass(frozen=True)
class EvalResult:
    loss: float
    accuracy: float
    per_class_accuracy: list[float]


def make_optimizer(params, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


StepHook = Callable[[], None]


def model_device(model: nn.Module) -> torch.device:
    """Where `model`'s parameters are (CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def fit_batches(model: nn.Module, optimizer: torch.optim.Optimizer,
                batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, max_grad_norm: float | None = None,
                before_step: StepHook | None = None, after_step: StepHook | None = None) -> TrainStats:
    """The training loop: one cross-entropy step per batch of `batches` (moved to the model's device).

    `max_grad_norm` clips each step's whole gradient; `before_step` runs before each optimizer step
    (e.g. a DP noise schedule) and `after_step` after it (e.g. a sparsity mask). Empty batches (possible
    with Poisson sampling) still go through the model and the optimizer step, so a DP optimizer adds
    its noise and accounts the step.
    """
    model.train()
    device = model_device(model)
    total_loss, correct, seen, steps = 0.0, 0, 0, 0
    for cpu_images, cpu_labels in batches:
        images, labels = cpu_images.to(device), cpu_labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels) if len(labels) else logits.sum() * 0.0
        loss.backward()
        if len(labels):
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        if before_step is not None:
            before_step()
        optimizer.step()
        if after_step is not None:
            after_step()
        steps += 1
    return TrainStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, steps)


def shuffled_batches(data: ImageDataset, batch_size: int, epochs: int, generator: torch.Generator
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`epochs` passes over `data` in a fresh seeded order each, in batches of `batch_size`."""
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            batch = order[start:start + batch_size]
            yield data.images[batch], data.labels[batch]


def train(model: nn.Module, data: ImageDataset, settings: TrainSettings, seed: int,
          after_step: StepHook | None = None) -> TrainStats:
    """Train `model` in place with cross-entropy; `seed` drives batch order and dropout."""
    torch.manual_seed(seed)
    optimizer = make_optimizer(model.parameters(), settings)
    batches = shuffled_batches(data, settings.batch_size, settings.epochs,
                               torch.Generator().manual_seed(seed))
    stats = fit_batches(model, optimizer, batches, max_grad_norm=settings.max_grad_norm,
                        after_step=after_step)
    return replace(stats, num_examples=len(data))


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageDataset, num_classes: int,
             batch_size: int = 1000) -> EvalResult:
    """Loss, accuracy and per-class accuracy (NaN for classes absent from `data`), computed on the model's
    device."""
    model.eval()
    device = model_device(model)
    total_loss, predictions = 0.0, []
    for start in range(0, len(data), batch_size):
        logits = model(data.images[start:start + batch_size].to(device))
        labels = data.labels[start:start + batch_size].to(device)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        predictions.append(logits.argmax(1).cpu())
    predicted = torch.cat(predictions)
    hits = (predicted == data.labels).float()
    per_class = [hits[data.labels == c].mean().item() if (data.labels == c).any() else float("nan")
                 for c in range(num_classes)]
    return EvalResult(total_loss / len(data), hits.mean().item(), per_class)


def batch_gradient(model: nn.Module, data: ImageDataset) -> tuple[dict[str, torch.Tensor], TrainStats]:
    """FedSGD: the mean cross-entropy gradient of one batch (`data`) per parameter name; no step is taken."""
    model.train()
    device = model_device(model)
    labels = data.labels.to(device)
    logits = model(data.images.to(device))
    loss = F.cross_entropy(logits, labels)
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    return dict(zip(names, grads, strict=True)), TrainStats(loss.item(), accuracy, len(data), 1)
