"""Validate a composed experiment config before anything heavy starts.

Every check raises `ConfigError` naming the key, its value and what is allowed, so a bad run
ends with one line and a non-zero exit before data loading or Ray.
"""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig, OmegaConf

from fl_privacy.attacks.dispatch import ATTACKS, OPTIMIZERS
from fl_privacy.attacks.gan import FAKE_POOLS
from fl_privacy.attacks.membership import ATTACKS as MIA_ATTACKS
from fl_privacy.clients import FAKE_CLASS_ROLES, ROLES
from fl_privacy.clients.roles import UPDATES
from fl_privacy.data.audit import TARGETS as MIA_TARGETS
from fl_privacy.data.datasets import DATASETS
from fl_privacy.data.partition import PARTITIONERS
from fl_privacy.defenses.dp_sgd import CLIP_RULES, check_opacus_compatible
from fl_privacy.defenses.noise_schedules import NOISE_SCHEDULES
from fl_privacy.errors import ConfigError
from fl_privacy.models import INITS, MODELS, NORMS, build_model
from fl_privacy.training import OPTIMIZERS as TRAIN_OPTIMIZERS
from strategies import STRATEGIES

# Ray's dashboard imports these (they come with `ray[default]`); without them it hangs.
DASHBOARD_MODULES = ("aiohttp", "aiohttp_cors", "opencensus", "prometheus_client")


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(key, value, f"allowed: {', '.join(sorted(map(str, allowed)))}")


def _integer(key: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"must be an integer >= {minimum}")


def _number(key: str, value, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(key, value, f"must be a number in {interval}")


def _positive(key: str, value) -> None:
    _number(key, value, 0, float("inf"), low_open=True, high_open=True)


def _check_training(prefix: str, node, epochs_key: str) -> None:
    _integer(f"{prefix}.{epochs_key}", node[epochs_key], 0)
    _integer(f"{prefix}.batch_size", node.batch_size, 1)
    _positive(f"{prefix}.lr", node.lr)
    _choice(f"{prefix}.optimizer", node.optimizer, TRAIN_OPTIMIZERS)
    if node.get("max_grad_norm") is not None:
        _positive(f"{prefix}.max_grad_norm", node.max_grad_norm)


def _check_data(cfg: DictConfig) -> None:
    _choice("data.name", cfg.data.name, DATASETS)
    _number("data.test_fraction", cfg.data.test_fraction, 0, 1, low_open=True, high_open=True)
    for cls in cfg.data.exclude_classes:
        _integer("data.exclude_classes", cls, 0)


def _check_partition(cfg: DictConfig) -> None:
    _choice("partition.name", cfg.partition.name, PARTITIONERS)
    if cfg.partition.name == "dirichlet":
        _positive("partition.alpha", cfg.partition.alpha)
        _integer("partition.min_size", cfg.partition.min_size, 1)


def _check_model(cfg: DictConfig) -> None:
    _choice("model.name", cfg.model.name, MODELS)
    _choice("model.norm", cfg.model.norm, NORMS)
    if cfg.model.num_outputs is not None:
        _integer("model.num_outputs", cfg.model.num_outputs, 2)
    _number("model.dropout", cfg.model.dropout, 0, 1, low_open=False, high_open=True)
    _choice("model.init", cfg.model.get("init", "default"), INITS)


def _integers(key: str, values, minimum: int, maximum: int) -> None:
    if not OmegaConf.is_list(values) or not values:
        raise ConfigError(key, values, f"must be a non-empty list of integers in {minimum}..{maximum}")
    for value in values:
        _integer(key, value, minimum)
        if value > maximum:
            raise ConfigError(key, list(values), f"entries must be integers in {minimum}..{maximum}")


def _check_capture(cfg: DictConfig) -> None:
    capture = cfg.strategy.capture
    _integers("strategy.capture.rounds", capture.rounds, 1, cfg.strategy.num_rounds)
    if capture.partitions is not None:
        _integers("strategy.capture.partitions", capture.partitions, 0, cfg.simulation.num_clients - 1)
    if capture.update_mode is not None:
        _choice("strategy.capture.update_mode", capture.update_mode, UPDATES)
    if capture.batch_size is not None:
        _integer("strategy.capture.batch_size", capture.batch_size, 1)


def _check_strategy(cfg: DictConfig) -> None:
    strategy = cfg.strategy
    _choice("strategy.name", strategy.name, STRATEGIES)
    _integer("strategy.num_rounds", strategy.num_rounds, 1)
    _number("strategy.fraction_train", strategy.fraction_train, 0, 1, low_open=True, high_open=False)
    _number("strategy.fraction_evaluate", strategy.fraction_evaluate, 0, 1,
            low_open=False, high_open=False)
    _number("strategy.warmup.fraction", strategy.warmup.fraction, 0, 1,
            low_open=False, high_open=True)
    _check_training("strategy.warmup", strategy.warmup, "epochs")
    if strategy.name == "gradient_capture":
        _check_capture(cfg)


def _check_clients(cfg: DictConfig) -> None:
    num_clients = cfg.simulation.num_clients
    _integer("simulation.num_clients", num_clients, 1)
    _choice("client.role", cfg.client.role, ROLES)
    roles = cfg.client.roles or {}
    if len(roles) > num_clients:
        raise ConfigError("client.roles", dict(roles),
                          f"assigns {len(roles)} roles but simulation.num_clients={num_clients}")
    for key, role in roles.items():
        _choice(f"client.roles.{key}", role, ROLES)
        try:
            partition = int(key)
        except ValueError:
            partition = -1
        if not 0 <= partition < num_clients:
            raise ConfigError(f"client.roles.{key}", role,
                              f"keys are partition ids 0..{num_clients - 1} "
                              f"(simulation.num_clients={num_clients})")
    _check_training("client", cfg.client, "local_epochs")
    _choice("client.update_mode", cfg.client.update_mode, UPDATES)
    if cfg.client.examples_per_round is not None:
        _integer("client.examples_per_round", cfg.client.examples_per_round, 1)
    if cfg.client.update_mode == "fedsgd" and cfg.strategy.name != "gradient_capture":
        raise ConfigError("client.update_mode", "fedsgd", "FedSGD clients send gradients, which only "
                          "strategy=gradient_capture applies; use client.update_mode=fedavg or that strategy")


def check_attack(attack: DictConfig) -> None:
    """The `attack` keys of gradient inversion (checked before the run or the attack command starts)."""
    _choice("attack.name", attack.name, ATTACKS)
    _choice("attack.label_mode", attack.label_mode, ("restore", "optimise"))
    if attack.label_mode == "optimise" and attack.name != "dlg":
        raise ConfigError("attack.label_mode", "optimise",
                          "soft labels are optimised by attack.name=dlg only")
    _choice("attack.optimizer", attack.optimizer, OPTIMIZERS)
    _integer("attack.iterations", attack.iterations, 1)
    _integer("attack.inner_iterations", attack.inner_iterations, 1)
    _integer("attack.restarts", attack.restarts, 1)
    _positive("attack.lr", attack.lr)
    _number("attack.tv_weight", attack.tv_weight, 0, float("inf"), low_open=False, high_open=True)
    _choice("attack.init.distribution", attack.init.distribution, ("uniform", "normal"))
    _choice("attack.bound", attack.bound, ("clamp", "sigmoid"))
    _integer("attack.seed", attack.seed, 0)
    _integer("attack.torch_threads", attack.torch_threads, 1)
    if attack.max_captures is not None:
        _integer("attack.max_captures", attack.max_captures, 1)


def check_mia(mia: DictConfig, cfg: DictConfig) -> None:
    """The `mia` keys of the membership-inference audit (before the run or the membership command)."""
    _number("mia.holdout_fraction", mia.holdout_fraction, 0, 1, low_open=False, high_open=True)
    _choice("mia.target", mia.target, MIA_TARGETS)
    _choice("mia.target_model", mia.target_model, ("global", "client"))
    num_clients = cfg.simulation.num_clients
    if mia.target == "client" or mia.target_model == "client":
        _integer("mia.target_partition", mia.target_partition, 0)
        if mia.target_partition >= num_clients:
            raise ConfigError("mia.target_partition", mia.target_partition,
                              f"must be a partition id 0..{num_clients - 1} "
                              f"(simulation.num_clients={num_clients})")
    if mia.target_model == "client":
        if mia.target != "client":
            raise ConfigError("mia.target_model", "client",
                              "attacks one client's model: needs mia.target=client")
        capture = cfg.strategy.get("capture")
        if cfg.strategy.name != "gradient_capture" or (capture.partitions is not None
                                                       and mia.target_partition not in capture.partitions):
            raise ConfigError("mia.target_model", "client", "needs strategy=gradient_capture capturing "
                              f"partition {mia.target_partition} (strategy.capture.partitions)")
    if not OmegaConf.is_list(mia.attacks) or not mia.attacks:
        raise ConfigError("mia.attacks", mia.attacks, f"must be a non-empty list of {', '.join(MIA_ATTACKS)}")
    for name in mia.attacks:
        _choice("mia.attacks", name, MIA_ATTACKS)
    _integer("mia.num_shadow", mia.num_shadow, 1)
    _integer("mia.num_reference", mia.num_reference, 2 if "lira_online" in mia.attacks else 1)
    _integer("mia.training.epochs", mia.training.epochs, 1)
    _check_training("mia.training", mia.training, "epochs")
    _integer("mia.seed", mia.seed, 0)
    _integer("mia.torch_threads", mia.torch_threads, 1)


def _check_gan_attack(cfg: DictConfig) -> None:
    if not FAKE_CLASS_ROLES & {cfg.client.role, *(cfg.client.roles or {}).values()}:
        return
    gan = cfg.client.gan
    _integer("client.gan.victim_class", gan.victim_class, 0)
    for key in ("latent_dim", "generator_steps", "generator_batch_size", "num_fakes", "max_fakes",
                "alternations", "start_round"):
        _integer(f"client.gan.{key}", gan[key], 1)
    if gan.start_accuracy is not None:
        _number("client.gan.start_accuracy", gan.start_accuracy, 0, 1, low_open=False, high_open=False)
    _positive("client.gan.generator_lr", gan.generator_lr)
    for key in ("tv_weight", "diversity_weight"):
        _number(f"client.gan.{key}", gan[key], 0, float("inf"), low_open=False, high_open=True)
    _choice("client.gan.fake_pool", gan.fake_pool, FAKE_POOLS)
    if gan.max_grad_norm is not None:
        _positive("client.gan.max_grad_norm", gan.max_grad_norm)
    _check_oracle(cfg)


def _check_oracle(cfg: DictConfig) -> None:
    oracle = cfg.oracle
    for key, minimum in (("epochs", 1), ("batch_size", 1), ("components", 2), ("samples_per_round", 2)):
        _integer(f"oracle.{key}", oracle[key], minimum)
    _positive("oracle.lr", oracle.lr)


def _check_simulation(cfg: DictConfig) -> None:
    sim = cfg.simulation
    _positive("simulation.client_resources.num_cpus", sim.client_resources.num_cpus)
    _number("simulation.client_resources.num_gpus", sim.client_resources.num_gpus, 0,
            float("inf"), low_open=False, high_open=True)
    if sim.num_cpus is not None:
        _integer("simulation.num_cpus", sim.num_cpus, 1)
    _integer("simulation.torch_threads_per_client", sim.torch_threads_per_client, 1)
    _integer("simulation.dashboard_port", sim.dashboard_port, 1)
    address = sim.get("ray_address")
    if address is not None:
        if not isinstance(address, str) or not address.strip():
            raise ConfigError("simulation.ray_address", address, "null (local Ray), auto or HOST:PORT")
        for key in ("num_cpus", "dashboard"):
            if sim[key]:
                raise ConfigError(f"simulation.{key}", sim[key], "belongs to the cluster when "
                                  "simulation.ray_address is set; leave it null/false")
    if sim.dashboard:
        missing = [m for m in DASHBOARD_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError("simulation.dashboard", True,
                              f"Ray's dashboard needs packages that are missing "
                              f"({', '.join(missing)}); pip install 'ray[default]' or set "
                              "simulation.dashboard=false")


def _check_par_gan(cfg: DictConfig) -> None:
    par_gan = cfg.par_gan
    for key in ("members", "steps", "batch_size", "latent_dim", "neighbours", "torch_threads"):
        _integer(f"par_gan.{key}", par_gan[key], 1)
    _integer("par_gan.samples", par_gan.samples, max(2, par_gan.neighbours))
    _integer("par_gan.log_every", par_gan.log_every, 0)
    _integers("par_gan.discriminators", par_gan.discriminators, 1, par_gan.batch_size)
    for k in par_gan.discriminators:
        if par_gan.batch_size % k:
            raise ConfigError("par_gan.batch_size", par_gan.batch_size,
                              f"must be divisible by every entry of par_gan.discriminators (here {k}) so "
                              "that every discriminator gets an equal share of each step's records")
    for key in ("generator_lr", "discriminator_lr"):
        _positive(f"par_gan.{key}", par_gan[key])
    _number("par_gan.discriminator_dropout", par_gan.discriminator_dropout, 0, 1,
            low_open=False, high_open=True)
    _check_oracle(cfg)


def check_representation_inversion(cfg: DictConfig) -> None:
    """The `representation_inversion` keys (checked before the run or the inversion command starts)."""
    from fl_privacy.attacks.representation_inversion import INVERSION_OPTIMIZERS, layer_names
    from fl_privacy.models import build_model

    node = cfg.representation_inversion
    nodes = layer_names(build_model(cfg.model, (1, 28, 28), 10))  # node names do not depend on the shape
    if not OmegaConf.is_list(node.layers) or not node.layers:
        raise ConfigError("representation_inversion.layers", node.layers, f"a non-empty list of {nodes}")
    for layer in node.layers:
        _choice("representation_inversion.layers", layer, nodes)
    for key in ("images", "iterations", "torch_threads"):
        _integer(f"representation_inversion.{key}", node[key], 1)
    _integer("representation_inversion.seed", node.seed, 0)
    _choice("representation_inversion.split", node.split, ("train", "test"))
    _choice("representation_inversion.optimizer", node.optimizer, INVERSION_OPTIMIZERS)
    _positive("representation_inversion.lr", node.lr)
    for key in ("tv_weight", "l2_weight"):
        _number(f"representation_inversion.{key}", node[key], 0, float("inf"), low_open=False, high_open=True)
    if node.after_run and not cfg.save_model:
        raise ConfigError("representation_inversion.after_run", True, "needs save_model=true (it inverts "
                          "final_model.pt)")
    _check_oracle(cfg)


def _non_negative(key: str, value) -> None:
    _number(key, value, 0, float("inf"), low_open=False, high_open=True)


def _any_fedsgd(cfg: DictConfig) -> bool:
    """Whether any round asks clients for FedSGD gradients instead of weights."""
    capture = cfg.strategy.get("capture") or {}
    return cfg.client.update_mode == "fedsgd" or capture.get("update_mode") == "fedsgd"


def _uses_role(cfg: DictConfig, role: str) -> bool:
    return role in {cfg.client.role, *(cfg.client.roles or {}).values()}


def _check_local_dp(cfg: DictConfig) -> None:
    dp = cfg.defense.dp
    _non_negative("defense.dp.noise_multiplier", dp.noise_multiplier)
    _positive("defense.dp.max_grad_norm", dp.max_grad_norm)
    _number("defense.dp.delta", dp.delta, 0, 1, low_open=True, high_open=True)
    if dp.target_epsilon is not None:
        _number("defense.dp.target_epsilon", dp.target_epsilon, 0, float("inf"),
                low_open=True, high_open=False)
        if _any_fedsgd(cfg):
            raise ConfigError("defense.dp.target_epsilon", dp.target_epsilon,
                              "is calibrated for FedAvg training; DP-FedSGD uses defense.dp.noise_multiplier")
    _choice("defense.dp.noise_decay.schedule", dp.noise_decay.schedule, NOISE_SCHEDULES)
    _number("defense.dp.noise_decay.rate", dp.noise_decay.rate, 0, 1, low_open=False, high_open=True)
    adaptive = dp.adaptive_clipping
    if adaptive.enabled:
        _number("defense.dp.adaptive_clipping.target_quantile", adaptive.target_quantile, 0, 1,
                low_open=False, high_open=False)
        _positive("defense.dp.adaptive_clipping.learning_rate", adaptive.learning_rate)
        _choice("defense.dp.adaptive_clipping.rule", adaptive.rule, CLIP_RULES)
        _positive("defense.dp.adaptive_clipping.min_norm", adaptive.min_norm)
        _number("defense.dp.adaptive_clipping.max_norm", adaptive.max_norm, adaptive.min_norm, float("inf"),
                low_open=True, high_open=True)
        _positive("defense.dp.adaptive_clipping.count_noise", adaptive.count_noise)
        if dp.target_epsilon is None and dp.noise_multiplier >= 2 * adaptive.count_noise:
            raise ConfigError("defense.dp.adaptive_clipping.count_noise", adaptive.count_noise,
                              f"must exceed defense.dp.noise_multiplier / 2 = {dp.noise_multiplier / 2} "
                              "(Andrew et al. 2021, Theorem 1)")
    problems = check_opacus_compatible(build_model(cfg.model, (1, 28, 28), 10))
    if problems:
        raise ConfigError("model", OmegaConf.to_container(cfg.model),
                          f"cannot train with DP-SGD ({problems[0]}); use model.norm=group or none")


def _check_defense(cfg: DictConfig) -> None:
    defense = cfg.defense
    if _uses_role(cfg, "dp"):
        _check_local_dp(cfg)
    central = defense.central_dp
    if central.enabled:
        _non_negative("defense.central_dp.noise_multiplier", central.noise_multiplier)
        _positive("defense.central_dp.clipping_norm", central.clipping_norm)
        _number("defense.central_dp.delta", central.delta, 0, 1, low_open=True, high_open=True)
        if _any_fedsgd(cfg):
            raise ConfigError("defense.central_dp.enabled", True, "clips model updates; FedSGD clients "
                              "send gradients (use client.update_mode=fedavg)")
    _number("defense.pruning.fraction", defense.pruning.fraction, 0, 1, low_open=False, high_open=True)
    suppress = defense.suppress
    if suppress.enabled:
        _integer("defense.suppress.start_round", suppress.start_round, 0)
        _integer("defense.suppress.rounds", suppress.rounds, 1)
        for key in ("start_sparsity", "end_sparsity"):
            _number(f"defense.suppress.{key}", suppress[key], 0, 1, low_open=False, high_open=True)
        names = dict(build_model(cfg.model, (1, 28, 28), 10).named_parameters())
        for layer in suppress.layers or ():
            _choice("defense.suppress.layers", layer, names)
    if defense.secure_aggregation and cfg.strategy.name != "gradient_capture":
        raise ConfigError("defense.secure_aggregation", True,
                          "is the capturing server's view; use strategy=gradient_capture")


def validate(cfg: DictConfig) -> None:
    """Check the whole config; raise `ConfigError` on the first bad key."""
    _integer("seed", cfg.seed, 0)
    _check_data(cfg)
    _check_partition(cfg)
    _check_model(cfg)
    _check_strategy(cfg)
    _check_clients(cfg)
    _check_gan_attack(cfg)
    _check_defense(cfg)
    _check_simulation(cfg)
    if "par_gan" in cfg:
        _check_par_gan(cfg)
    if "representation_inversion" in cfg:
        check_representation_inversion(cfg)
    if "attack" in cfg:
        check_attack(cfg.attack)
        if cfg.attack.after_run and cfg.strategy.name != "gradient_capture":
            raise ConfigError("attack.after_run", True,
                              "needs strategy=gradient_capture (nothing else captures updates)")
    if "mia" in cfg:
        check_mia(cfg.mia, cfg)
