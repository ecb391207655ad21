"""Image inversion from deep representations (Mahendran & Vedaldi 2015; MindArmour's ImageInversionAttack).

The attacker has the model and the activation of one of its layers (a node name of torchvision's
feature extraction, e.g. `body.2`) for an image it has never seen, and optimises an image so that its
activation matches: normalised feature distance + total variation + L2, images kept in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from fl_privacy.attacks.image_optimisation import DummyImages, adam_descent, lbfgs_descent
from fl_privacy.attacks.priors import total_variation
from fl_privacy.config.schema import RepresentationInversionSettings


@dataclass(frozen=True)
class Inversion:
    """Reconstructed images in [0, 1] and the final normalised feature distance of each."""

    images: torch.Tensor
    feature_loss: torch.Tensor


def layer_names(model: nn.Module) -> list[str]:
    """The node names whose activations `layer_extractor` can read (eval-mode graph)."""
    return get_graph_node_names(model)[1]


def layer_extractor(model: nn.Module, layer: str) -> nn.Module:
    """A frozen eval-mode module returning `model`'s activation at node `layer` (torchvision FX)."""
    if layer not in layer_names(model):
        raise ValueError(f"layer {layer!r} is not a node of {type(model).__name__}; "
                         f"nodes: {', '.join(layer_names(model))}")
    extractor = create_feature_extractor(model.eval(), return_nodes={layer: "out"}).eval()
    extractor.requires_grad_(False)
    return extractor


def feature_distance(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image |phi(x) - phi_0|^2 / |phi_0|^2 (Mahendran & Vedaldi's normalised loss)."""
    difference = (features - reference).flatten(1).pow(2).sum(1)
    return difference / reference.flatten(1).pow(2).sum(1).clamp_min(1e-12)


def invert_representation(model: nn.Module, layer: str, activation: torch.Tensor,
                          image_shape: tuple[int, int, int], settings: RepresentationInversionSettings
                          ) -> Inversion:
    """Images whose activation at `layer` matches `activation` (one image per row).

    Loss per image: normalised feature distance + tv_weight * TV + l2_weight * mean(x^2); Adam or
    L-BFGS, clamped to [0, 1] after every step, starting from grey plus noise drawn with the seed."""
    extractor = layer_extractor(model, layer)
    reference = activation.detach()
    noise = torch.Generator().manual_seed(settings.seed)
    dummy = DummyImages(0.5 + 0.1 * torch.randn(len(reference), *image_shape, generator=noise))

    def per_image_loss(images: torch.Tensor) -> torch.Tensor:
        distance = feature_distance(extractor(images)["out"], reference)
        priors = torch.stack([settings.tv_weight * total_variation(image) for image in images])
        return distance + priors + settings.l2_weight * images.pow(2).flatten(1).mean(1)

    if settings.optimizer == "lbfgs":
        lbfgs_descent(dummy, lambda: per_image_loss(dummy.images()).sum(),
                      iterations=max(1, settings.iterations // 20), inner_iterations=20, lr=settings.lr,
                      name=f"inversion at {layer}")
    else:
        def objective(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            loss = per_image_loss(images).sum()
            return loss, loss

        adam_descent(dummy, objective, iterations=settings.iterations, lr=settings.lr,
                     name=f"inversion at {layer}")
    images = dummy.images().detach()
    with torch.no_grad():
        final = feature_distance(extractor(images)["out"], reference)
    return Inversion(images, final)
