"""The experiment schema: every key's type, range, default and meaning, declared once.

`conf/` YAML files state only what an option or preset changes; the defaults come from here (registered
with Hydra's ConfigStore by `fl_privacy.config.store`). After Hydra composes a run, `Settings` validates
the whole tree (unknown keys included) and becomes the typed, frozen settings object that everything
below the entry point and the lab receives. Rules that tie several keys together live in
`fl_privacy.config.rules`.

Choices are `Literal`s here; the code's registries (data sets, roles, attacks, ...) are tested to cover
exactly these names (tests/test_config.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

StrictInt = Annotated[int, Field(strict=True)]
Count = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, lt=1)]  # [0, 1)
Probability = Annotated[float, Field(ge=0, le=1)]
OpenProbability = Annotated[float, Field(gt=0, lt=1)]
Port = Annotated[int, Field(strict=True, ge=1024, le=65535)]

Optimizer = Literal["sgd", "adam"]
Role = Literal["honest", "gan_adversary", "dp", "canary"]
UpdateMode = Literal["fedavg", "fedsgd"]
DpAccountant = Literal["rdp", "pld"]
MembershipAttack = Literal["loss", "confidence", "entropy", "modified_entropy", "shadow", "lira_offline",
                           "lira_online", "rmia"]


class Section(BaseModel):
    """A config node: frozen once validated, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- data and the federation ------------------------------------------------------------------------
class CanarySettings(Section):
    """Canaries for the empirical DP audit: `count` records drawn out of the clients' pool, each put into
    partition `partition`'s data with probability ½ (the draw is the lab's truth)."""

    count: NonNegativeInt = Field(0, description="number of canaries m (0 = none)")
    kind: Literal["mislabelled", "ood", "dirac"] = Field(
        "mislabelled", description="mislabelled: real images with a wrong label; ood: uniform-noise images "
        "with random labels; dirac: gradient-space canaries on an unused parameter of the partition's "
        "DP-SGD, observed white-box at every step (defenses/gradient_canaries.py)")
    partition: NonNegativeInt = Field(0, description="the client whose data may hold the canaries")


class RecordSplitSettings(Section):
    """Records of `classes` split, before partitioning, into members (left in the clients' pool) and an
    equally drawn held-out set no client, warm-up or oracle ever trains on (the record-level GAN test)."""

    classes: list[NonNegativeInt] = Field(default_factory=list, description="classes split; [] = none")
    fraction: OpenProbability = Field(0.5, description="share of those classes' client pool held out")


class DataSettings(Section):
    name: Literal["mnist_offline", "lfw_offline", "skimage_photos", "mnist", "fashion_mnist", "cifar10",
                  "olivetti", "image_folder", "npz"] = "mnist_offline"
    root: str | None = Field(None, description="folder of the torchvision data sets and olivetti; "
                             "image_folder: the folder of class subfolders; npz: the .npz file "
                             "(must be null for the embedded sets)")
    download: bool = Field(False, description="torchvision data sets, olivetti: fetch once (needs internet)")
    test_fraction: OpenProbability = Field(
        0.2, description="share of each class held out as the central test split (offline sets; "
        "torchvision sets come with their own)")
    exclude_classes: list[NonNegativeInt] = Field(
        default_factory=list, description="classes removed from every training source (clients and warm-up)")
    holdout_fraction: Share = Field(
        0.0, description="share of the clients' pool (after warm-up) held out of every client, "
        "class-stratified: the membership auditor's non-members and population; 0 = none")
    canaries: CanarySettings = Field(CanarySettings(),
                                     description="the DP audit's canaries (attack.dp_audit)")
    size: Count = Field(32, description="skimage_photos: side of the square crops")
    crops_per_photo: Count = Field(40, description="skimage_photos: crops drawn per photo")
    resize: Count | None = Field(None, description="image_folder: resize every image to resize x resize "
                                 "(null: all images must share one size)")
    warmup_exclude_classes: list[NonNegativeInt] = Field(
        default_factory=list, description="classes kept out of the server's warm-up only (clients keep them)")
    client_exclude_classes: list[NonNegativeInt] = Field(
        default_factory=list, description="classes kept out of every client only (the warm-up keeps them)")
    record_split: RecordSplitSettings = Field(
        RecordSplitSettings(), description="the GAN record-level test's members and non-members")


class PartitionSettings(Section):
    name: Literal["one_class", "dirichlet", "iid", "fds_iid", "fds_dirichlet", "fds_pathological"] = Field(
        "one_class",
        description="fds_*: Flower Datasets' partitioners (pip install 'fl-privacy[partitioners]')")
    alpha: Positive = Field(0.5, description="dirichlet, fds_dirichlet: concentration (small = strongly "
                            "non-IID)")
    min_size: Count = Field(10, description="dirichlet, fds_dirichlet: redraw until every client holds this "
                            "many examples")
    classes_per_client: Count = Field(2, description="fds_pathological: classes each client holds")


class ModelSettings(Section):
    """The model every party builds. `_target_` names your own factory instead of `name`: any other key
    of the section is passed to it as a keyword argument (docs/configuration.md: bring your own model)."""

    model_config = ConfigDict(frozen=True, extra="allow", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    target: str | None = Field(
        None, alias="_target_",
        description="pkg.module.Factory: your own nn.Module class or function, called as "
        "Factory(image_shape=(C, H, W), num_classes=K, **the section's other keys); null = model.name")
    name: Literal["cnn", "lenet"] = "cnn"
    num_outputs: Annotated[int, Field(strict=True, ge=2)] | None = Field(
        None, description="output classes; null = the data set's (a GAN adversary adds a 'fake' class)")
    norm: Literal["none", "group"] = Field("none", description="group: GroupNorm (Opacus-compatible)")
    dropout: Share = 0.3
    init: Literal["default", "dlg"] = Field(
        "default", description="dlg: every parameter uniform in [-0.5, 0.5] (the DLG paper's code)")
    imprint_bins: NonNegativeInt = Field(
        0, description="units of an imprint block in front of the model, crafted by a malicious capturing "
                       "server (Fowl et al. 2022); 0 = none")


# --- training ---------------------------------------------------------------------------------------
class WarmupSettings(Section):
    fraction: Share = Field(0.05, description="share of the training data the server holds for warm-up")
    epochs: NonNegativeInt = 10
    lr: Positive = 0.001
    batch_size: Count = 32
    optimizer: Optimizer = "adam"


class CaptureSettings(Section):
    rounds: list[Count] = Field(default_factory=lambda: [1], min_length=1,
                                description="rounds whose client updates the capturing server saves")
    partitions: list[NonNegativeInt] | None = Field(None, description="partition ids to capture; null = all")
    update_mode: UpdateMode | None = Field(
        None, description="asked of every client in captured rounds (null = client.update_mode)")
    batch_size: Count | None = Field(None, description="asked in captured rounds (null = client.batch_size)")
    examples: Count | None = Field(
        None, description="examples each client uses in captured rounds (FedSGD: its one batch; FedAvg: its "
        "local data, in mini-batches of batch_size); null = batch_size / client.examples_per_round")


class StrategySettings(Section):
    name: Literal["fedavg_warmup", "gradient_capture"] = "fedavg_warmup"
    num_rounds: Count = 30
    fraction_train: Annotated[float, Field(gt=0, le=1)] = 1.0
    fraction_evaluate: Probability = Field(0.0,
                                          description="clients that evaluate on their classes (0 = skip)")
    min_train_replies: NonNegativeInt = Field(
        1, description="a round with fewer successful train replies stops the run as failed")
    warmup: WarmupSettings = WarmupSettings()
    capture: CaptureSettings = Field(CaptureSettings(), description="strategy=gradient_capture only")


class ClientSettings(Section):
    role: Role = "honest"
    roles: dict[StrictInt, Role] = Field(default_factory=dict, description="partition id -> role")
    local_epochs: Count = 1
    batch_size: Count = 64
    optimizer: Optimizer = "sgd"
    lr: Positive = 0.1
    momentum: NonNegative = 0.0
    weight_decay: NonNegative = 0.0
    max_grad_norm: Positive | None = Field(None, description="clip each local step's gradient (null = off)")
    update_mode: UpdateMode = Field(
        "fedavg", description="fedsgd: return one batch's mean gradient (needs strategy=gradient_capture)")
    examples_per_round: Count | None = Field(
        None, description="FedAvg: train on this many examples of the partition per round (null = all)")


# --- defenses ---------------------------------------------------------------------------------------
class NoiseDecaySettings(Section):
    schedule: Literal["constant", "time", "step", "exp"] = "constant"
    rate: Share = 0.0


class AdaptiveClippingSettings(Section):
    """Clipping bound that tracks a quantile of per-sample gradient norms (Andrew et al. 2021).

    Each step the (noised) share b̃ of unclipped samples moves the bound C toward `target_quantile`:
    geometric C ← C·exp(−η(b̃ − γ)) (Andrew et al., Opacus) or linear C ← C − η(b̃ − γ) (MindArmour).
    The count is noised with std `count_noise`; the gradient noise is raised so the pair of releases
    costs exactly the configured σ (Andrew et al., Theorem 1), so accounting is unchanged.
    """

    enabled: bool = False
    target_quantile: Probability = 0.5
    learning_rate: Positive = 0.2
    rule: Literal["geometric", "linear"] = "geometric"
    count_noise: Positive = Field(10.0, description="noise std on the unclipped count (> noise_multiplier/2)")
    min_norm: Positive = 0.01
    max_norm: Positive = 100.0


class LocalDpSettings(Section):
    """Local DP-SGD (Opacus) of every client whose role is `dp`."""

    noise_multiplier: NonNegative = 1.0
    target_epsilon: Annotated[float, Field(gt=0)] | None = Field(
        None, description="calibrate σ₀ so the whole run spends this ε at delta (inf = clipping only)")
    delta: OpenProbability = 1.0e-5
    max_grad_norm: Positive = 1.0
    noise_decay: NoiseDecaySettings = NoiseDecaySettings()
    adaptive_clipping: AdaptiveClippingSettings = AdaptiveClippingSettings()
    accountant: DpAccountant = Field(
        "rdp", description="rdp: Opacus's RDP accountant; pld: dp-accounting's tighter PLD accountant "
        "(constant noise only)")
    max_epsilon: Annotated[float, Field(gt=0)] | None = Field(
        None, description="budget: a client stops training before a round would take its ε past this "
        "(null = no budget)")
    report_train_metrics: bool = Field(
        False, description="LAB-ONLY LEAK: dp clients also report train loss/accuracy computed on their "
        "private data, outside any ε (off: they report nothing computed on private data)")
    fault_noise_factor: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="LAB-ONLY FAULT, the DP audit's positive control: DP-SGD adds noise σ × this while "
        "the accountant and the reported ε assume σ (1 = correct DP)")


class CentralDpSettings(Section):
    """Server-side clipping + Gaussian noise on the sum of the sampled clients' updates, divided by
    their expected number (a fixed denominator: sensitivity exactly clipping_norm / n)."""

    enabled: bool = False
    noise_multiplier: NonNegative = 1.0
    clipping_norm: Positive = 1.0
    delta: OpenProbability = 1.0e-5
    accountant: DpAccountant = Field("rdp", description="rdp (Opacus RDP) or pld (dp-accounting PLD)")
    max_epsilon: Annotated[float, Field(gt=0)] | None = Field(
        None, description="budget: no round is trained once its release would take ε past this "
        "(null = no budget)")


class PruningSettings(Section):
    fraction: Share = Field(0.0, description="zero this share of the smallest entries of every update tensor")


class SuppressSettings(Section):
    enabled: bool = False
    layers: list[str] = Field(default_factory=list,
                              description="parameter names (empty = every weight tensor)")
    start_round: NonNegativeInt = 1
    rounds: Count = 10
    start_sparsity: Share = 0.0
    end_sparsity: Share = 0.5


class ParGanExperimentSettings(Section):
    """The PAR-GAN membership experiment (kind=par_gan): one generator, k discriminators."""

    members: Count = 300
    discriminators: list[Count] = Field(default_factory=lambda: [1, 5], min_length=1)
    steps: Count = 1500
    passes: Count | None = Field(
        None, description="instead of `steps`: train each k until every record had this many discriminator "
        "views (the authors' epochs; steps = passes x records per discriminator / (discriminator_steps x "
        "its batch), so a larger k takes fewer, costlier steps)")
    batch_size: Count = 30
    latent_dim: Count = 100
    generator_lr: Positive = 0.0002
    discriminator_lr: Positive = 0.0002
    discriminator_dropout: Share = 0.0
    batch_per_discriminator: bool = Field(
        False, description="batch_size real records for each discriminator (the authors' code) instead of "
        "batch_size in total split over the k discriminators")
    discriminator_steps: Count = Field(1, description="discriminator steps per generator step")
    samples: Annotated[int, Field(strict=True, ge=2)] = 1000
    neighbours: Count = 1
    monte_carlo_samples: Annotated[int, Field(strict=True, ge=0)] = Field(
        0, description="generator-only Monte-Carlo epsilon-ball attack over this many samples (0 = off)")
    monte_carlo_quantile: OpenProbability = Field(
        0.001, description="Monte-Carlo attack: epsilon = this quantile of all candidate-to-sample distances")
    torch_threads: Count = 1
    log_every: NonNegativeInt = 250
    quality_checkpoints: list[Count] = Field(
        default_factory=list, description="generator steps at which the generator is also attacked and its "
        "Fréchet distance measured (par_gan_quality_curves.json): the leak-vs-quality curve on which "
        "fl-privacy par-gan-table compares k at matched sample quality")


class DefenseSettings(Section):
    dp: LocalDpSettings = LocalDpSettings()
    central_dp: CentralDpSettings = CentralDpSettings()
    pruning: PruningSettings = PruningSettings()
    suppress: SuppressSettings = SuppressSettings()
    secure_aggregation: bool = Field(False, description="the capturing server sees only the aggregate")
    par_gan: ParGanExperimentSettings = ParGanExperimentSettings()


def _as_list(value: Any) -> Any:
    """A scalar setting that may also be given as a list: the scalar as a one-item list."""
    return value if isinstance(value, list | tuple) else [value]


# --- attackers --------------------------------------------------------------------------------------
class DummyInitSettings(Section):
    distribution: Literal["uniform", "normal"] = "uniform"
    center: float = 0.5
    spread: float = 0.5


class GradientInversionSettings(Section):
    """The honest-but-curious server's gradient inversion on captured updates."""

    name: str = Field("dlg", description="a gradient-inversion attack registered with "
                      "`@inversion_attack` in fl_privacy/attacks/ (dlg, inverting, fedavg, labels, imprint, "
                      "best, ...; checked against the registry before the run)")
    after_run: bool = Field(False, description="attack and score the captures at the end of the run")
    label_mode: Literal["restore", "optimise"] = "restore"
    optimizer: Literal["lbfgs", "adam"] = Field("lbfgs", description="fedavg only")
    iterations: Count = 300
    inner_iterations: Count = 20
    lr: Positive = 1.0
    tv_weight: Annotated[list[NonNegative], BeforeValidator(_as_list), Field(min_length=1)] = Field(
        [1.0e-4], description="Adam attacks' TV weight, or a list of them: `restarts` restarts at each "
        "weight and the lowest matching loss wins per capture (the attacker's choice: no truth)")
    restarts: Count = 1
    init: DummyInitSettings = DummyInitSettings()
    bound: Literal["clamp", "sigmoid"] = "clamp"
    seed: NonNegativeInt = 0
    torch_threads: Count = 1
    max_captures: Count | None = None
    best_dlg_iterations: Count = Field(20, description="name=best: outer L-BFGS steps (lr 1) of its DLG "
                                       "candidate; Inverting Gradients uses iterations, lr, restarts")
    max_images_per_round: Count | None = Field(
        None, description="attack each round's captures in partition order until they hold this many images "
        "(null = all)")
    label_estimator: Literal["counts", "bias_corrected"] = Field(
        "counts", description="labels of a batch for inverting/best/fedavg/labels: mean-feature counts or "
        "breaching's bias-corrected counts (iDLG for one example either way)")
    early_stop_patience: Count | None = Field(
        None, description="Adam attacks: stop a restart when its matching loss has not improved by "
        "early_stop_tolerance (relative) for this many iterations (null = run the whole budget)")
    early_stop_tolerance: Probability = 1.0e-3
    engine: Literal["auto", "loop", "batched"] = Field(
        "auto", description="name=inverting: one capture at a time (loop), or all gradient captures of a "
        "round as one batched problem (batched: torch.func.vmap, on `device`); auto = batched when `device` "
        "is CUDA (and name=inverting, bound=clamp), else the loop, which is faster on a CPU")


class GanAttackSettings(Section):
    """The insider GAN attack of Hitaj et al. (2017), used by every `gan_adversary` node."""

    victim_class: NonNegativeInt = 3
    latent_dim: Count = 100
    start_round: Count = 1
    start_accuracy: Probability | None = 0.85
    generator_steps: Count = 100
    generator_batch_size: Count = Field(32, description="latent vectors per generator step (64 before "
                                        "the main job was sped up; see docs/gan_attack.md)")
    generator_lr: Positive = 0.0002
    tv_weight: NonNegative = 1.0
    diversity_weight: NonNegative = 0.5
    num_fakes: Count = 500
    fake_pool: Literal["replace", "accumulate"] = "replace"
    max_fakes: Count = 2000
    alternations: Count = 1
    max_grad_norm: Positive | None = 5.0
    inject_fakes: bool = Field(True, description="false = passive: train the generator against the "
                               "received model but train the local update on own data only")


class ReferenceTrainingSettings(Section):
    recipe: Literal["central", "federated"] = Field(
        "central", description="central: epochs/batch_size/lr/optimizer below on the reference model's "
        "records; federated: the target's recipe (simulation.num_clients clients partitioned by `partition`, "
        "strategy.num_rounds FedAvg rounds of the client.* local training), simulated in-process")
    epochs: Count = 10
    batch_size: Count = 64
    lr: Positive = 0.1
    optimizer: Optimizer = "sgd"


class RmiaSettings(Section):
    """Offline RMIA (Zarifzadeh et al., ICML 2024) over the population-trained reference models."""

    num_reference: Count = Field(2, description="reference models used (the first of the offline set; "
                                 "the paper's low-cost regime is 1-4)")
    a: Probability = Field(0.3, description="offline scaling: p(x) ~ ((1+a) mean_OUT p(x|ref) + (1-a)) / 2")
    fit_a: bool = Field(False, description="fit a on the auditor's reference models as Privacy Meter does "
                        "(attack reference model 0 with the others; needs num_reference >= 3); a is then "
                        "the fitted value, not the one above")
    gamma: Positive = Field(1.0, description="a population record z is dominated when LR(x) / LR(z) > gamma")


class UpdateAttackSettings(Section):
    """The honest-but-curious server's per-round membership attack on one client's captured updates."""

    after_run: bool = Field(False, description="attack every captured update of "
                            "attack.membership.target_partition at the end of the run")
    non_members: Count = Field(500, description="non-members drawn from the auditor's pool, "
                               "class-stratified like the client's records (all of which are members)")


def _every_membership_attack() -> list[MembershipAttack]:
    return ["loss", "confidence", "entropy", "modified_entropy", "shadow", "lira_offline", "lira_online",
            "rmia"]


class MembershipSettings(Section):
    """The membership-inference auditor."""

    after_run: bool = False
    target: Literal["client", "all"] = "client"
    target_partition: NonNegativeInt = 0
    target_model: Literal["global", "client"] = "global"
    attacks: list[MembershipAttack] = Field(default_factory=_every_membership_attack, min_length=1)
    num_shadow: Count = 4
    num_reference: Count = 4
    fixed_variance: bool = True
    rmia: RmiaSettings = RmiaSettings()
    training: ReferenceTrainingSettings = ReferenceTrainingSettings()
    non_members: Count | None = Field(
        None, description="non-members drawn class-stratified like the members (all members kept); "
        "null = one per member, class by class")
    population_size: Count | None = Field(
        None, description="use at most this many population records (a random draw); null = all")
    bootstrap: Annotated[int, Field(strict=True, ge=0)] = Field(
        1000, description="stratified bootstrap resamples for the CIs of AUC and TPR@FPR (0 = none)")
    update_attack: UpdateAttackSettings = UpdateAttackSettings()
    seed: NonNegativeInt = 0
    torch_threads: Count = 1


class DpAuditSettings(Section):
    """The empirical DP audit: score every canary (`data.canaries`) against the final global model and
    turn the guesses into an ε lower bound (one-run auditing, Steinke, Nasr & Jagielski 2023)."""

    after_run: bool = False
    attack: Literal["loss", "confidence"] = Field("loss", description="the membership score of a canary")
    confidence: OpenProbability = Field(0.95, description="the lower bound holds with this probability")
    guesses: list[Count] = Field(
        default_factory=lambda: [10, 20, 50, 100, 200], min_length=1,
        description="k: guess 'in' for the k top- and 'out' for the k bottom-scored canaries; the bound "
        "is the best over these k with a Bonferroni correction")


class DpAuditFlSettings(Section):
    """The federated one-shot audit (Andrew et al., ICLR 2024): the last `canary_clients` partitions are
    canary clients whose every update is one fixed random unit direction (× the central clipping norm);
    after the run, the cosines of the final model delta with each inserted canary and with
    `fresh_canaries` never-inserted directions give an ε estimate (Gaussian fit) beside the accounted ε."""

    after_run: bool = False
    canary_clients: NonNegativeInt = Field(
        0, description="the last this many of simulation.num_clients are canary clients (0 = none)")
    fresh_canaries: Annotated[int, Field(strict=True, ge=2)] = Field(
        1000, description="random directions never inserted: the null distribution of the cosines")


class RepresentationInversionSettings(Section):
    """Inversion of the final model's activations of unseen images, layer by layer."""

    after_run: bool = False
    layers: list[str] = Field(default_factory=lambda: ["body.2", "body.6", "head"], min_length=1)
    images: Count = 8
    split: Literal["train", "test"] = "test"
    iterations: Count = 500
    optimizer: Literal["adam", "lbfgs"] = "adam"
    lr: Positive = 0.05
    tv_weight: NonNegative = 0.05
    l2_weight: NonNegative = 0.0
    seed: NonNegativeInt = 0
    torch_threads: Count = 2


class AttackSettings(Section):
    """One node per attacker."""

    gradient_inversion: GradientInversionSettings = GradientInversionSettings()
    gan: GanAttackSettings = GanAttackSettings()
    membership: MembershipSettings = MembershipSettings()
    dp_audit: DpAuditSettings = DpAuditSettings()
    dp_audit_fl: DpAuditFlSettings = DpAuditFlSettings()
    representation_inversion: RepresentationInversionSettings = RepresentationInversionSettings()


# --- evaluation and the simulation ------------------------------------------------------------------
class OracleSettings(Section):
    """The independent classifier that judges generated images (trained on the test split only)."""

    epochs: Count = 20
    batch_size: Count = 32
    lr: Positive = 0.001
    components: Annotated[int, Field(strict=True, ge=2)] = Field(
        32, description="feature space for Fréchet distances: top principal components")
    samples_per_round: Annotated[int, Field(strict=True, ge=2)] = 500
    cache_dir: str = "~/.cache/fl-privacy/oracle"
    save_generators: bool = Field(False, description="keep the adversary's generator of every attack round "
                                  "(gan/generators/) for the post-run GAN evaluation")
    evaluate_rounds: list[Count] | None = Field(None, description="fl-privacy gan-eval: the attack rounds "
                                                "to score (null = every kept generator)")
    judge_seed: NonNegativeInt = Field(
        20_261_207, description="fl-privacy gan-eval: seed of the two judges' training split and training, "
        "independent of the run seeds, so that every arm and seed is scored by the same instrument")
    monitor_judge: bool = Field(
        True, description="the in-run GAN monitor scores with the shared primary judge (trained once from "
        "judge_seed); false: an oracle trained per run seed on the run's test split (the regression pin's)")
    planted_fraction: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.0, description="fl-privacy gan-eval positive control: share of each round's samples replaced by "
        "near-copies of the victim's member records (0 = none)")


class EvaluationSettings(Section):
    oracle: OracleSettings = OracleSettings()


class ClientResources(Section):
    num_cpus: Positive = 1.0
    num_gpus: NonNegative | None = Field(
        None, description="GPU share per client actor; null = none on CPU, on CUDA an equal share of one GPU")


class SimulationSettings(Section):
    num_clients: Count = 10
    client_resources: ClientResources = ClientResources()
    ray_address: str | None = Field(None, description="HOST:PORT or auto to join a cluster; null = local Ray")
    num_cpus: Count | None = Field(None, description="CPUs a local Ray may use (null = all)")
    dashboard: bool = False
    dashboard_port: Port = 8265
    torch_threads_per_client: Count = 1
    reuse_ray: bool = Field(True, description="in a multirun, keep Ray and its client actors from one job "
                            "to the next (false: each job starts and stops its own)")


class LogSettings(Section):
    level: Literal["info", "debug"] = Field(
        "info", description="info: a line per round on the terminal, the detail in run.log; debug: all of it")


class FederationSettings(Section):
    """What decides who holds which records: the section `data.federation.build_federation` receives
    (derived from `Settings`, not a config group)."""

    seed: NonNegativeInt
    data: DataSettings
    partition: PartitionSettings
    num_clients: Count
    warmup_fraction: Share


class Settings(Section):
    """A whole experiment."""

    seed: NonNegativeInt = 0
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the federation trains and evaluates (not the post-run attacks): "
        "auto = CUDA when present, else CPU")
    kind: Literal["federated", "par_gan"] = Field(
        "federated", description="federated: a Flower simulation; par_gan: the in-process PAR-GAN program")
    telemetry: bool = Field(False, description="opt in to Flower's and Ray's usage telemetry")
    save_model: bool = Field(True, description="save the final global model as final_model.pt")
    checkpoint_every: NonNegativeInt = Field(
        5, description="save a resumable checkpoint every N rounds (0 = never)")
    resume: bool = Field(False, description="continue the unfinished run in the run directory from its "
                         "last checkpoint (same settings)")
    overwrite: bool = Field(False, description="replace an earlier run in the run directory")
    tracking: Literal["none", "tensorboard", "mlflow"] = Field(
        "none", description="also log each round's numbers and the run's image grids for TensorBoard or "
        "MLflow, in the run directory (pip install 'fl-privacy[tracking]')")
    data: DataSettings = DataSettings()
    partition: PartitionSettings = PartitionSettings()
    model: ModelSettings = ModelSettings()
    strategy: StrategySettings = StrategySettings()
    client: ClientSettings = ClientSettings()
    defense: DefenseSettings = DefenseSettings()
    attack: AttackSettings = AttackSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    simulation: SimulationSettings = SimulationSettings()
    log: LogSettings = LogSettings()

    @property
    def federation(self) -> FederationSettings:
        """The federation's own section: data, partition, number of clients, warm-up share, seed."""
        return FederationSettings(seed=self.seed, data=self.data, partition=self.partition,
                                  num_clients=self.simulation.num_clients,
                                  warmup_fraction=self.strategy.warmup.fraction)
