"""A malicious capturing server: Robbing the Fed (Fowl et al. 2022).

In the captured rounds it rewrites the imprint block of the model it sends (`model.imprint_bins`, see
`fl_privacy.models.ImprintBlock`): every unit of `imprint.linear0` measures the same statistic, an image's
mean brightness, against its own threshold (`relu(mean(x) - t_i)`), with thresholds at equal-mass quantiles
of the brightness of the server's own warm-up images, and `imprint.linear1` feeds every unit back with the
same weight. Then image n contributes the same gradient factor to every unit it switches on, so the
difference of two consecutive units' weight gradients over that of their bias gradients is exactly the image
that fell between the two thresholds when it is alone there (`fl_privacy.attacks.imprint`). Training,
aggregation and capturing stay those of `GradientCapture`; the server never sees the clients' data.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message

from fl_privacy.data.images import ImageDataset
from fl_privacy.models import FEEDBACK_BIAS, FEEDBACK_WEIGHT, IMPRINT_BIAS, IMPRINT_WEIGHT
from strategies.gradient_capture import GradientCapture

# Size of each unit's feedback into every pixel: small enough that the imprinted model still sees its input.
FEEDBACK = 1e-3


def brightness_thresholds(bins: int, public: ImageDataset | None) -> torch.Tensor:
    """`bins` increasing thresholds at equal-mass quantiles of the mean brightness of `public` images
    (evenly spaced in [0, 1] without public data); the first is 0, so every image but a black one turns
    on unit 0."""
    levels = torch.arange(bins, dtype=torch.float64) / bins
    if public is None or len(public) == 0:
        return levels.float()
    brightness = public.images.flatten(1).double().mean(dim=1)
    thresholds = torch.quantile(brightness, levels)
    thresholds[0] = 0.0
    return thresholds.float()


def craft_imprint(state: dict[str, torch.Tensor], thresholds: torch.Tensor, feedback: float = FEEDBACK
                  ) -> dict[str, torch.Tensor]:
    """`state` with its imprint block set to measure mean brightness against `thresholds`, each unit fed
    back into every pixel with weight `feedback`."""
    bins, size = state[IMPRINT_WEIGHT].shape
    if len(thresholds) != bins:
        raise ValueError(f"{len(thresholds)} thresholds for an imprint block of {bins} units")
    crafted = dict(state)
    crafted[IMPRINT_WEIGHT] = torch.full((bins, size), 1.0 / size)
    crafted[IMPRINT_BIAS] = -thresholds.clone()
    crafted[FEEDBACK_WEIGHT] = torch.full((size, bins), feedback)
    crafted[FEEDBACK_BIAS] = torch.zeros(size)
    return crafted


class ImprintCapture(GradientCapture):
    """GradientCapture that sends a crafted imprint block in the captured rounds (thresholds from the
    server's warm-up images)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._thresholds: torch.Tensor | None = None

    def thresholds(self, bins: int) -> torch.Tensor:
        if self._thresholds is None:
            self._thresholds = brightness_thresholds(bins, self.warmup_data)
        return self._thresholds

    def configure_round(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
                        ) -> Iterable[Message]:
        if server_round in self.schedule.rounds:
            state = arrays.to_torch_state_dict()
            arrays = ArrayRecord(craft_imprint(state, self.thresholds(len(state[IMPRINT_BIAS]))))
        return super().configure_round(server_round, arrays, config)
