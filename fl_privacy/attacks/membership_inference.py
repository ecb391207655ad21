"""Membership inference: one score per candidate record, higher = more likely a training member.

The auditor has query access to the target model (its logits; white-box weights are not needed by these
attacks), the candidate records (image + label) and population data disjoint from every candidate. It
never learns which candidates are members: that truth stays with the evaluation
(`fl_privacy.evaluation.membership`).

- metric attacks on the target's outputs: LOSS threshold (Yeom et al. 2018, score = -loss), confidence
  in the true class, and entropy / modified entropy (Song & Mittal 2021);
- shadow models (Shokri et al. 2017): models trained on halves of the population; a scikit-learn
  classifier learns "trained on it or not" from their outputs (probabilities, one-hot label, logit-scaled
  confidence) and scores the target's outputs;
- LiRA (Carlini et al. 2022): reference models give each candidate the distribution of its logit-scaled
  confidence when it was not trained on (offline: population-only reference models, score = one-sided
  z-score against that OUT Gaussian) or both distributions (online: reference models also train on a
  half of the candidates, score = log-likelihood ratio IN vs OUT);
- RMIA (Zarifzadeh et al. 2024), offline: the likelihood ratio of each candidate against population
  records z, Pr_z[(p(x|target)/p(x)) / (p(z|target)/p(z)) > gamma], with p(.) estimated from 1-4
  population-trained reference models (the same set as offline LiRA's).

Everything comes in one `AuditorView`; reference and shadow models are built and trained by the view's
`model_fn` and `trainer` (the lab's one training loop with the auditor's recipe).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from torch import nn
from torch.nn import functional as F

from fl_privacy.attacks.rmia_fit import fit_rmia_a
from fl_privacy.attacks.views import AuditorView, ModelFactory, Trainer
from fl_privacy.config.schema import MembershipSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.seeding import reference_model_seeds, reference_models_seed

log = logging.getLogger(__name__)


METRIC_ATTACKS = ("loss", "confidence", "entropy", "modified_entropy")
MODEL_ATTACKS = ("shadow", "lira_offline", "lira_online", "rmia")
ATTACKS = METRIC_ATTACKS + MODEL_ATTACKS


@dataclass(frozen=True)
class ReferenceModel:
    """A shadow/reference model and which population records (and candidates, online) it trained on."""

    model: nn.Module
    population_in: torch.Tensor
    candidates_in: torch.Tensor | None = None

    @property
    def trained_candidates(self) -> torch.Tensor:
        """`candidates_in` of an online reference model (one that also trained on candidates)."""
        if self.candidates_in is None:
            raise ValueError("this reference model trained on no candidates")
        return self.candidates_in


@torch.no_grad()
def model_logits(model: nn.Module, records: ImageDataset, batch_size: int = 1000) -> torch.Tensor:
    """The model's logits for every record (eval mode: no dropout)."""
    model.eval()
    return torch.cat([model(records.images[start:start + batch_size])
                      for start in range(0, len(records.labels), batch_size)])


def loss_score(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """LOSS attack (Yeom et al. 2018): minus the cross-entropy loss."""
    return (-F.cross_entropy(logits, labels, reduction="none")).numpy()


def confidence_score(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The softmax probability of the true class."""
    return logits.softmax(1).gather(1, labels[:, None])[:, 0].numpy()


def entropy_score(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Minus the prediction entropy (members get confident predictions); ignores the label."""
    del labels
    log_probs = logits.log_softmax(1)
    return (log_probs.exp() * log_probs).sum(1).numpy()


def modified_entropy_score(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Minus Song & Mittal's modified entropy -(1-p_y) log p_y - sum_{i!=y} p_i log(1-p_i)."""
    log_probs = logits.log_softmax(1)
    probs = log_probs.exp()
    log_complement = torch.log1p(-probs.clamp(max=1 - 1e-7))
    true = F.one_hot(labels, logits.shape[1]).bool()
    mentr = torch.where(true, -(1 - probs) * log_probs, -probs * log_complement).sum(1)
    return (-mentr).numpy()


METRIC_SCORES: dict[str, Callable[[torch.Tensor, torch.Tensor], np.ndarray]] = {
    "loss": loss_score, "confidence": confidence_score, "entropy": entropy_score,
    "modified_entropy": modified_entropy_score,
}


def scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's logit-scaled confidence log(p_y / (1 - p_y)), computed stably from the logits."""
    true = F.one_hot(labels, logits.shape[1]).bool()
    return logits[true] - logits.masked_fill(true, -math.inf).logsumexp(1)


def _halves(count: int, generator: torch.Generator) -> torch.Tensor:
    """A random half of `count` records (boolean mask)."""
    mask = torch.zeros(count, dtype=torch.bool)
    mask[torch.randperm(count, generator=generator)[:count // 2]] = True
    return mask


def train_reference_models(model_fn: ModelFactory, trainer: Trainer, population: ImageDataset,
                           count: int, seed: int, candidates: ImageDataset | None = None
                           ) -> list[ReferenceModel]:
    """`count` models, each trained on a random half of the population (and, given `candidates`, on a
    random half of them too). Models 2k and 2k+1 take complementary halves, so with an even count every
    record is trained on by exactly half of the models."""
    generator = torch.Generator().manual_seed(seed)
    models: list[ReferenceModel] = []
    for index in range(count):
        if index % 2 == 0:
            population_in = _halves(len(population.labels), generator)
            candidates_in = None if candidates is None else _halves(len(candidates.labels), generator)
        else:
            population_in = ~models[-1].population_in
            candidates_in = None if candidates is None else ~models[-1].trained_candidates
        parts, masks = [population], [population_in]
        if candidates is not None:
            assert candidates_in is not None  # drawn above whenever there are candidates
            parts.append(candidates)
            masks.append(candidates_in)
        init_seed, train_seed = reference_model_seeds(seed, index)
        model = model_fn(init_seed)
        trainer(model, ImageDataset.join(parts, masks), train_seed)
        models.append(ReferenceModel(model.eval(), population_in, candidates_in))
        log.info("reference model %d/%d trained on %d records", index + 1, count,
                 int(sum(m.sum() for m in masks)))
    return models


def shadow_features(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The attack classifier's input: softmax probabilities, the one-hot label and the scaled confidence."""
    one_hot = F.one_hot(labels, logits.shape[1]).float()
    confidence = scaled_confidence(logits, labels)[:, None]
    return torch.cat([logits.softmax(1), one_hot, confidence], 1).numpy()


def shadow_attack(model: nn.Module, candidates: ImageDataset, population: ImageDataset,
                  shadows: Sequence[ReferenceModel], seed: int = 0) -> np.ndarray:
    """Shokri et al.: learn in/out from the shadows' outputs on the population, score the target's."""
    features, trained = [], []
    for shadow in shadows:
        features.append(shadow_features(model_logits(shadow.model, population), population.labels))
        trained.append(shadow.population_in.numpy())
    classifier = HistGradientBoostingClassifier(max_iter=200, random_state=seed)
    classifier.fit(np.concatenate(features), np.concatenate(trained))
    target = shadow_features(model_logits(model, candidates), candidates.labels)
    return classifier.predict_proba(target)[:, 1]


def _gaussian_stats(values: torch.Tensor, weights: torch.Tensor, fixed_variance: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-candidate mean and std of `values` (models x candidates) over the models where `weights`=1."""
    counts = weights.sum(0)
    mean = (values * weights).sum(0) / counts
    squared = ((values - mean) ** 2 * weights)
    if fixed_variance:
        std = (squared.sum() / (counts.sum() - len(counts)).clamp(min=1)).sqrt().expand_as(mean)
    else:
        std = (squared.sum(0) / (counts - 1).clamp(min=1)).sqrt()
    return mean, std.clamp(min=1e-3)


def _reference_confidences(references: Sequence[ReferenceModel], candidates: ImageDataset
                           ) -> torch.Tensor:
    return torch.stack([scaled_confidence(model_logits(r.model, candidates), candidates.labels)
                        for r in references]).double()


def lira_offline(model: nn.Module, candidates: ImageDataset, references: Sequence[ReferenceModel],
                 fixed_variance: bool = True) -> np.ndarray:
    """Offline LiRA: how far above its OUT distribution (reference models never trained on it) the
    target's scaled confidence lies, as a z-score (monotone in Carlini et al.'s one-sided p-value)."""
    observed = scaled_confidence(model_logits(model, candidates), candidates.labels).double()
    values = _reference_confidences(references, candidates)
    mean, std = _gaussian_stats(values, torch.ones_like(values), fixed_variance)
    return ((observed - mean) / std).numpy()


def lira_online(model: nn.Module, candidates: ImageDataset, references: Sequence[ReferenceModel],
                fixed_variance: bool = True) -> np.ndarray:
    """Online LiRA: log N(obs; IN) - log N(obs; OUT) from reference models that did / did not train on
    each candidate (`candidates_in`, the attacker's own choice, not the target's membership)."""
    observed = scaled_confidence(model_logits(model, candidates), candidates.labels).double()
    values = _reference_confidences(references, candidates)
    trained = torch.stack([r.trained_candidates for r in references]).double()
    mean_in, std_in = _gaussian_stats(values, trained, fixed_variance)
    mean_out, std_out = _gaussian_stats(values, 1 - trained, fixed_variance)
    normal_in = torch.distributions.Normal(mean_in, std_in)
    normal_out = torch.distributions.Normal(mean_out, std_out)
    return (normal_in.log_prob(observed) - normal_out.log_prob(observed)).numpy()


def true_class_probability(model: nn.Module, records: ImageDataset) -> np.ndarray:
    """p(x|model): the softmax probability of each record's own label (float64)."""
    return confidence_score(model_logits(model, records), records.labels).astype(np.float64)


def rmia_offline(model: nn.Module, candidates: ImageDataset, population: ImageDataset,
                 references: Sequence[ReferenceModel], a: float = 0.3, gamma: float = 1.0) -> np.ndarray:
    """Offline RMIA (Zarifzadeh et al., ICML 2024, Algorithm 1 and Sec. 4 "offline"):
    score(x) = Pr_z[ LR(x) / LR(z) > gamma ] over population records z, LR(r) = p(r|target) / p(r).

    p(r) is the probability of r's label averaged over models trained on population-like data, half IN
    and half OUT for r. For a population record z our reference models are exactly that (each z is in
    half of the population halves), so p(z) = mean_ref p(z|ref). A candidate x is OUT for every reference
    model, so the paper's offline approximation of the missing IN half is applied:
    p(x) = ((1 + a) mean_ref p(x|ref) + (1 - a)) / 2 (a = 1: no correction; the paper's a is fitted on
    the auditor's own reference models, default 0.3 here). Written out because neither scikit-learn nor
    Opacus has it (Privacy Meter and LeakPro do, as whole frameworks)."""
    if not references:
        raise ValueError("RMIA needs at least one reference model")

    def mean_reference(records: ImageDataset) -> np.ndarray:
        return np.mean([true_class_probability(r.model, records) for r in references], axis=0)

    p_x = ((1 + a) * mean_reference(candidates) + (1 - a)) / 2
    ratio_x = true_class_probability(model, candidates) / p_x
    ratio_z = true_class_probability(model, population) / np.maximum(mean_reference(population), 1e-30)
    # sorted population ratios: how many z have ratio_z < ratio_x / gamma, per candidate
    return np.searchsorted(np.sort(ratio_z), ratio_x / gamma, side="left") / len(ratio_z)


def membership_scores(view: AuditorView, settings: MembershipSettings) -> dict[str, np.ndarray]:
    """Every configured attack's scores for the candidates (attack name -> one score per candidate).

    Shadow models and offline reference models are the same kind of model (a random half of the
    population), so they are trained once: the first `num_shadow` serve the shadow attack, the first
    `num_reference` offline LiRA, the first `rmia.num_reference` RMIA. Online LiRA trains its own
    `num_reference` models.
    """
    model, candidates, population = view.target, view.candidates, view.population
    model_fn, trainer = view.model_fn, view.trainer
    scores: dict[str, np.ndarray] = {}
    logits = model_logits(model, candidates)
    for name in settings.attacks:
        if name in METRIC_SCORES:
            scores[name] = METRIC_SCORES[name](logits, candidates.labels)
    wanted = {"shadow": settings.num_shadow, "lira_offline": settings.num_reference,
              "rmia": settings.rmia.num_reference}
    count = max([wanted[name] for name in settings.attacks if name in wanted], default=0)
    population_models = train_reference_models(model_fn, trainer, population, count,
                                               reference_models_seed(settings.seed, online=False))
    if "shadow" in settings.attacks:
        scores["shadow"] = shadow_attack(model, candidates, population,
                                         population_models[:settings.num_shadow], settings.seed)
    if "lira_offline" in settings.attacks:
        scores["lira_offline"] = lira_offline(model, candidates, population_models[:settings.num_reference],
                                              settings.fixed_variance)
    if "rmia" in settings.attacks:
        rmia = settings.rmia
        a = rmia.a
        if rmia.fit_a:
            a, aucs = fit_rmia_a(population, population_models[:rmia.num_reference], rmia_offline, rmia.gamma)
            log.info("RMIA: a fitted on the reference models = %.1f (AUC per a: %s)", a,
                     ", ".join(f"{k:.1f}: {v:.3f}" for k, v in aucs.items()))
        scores["rmia"] = rmia_offline(model, candidates, population,
                                      population_models[:rmia.num_reference], a, rmia.gamma)
    if "lira_online" in settings.attacks:
        online = train_reference_models(model_fn, trainer, population, settings.num_reference,
                                        reference_models_seed(settings.seed, online=True), candidates)
        scores["lira_online"] = lira_online(model, candidates, online, settings.fixed_variance)
    return {name: scores[name] for name in settings.attacks}
