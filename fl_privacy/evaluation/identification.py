"""Identification: the success rule of gradient inversion that a guess cannot pass.

A batch's reconstructions are first matched one-to-one to its true images (Hungarian assignment, scipy's
`linear_sum_assignment`, on the distance being judged). A matched reconstruction is *identified* when it is
strictly closer to its own truth than to every image of the truth's class in the comparison pool (at least
`MIN_POOL` images). The pool (`evaluation.comparison_pool`) is every image of the data set that is not in
the batch: the test split and every training image outside the batch (~480 a class for the offline MNIST),
the batch's own images left out by exact-pixel fingerprint. Two distances are judged, each with its own
matching: pixel MSE (the primary one, kept in every headline) and SSIM (scikit-image's defaults: 7 x 7
uniform window, computed batched in torch here; `1 - SSIM` as the distance).

Baselines go through the same matching and rule (`baseline_reconstructions`): `blank` (black images),
`class_mean` (the mean pool image of each *estimated* label), `label_only` (a random pool image of each
estimated label, left out of its own comparison). A guess of the right class passes by chance: about
1 / (pool + 1) with one image a batch, and about batch / (pool + 1) with B images of one class, because the
matching lets each true image take the nearest of the B guesses (B = 16: ~0.14 against a pool of 100 a
class, ~0.03 against 480). `label_only` measures exactly that, and scores.json states the pool's smallest
size per class beside `identified`. The negative control (the attack's reconstruction of *other* images,
scored against this batch's truth) is assembled by the lab from another capture of the same cell
(`negative_control_pairs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import binomtest
from torch.nn import functional as F

from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.comparison_pool import POOL_RULE, fingerprints, pool_mask, pool_sizes

Distance = Literal["mse", "ssim"]
DISTANCES: tuple[Distance, ...] = ("mse", "ssim")
PRIMARY: Distance = "mse"
MIN_POOL = 90
BASELINES = ("blank", "class_mean", "label_only")
NEGATIVE_CONTROL = "negative_control"
ATTACK = "attack"

_SSIM_WINDOW = 7
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_CHUNK = 2048  # pairs per SSIM batch


def _flat(images: torch.Tensor) -> torch.Tensor:
    return images.detach().double().cpu().flatten(1)


def pairwise_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) mean squared pixel difference of images in [0, 1]."""
    x, y = _flat(a), _flat(b)
    return ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T).clamp_min(0) / x.shape[1]


def _local_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (F.avg_pool2d(images, _SSIM_WINDOW, stride=1),
            F.avg_pool2d(images * images, _SSIM_WINDOW, stride=1))


def pairwise_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) SSIM of images in [0, 1] (N x C x H x W), equal to scikit-image's
    `structural_similarity(data_range=1, channel_axis=0)`: 7 x 7 uniform window, sample covariances, the
    border the window cannot cover left out, channels averaged."""
    x, y = a.detach().double().cpu(), b.detach().double().cpu()
    if min(x.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW} x {_SSIM_WINDOW} pixels")
    c1, c2 = _SSIM_K1 ** 2, _SSIM_K2 ** 2
    norm = _SSIM_WINDOW ** 2 / (_SSIM_WINDOW ** 2 - 1)
    ux, uxx = _local_stats(x)
    uy, uyy = _local_stats(y)
    vx, vy = norm * (uxx - ux * ux), norm * (uyy - uy * uy)
    out = torch.empty(len(x), len(y), dtype=torch.float64)
    rows = max(1, _CHUNK // max(len(y), 1))
    for start in range(0, len(x), rows):
        xs = x[start:start + rows]
        uxy = F.avg_pool2d((xs[:, None] * y[None]).flatten(0, 1), _SSIM_WINDOW, stride=1)
        uxy = uxy.unflatten(0, (len(xs), len(y)))
        mx, my = ux[start:start + rows, None], uy[None]
        vxy = norm * (uxy - mx * my)
        s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1)
                                                      * (vx[start:start + rows, None] + vy[None] + c2))
        out[start:start + rows] = s.flatten(2).mean(dim=2)  # spatial mean per channel, then over channels
    return out


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, distance: Distance) -> torch.Tensor:
    """(len(a), len(b)) distances: pixel MSE, or 1 - SSIM."""
    return pairwise_mse(a, b) if distance == "mse" else 1 - pairwise_ssim(a, b)


def optimal_matching(reconstruction: torch.Tensor, truth: torch.Tensor, distance: Distance) -> torch.Tensor:
    """`order` such that `reconstruction[order][j]` is matched to `truth[j]` (minimal total distance)."""
    cost = pairwise_distance(truth, reconstruction, distance).numpy()
    rows, cols = linear_sum_assignment(cost)
    return torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)


def identify(reconstruction: torch.Tensor, truth: ImageDataset, pool: ImageDataset, distance: Distance,
             exclude: Sequence[Sequence[int]] = (), min_pool: int = MIN_POOL) -> list[bool]:
    """Per true image (truth order): is its matched reconstruction strictly nearer to it than to every `pool`
    image of its class? `exclude[i]` lists pool indices left out of reconstruction i's comparison (e.g. the
    pool image a label-only guess copied). Raises if a class's pool is smaller than `min_pool`."""
    if reconstruction.shape != truth.images.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and truth "
                         f"{tuple(truth.images.shape)} must have the same shape")
    order = optimal_matching(reconstruction, truth.images, distance)
    aligned = reconstruction[order]
    own = pairwise_distance(aligned, truth.images, distance).diagonal()
    result = [False] * len(truth)
    for label in truth.labels.unique().tolist():
        rows = torch.nonzero(truth.labels == label).flatten()
        members = torch.nonzero(pool.labels == label).flatten()
        others = pairwise_distance(aligned[rows], pool.images[members], distance)  # one call per class
        for row, distances in zip(rows.tolist(), others, strict=True):
            keep = torch.ones(len(members), dtype=torch.bool)
            if exclude:
                keep = ~torch.isin(members, torch.as_tensor(exclude[int(order[row])], dtype=torch.long))
            if int(keep.sum()) < min_pool:
                raise ValueError(f"the comparison pool of class {label} holds {int(keep.sum())} "
                                 f"images; identification needs at least {min_pool}")
            result[row] = bool(own[row] < distances[keep].min())
    return result


def baseline_reconstructions(estimated_labels: torch.Tensor, pool: ImageDataset, image_shape: Sequence[int],
                             generator: np.random.Generator
                             ) -> dict[str, tuple[torch.Tensor, list[list[int]]]]:
    """What an attacker who ignores the gradient could return for a batch with these estimated labels:
    name -> (images, per-image pool indices to leave out of its comparison). A label the pool lacks
    falls back to the pool's overall mean / a random pool image."""
    blank = torch.zeros(len(estimated_labels), *image_shape)
    means, copies, exclude = [], [], []
    for label in estimated_labels.tolist():
        members = torch.nonzero(pool.labels == label).flatten()
        members = members if len(members) else torch.arange(len(pool))
        means.append(pool.images[members].mean(dim=0))
        chosen = int(generator.choice(members.numpy()))
        copies.append(pool.images[chosen])
        exclude.append([chosen])
    return {"blank": (blank, [[] for _ in estimated_labels]),
            "class_mean": (torch.stack(means), [[] for _ in estimated_labels]),
            "label_only": (torch.stack(copies), exclude)}


def wilson_share(hits: int, n: int) -> dict:
    """`identified` as stored in scores.json: the share with its Wilson 95% interval and n."""
    if n == 0:
        return {"share": None, "low": None, "high": None, "hits": 0, "n": 0}
    interval = binomtest(hits, n).proportion_ci(method="wilson")
    return {"share": hits / n, "low": float(interval.low), "high": float(interval.high), "hits": hits, "n": n}


def score_batch(reconstruction: torch.Tensor | None, estimated_labels: torch.Tensor, truth: ImageDataset,
                pool: ImageDataset, seed: int, min_pool: int = MIN_POOL) -> dict[str, dict[str, list[bool]]]:
    """The attack's and every baseline's per-image identification for one captured batch, under each
    distance: {"attack" | baseline: {"mse": [...], "ssim": [...]}} (the attack only when it made images)."""
    generator = np.random.default_rng(seed)
    candidates = dict(baseline_reconstructions(estimated_labels, pool, truth.images.shape[1:], generator))
    if reconstruction is not None:
        candidates[ATTACK] = (reconstruction, [[] for _ in range(len(reconstruction))])
    return {name: {d: identify(images, truth, pool, d, exclude, min_pool) for d in DISTANCES}
            for name, (images, exclude) in candidates.items()}


def negative_control_pairs(keys: Sequence[tuple[int, int]]) -> list[int | None]:
    """For captures keyed (cell, batch size), in order: the index of the next capture of the same key
    (cyclically), whose reconstruction stands in as the attack on *other* images; None when alone."""
    partner: list[int | None] = []
    for i, key in enumerate(keys):
        same = [j for j, other in enumerate(keys) if other == key]
        partner.append(None if len(same) < 2 else same[(same.index(i) + 1) % len(same)])
    return partner


@dataclass
class IdentificationCell:
    """Pooled per-image identification outcomes of a table cell: name -> distance -> outcomes."""

    outcomes: dict[str, dict[str, list[bool]]] = field(default_factory=dict)

    def add(self, batch: dict[str, dict[str, list[bool]]]) -> None:
        """One batch's `score_batch` result (or the negative control's)."""
        for name, by_distance in batch.items():
            for distance, values in by_distance.items():
                self.outcomes.setdefault(name, {}).setdefault(distance, []).extend(values)

    def __add__(self, other: IdentificationCell) -> IdentificationCell:
        merged = IdentificationCell()
        merged.add(self.outcomes)
        merged.add(other.outcomes)
        return merged

    def summary(self) -> dict:
        """`identified` (primary distance) and `identified_by` (every distance) per attack/baseline."""
        by = {name: {d: wilson_share(sum(v), len(v)) for d, v in by_distance.items()}
              for name, by_distance in self.outcomes.items()}
        return {"primary_distance": PRIMARY,
                "identified": {name: stats[PRIMARY] for name, stats in by.items() if PRIMARY in stats},
                "identified_by": by}


Batch = tuple[int, torch.Tensor, torch.Tensor, ImageDataset]  # (round, reconstruction, labels, truth)


def identification_scores(batches: Sequence[Batch], data: ImageDataset, min_pool: int = MIN_POOL) -> dict:
    """scores.json's identification entries for a run's reconstructed batches (each: its round, the
    attack's images and estimated labels, the truth): `identified` per attack / baseline / negative
    control over all images (primary distance), `identification` with every distance,
    `identification_by_round` and `comparison_pool` (the smallest pool per class over the batches). Each
    batch's comparison pool is every image of `data` that is not one of its true images (exact-pixel
    fingerprint; `comparison_pool`). The negative control of a batch is the reconstruction of the next
    batch of the same round and size (the attack on other images). Skipped, with the reason, when a
    batch's pool has fewer than `min_pool` images of a truth class."""
    digests = fingerprints(data.images)
    masks = [pool_mask(digests, b[3]) for b in batches]  # one pool's images in memory at a time
    smallest: dict[int, int] = {}
    for mask, batch in zip(masks, batches, strict=True):
        for c, n in pool_sizes(data.labels[mask], batch[3].labels).items():
            smallest[c] = min(n, smallest.get(c, n))
    small = {c: n for c, n in smallest.items() if n < min_pool}
    if small:
        return {"identification": {"skipped": f"comparison pool per class {small} is below {min_pool}"}}
    pool_entry = {"rule": POOL_RULE, "min_per_class": min(smallest.values(), default=0),
                  "per_class_min": {str(c): n for c, n in sorted(smallest.items())}}
    partners = negative_control_pairs([(b[0], len(b[3])) for b in batches])
    cells: dict[int, IdentificationCell] = {}
    for number, ((round_number, images, labels, truth), mask, partner) in enumerate(
            zip(batches, masks, partners, strict=True)):
        pool = ImageDataset(data.images[mask], data.labels[mask])
        outcomes = score_batch(images, labels, truth, pool, seed=number, min_pool=min_pool)
        if partner is not None:
            outcomes[NEGATIVE_CONTROL] = {d: identify(batches[partner][1], truth, pool, d, min_pool=min_pool)
                                          for d in DISTANCES}
        cells.setdefault(round_number, IdentificationCell()).add(outcomes)
    total = sum(cells.values(), IdentificationCell()).summary()
    return {"identified": total["identified"], "comparison_pool": pool_entry,
            "identification": total | {"comparison_pool": pool_entry},
            "identification_by_round": {str(r): cell.summary() for r, cell in sorted(cells.items())}}
