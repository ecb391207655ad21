"""How good a generator's samples are, judged by the independent oracle (fl_privacy.evaluation.oracle)."""

from __future__ import annotations

import numpy as np
import torch

from fl_privacy.evaluation.oracle import FeatureSpace, Oracle, frechet_distance


def sample_quality(oracle: Oracle, space: FeatureSpace, samples: torch.Tensor,
                   reference: torch.Tensor) -> dict[str, float]:
    """Oracle measures of unconditional samples against real `reference` images:
    - `oracle_confidence`: mean of the oracle's top probability among the data classes;
    - `not_data_share`: share of samples the oracle files under its extra "not data" class;
    - `class_balance`: entropy of the predicted-class histogram / log(classes) (1 = all classes equally);
    - `frechet_distance`: between Gaussian fits of samples and reference in the oracle's feature space.
    """
    probabilities = oracle.probabilities(samples)
    num_classes = probabilities.shape[1] - 1  # the last class is "not data"
    predicted = probabilities.argmax(1)
    histogram = torch.bincount(predicted[predicted < num_classes], minlength=num_classes).double()
    shares = histogram / histogram.sum().clamp_min(1)
    entropy = -(shares[shares > 0] * shares[shares > 0].log()).sum()
    return {"oracle_confidence": float(probabilities[:, :num_classes].max(1).values.mean()),
            "not_data_share": float((predicted == num_classes).double().mean()),
            "class_balance": float(entropy / np.log(num_classes)),
            "frechet_distance": frechet_distance(space(samples), space(reference))}
