"""A user's own model for fl-privacy, outside the package: `model._target_=my_models.SmallCNN`.

The lab calls the factory with `image_shape=(C, H, W)` and `num_classes=K` (from the data), plus every other
key of the model section (`+model.channels=16`)."""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with max-pooling and a linear head; GroupNorm keeps it Opacus-compatible."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, channels: int = 16) -> None:
        super().__init__()
        in_channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.GroupNorm(4, channels), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.GroupNorm(4, 2 * channels), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Linear(2 * channels * (height // 4) * (width // 4), num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))
