"""Rules that tie several keys together; each raises `ConfigError` naming the key to change."""

from __future__ import annotations

from fl_privacy.config.own_inputs import check_own_inputs
from fl_privacy.config.schema import Settings
from fl_privacy.errors import ConfigError
from fl_privacy.protocol import sample_size


def roles_in_use(settings: Settings) -> set[str]:
    """Every client role some partition plays."""
    return {settings.client.role, *settings.client.roles.values()}


def any_fedsgd(settings: Settings) -> bool:
    """Whether any round asks clients for FedSGD gradients instead of weights."""
    return "fedsgd" in (settings.client.update_mode, settings.strategy.capture.update_mode)


def _partition_ids(key: str, values, num_clients: int) -> None:
    bad = [value for value in values if value >= num_clients]
    if bad:
        raise ConfigError(key, list(values), f"entries must be partition ids 0..{num_clients - 1} "
                          f"(simulation.num_clients={num_clients})")


def _check_roles(settings: Settings) -> None:
    roles, num_clients = settings.client.roles, settings.simulation.num_clients
    if len(roles) > num_clients:
        raise ConfigError("client.roles", dict(roles),
                          f"assigns {len(roles)} roles but simulation.num_clients={num_clients}")
    for partition, role in roles.items():
        if not 0 <= partition < num_clients:
            raise ConfigError(f"client.roles.{partition}", role,
                              f"keys are partition ids 0..{num_clients - 1} "
                              f"(simulation.num_clients={num_clients})")


def _check_capture(settings: Settings) -> None:
    capturing = settings.strategy.name == "gradient_capture"
    if settings.client.update_mode == "fedsgd" and not capturing:
        raise ConfigError("client.update_mode", "fedsgd", "FedSGD clients send gradients, which only "
                          "strategy=gradient_capture applies; use client.update_mode=fedavg or that strategy")
    if settings.model.imprint_bins and not capturing:
        raise ConfigError("model.imprint_bins", settings.model.imprint_bins, "an imprint block is crafted "
                          "by the malicious capturing server: needs strategy=gradient_capture")
    if not capturing:
        return
    capture = settings.strategy.capture
    late = [r for r in capture.rounds if r > settings.strategy.num_rounds]
    if late:
        raise ConfigError("strategy.capture.rounds", list(capture.rounds),
                          f"entries must be rounds 1..{settings.strategy.num_rounds} (strategy.num_rounds)")
    if capture.partitions is not None:
        _partition_ids("strategy.capture.partitions", capture.partitions, settings.simulation.num_clients)


def _captures(settings: Settings, partition: int) -> bool:
    partitions = settings.strategy.capture.partitions
    return settings.strategy.name == "gradient_capture" and (partitions is None or partition in partitions)


def check_gradient_inversion(settings: Settings) -> None:
    """The server attacker's keys (also checked by the attack command)."""
    attack = settings.attack.gradient_inversion
    if attack.label_mode == "optimise" and attack.name != "dlg":
        raise ConfigError("attack.gradient_inversion.label_mode", "optimise",
                          "soft labels are optimised by attack.gradient_inversion.name=dlg only")
    if attack.name == "imprint" and not settings.model.imprint_bins:
        raise ConfigError("attack.gradient_inversion.name", "imprint",
                          "needs a model with an imprint block (model.imprint_bins > 0)")
    if attack.after_run and settings.strategy.name != "gradient_capture":
        raise ConfigError("attack.gradient_inversion.after_run", True,
                          "needs strategy=gradient_capture (nothing else captures updates)")
    adam = attack.name in ("inverting", "best") or (attack.name == "fedavg" and attack.optimizer == "adam")
    if attack.early_stop_patience is not None:
        if not adam:
            raise ConfigError("attack.gradient_inversion.early_stop_patience", attack.early_stop_patience,
                              "stops the Adam attacks only (name=inverting, best, or fedavg with "
                              "optimizer=adam)")
        if attack.early_stop_patience >= attack.iterations:
            raise ConfigError("attack.gradient_inversion.early_stop_patience", attack.early_stop_patience,
                              f"must be below attack.gradient_inversion.iterations={attack.iterations}")
    if attack.label_estimator != "counts" and attack.name in ("dlg", "imprint"):
        raise ConfigError("attack.gradient_inversion.label_estimator", attack.label_estimator,
                          f"is not used by name={attack.name} (inverting, best, fedavg and labels use it)")
    if attack.engine == "batched" and attack.name != "inverting":
        raise ConfigError("attack.gradient_inversion.engine", "batched",
                          f"batches name=inverting only, not name={attack.name}")
    if attack.engine == "batched" and attack.bound != "clamp":
        raise ConfigError("attack.gradient_inversion.bound", attack.bound,
                          "engine=batched boxes images by clamping (bound=clamp)")


def check_membership(settings: Settings) -> None:
    """The membership auditor's keys (also checked by the audit command)."""
    mia, num_clients = settings.attack.membership, settings.simulation.num_clients
    if (mia.target == "client" or mia.target_model == "client") and mia.target_partition >= num_clients:
        raise ConfigError("attack.membership.target_partition", mia.target_partition,
                          f"must be a partition id 0..{num_clients - 1} "
                          f"(simulation.num_clients={num_clients})")
    if mia.target_model == "client":
        if mia.target != "client":
            raise ConfigError("attack.membership.target_model", "client",
                              "attacks one client's model: needs attack.membership.target=client")
        if not _captures(settings, mia.target_partition):
            raise ConfigError("attack.membership.target_model", "client", "needs strategy=gradient_capture "
                              f"capturing partition {mia.target_partition} (strategy.capture.partitions)")
    if mia.update_attack.after_run:
        if not _captures(settings, mia.target_partition):
            raise ConfigError("attack.membership.update_attack.after_run", True,
                              f"needs strategy=gradient_capture capturing partition {mia.target_partition} "
                              "(strategy.capture.partitions)")
        if settings.client.examples_per_round is not None:
            raise ConfigError("attack.membership.update_attack.after_run", True, "takes the client's whole "
                              "partition as members: needs client.examples_per_round=null")
    if "lira_online" in mia.attacks and mia.num_reference < 2:
        raise ConfigError("attack.membership.num_reference", mia.num_reference,
                          "online LiRA needs at least 2 reference models")
    if "rmia" in mia.attacks and mia.rmia.fit_a and mia.rmia.num_reference < 3:
        raise ConfigError("attack.membership.rmia.num_reference", mia.rmia.num_reference,
                          "fitting RMIA's a (rmia.fit_a=true) needs at least 3 reference models")


def check_dp_audit(settings: Settings) -> None:
    """The canaries and the DP audit's keys (also checked by the audit command)."""
    canaries, audit = settings.data.canaries, settings.attack.dp_audit
    if canaries.count:
        _partition_ids("data.canaries.partition", [canaries.partition], settings.simulation.num_clients)
    if audit.after_run and not canaries.count:
        raise ConfigError("attack.dp_audit.after_run", True, "audits canaries: set data.canaries.count > 0")
    dp = settings.defense.dp
    if dp.fault_noise_factor != 1 and dp.adaptive_clipping.enabled:
        raise ConfigError("defense.dp.fault_noise_factor", dp.fault_noise_factor,
                          "the injected noise fault is for fixed clipping: set defense.dp.adaptive_clipping."
                          "enabled=false or the factor to 1")
    if canaries.kind == "dirac" and canaries.count:
        _check_dirac_canaries(settings)
    if audit.after_run and 2 * max(audit.guesses) > canaries.count:
        raise ConfigError("attack.dp_audit.guesses", list(audit.guesses),
                          f"guess in and out for k canaries each: 2k must not exceed "
                          f"data.canaries.count={canaries.count}")


def _check_dirac_canaries(settings: Settings) -> None:
    """Dirac canaries live in the canary partition's DP-SGD optimizer (local DP, FedAvg, fixed clipping)."""
    canaries, dp = settings.data.canaries, settings.defense.dp
    role = settings.client.roles.get(canaries.partition, settings.client.role)
    problem = ("needs a dp client at data.canaries.partition" if role != "dp"
               else "needs local DP-SGD steps: not with FedSGD" if any_fedsgd(settings)
               else "needs fixed clipping: set defense.dp.adaptive_clipping.enabled=false"
               if dp.adaptive_clipping.enabled else None)
    if problem:
        raise ConfigError("data.canaries.kind", canaries.kind,
                          f"gradient canaries ride in the client's DP-SGD optimizer: {problem}")


def check_dp_audit_fl(settings: Settings) -> None:
    """The federated one-shot audit's keys: canary clients need central DP's uniform, clipped aggregation
    (noise_multiplier=0 is the no-DP arm) and at least one real client beside them."""
    audit, num_clients = settings.attack.dp_audit_fl, settings.simulation.num_clients
    if audit.canary_clients >= num_clients:
        raise ConfigError("attack.dp_audit_fl.canary_clients", audit.canary_clients,
                          f"must leave at least one real client of simulation.num_clients={num_clients}")
    if audit.canary_clients and not settings.defense.central_dp.enabled:
        raise ConfigError("attack.dp_audit_fl.canary_clients", audit.canary_clients,
                          "canary clients are aggregated like clipped client updates: needs "
                          "defense.central_dp.enabled=true (noise_multiplier=0 for the no-DP arm)")
    if audit.after_run and not audit.canary_clients:
        raise ConfigError("attack.dp_audit_fl.after_run", True, "needs attack.dp_audit_fl.canary_clients > 0")


def check_representation_inversion(settings: Settings) -> None:
    """The representation inverter's keys that depend on the run (layer names are checked by the lab)."""
    if settings.attack.representation_inversion.after_run and not settings.save_model:
        raise ConfigError("attack.representation_inversion.after_run", True,
                          "needs save_model=true (it inverts final_model.pt)")


def _check_par_gan(settings: Settings) -> None:
    par_gan = settings.defense.par_gan
    if par_gan.samples < par_gan.neighbours:
        raise ConfigError("defense.par_gan.samples", par_gan.samples,
                          f"must be at least defense.par_gan.neighbours={par_gan.neighbours}")
    most = max(par_gan.discriminators)
    if par_gan.batch_per_discriminator and par_gan.members // most < par_gan.batch_size:
        raise ConfigError("defense.par_gan.batch_size", par_gan.batch_size,
                          f"with batch_per_discriminator each of the {most} partitions of "
                          f"defense.par_gan.members={par_gan.members} must hold at least one batch")
    for k in par_gan.discriminators:
        if par_gan.batch_per_discriminator:
            break
        if k > par_gan.batch_size or par_gan.batch_size % k:
            raise ConfigError("defense.par_gan.batch_size", par_gan.batch_size,
                              "must be divisible by every entry of defense.par_gan.discriminators "
                              f"(here {k}) so that every discriminator gets an equal share of each "
                              "step's records")


def _check_defenses(settings: Settings) -> None:
    defense = settings.defense
    dp = defense.dp
    if "dp" in roles_in_use(settings):
        if dp.target_epsilon is not None and any_fedsgd(settings):
            raise ConfigError("defense.dp.target_epsilon", dp.target_epsilon,
                              "is calibrated for FedAvg training; DP-FedSGD uses defense.dp.noise_multiplier")
        if dp.accountant == "pld" and dp.noise_decay.schedule != "constant":
            raise ConfigError("defense.dp.accountant", "pld", "composes one PLD per distinct σ, so it needs "
                              "defense.dp.noise_decay.schedule=constant (or use defense.dp.accountant=rdp)")
        adaptive = dp.adaptive_clipping
        if adaptive.enabled:
            if adaptive.max_norm <= adaptive.min_norm:
                raise ConfigError("defense.dp.adaptive_clipping.max_norm", adaptive.max_norm,
                                  f"must exceed defense.dp.adaptive_clipping.min_norm={adaptive.min_norm}")
            if dp.target_epsilon is None and dp.noise_multiplier >= 2 * adaptive.count_noise:
                raise ConfigError("defense.dp.adaptive_clipping.count_noise", adaptive.count_noise,
                                  f"must exceed defense.dp.noise_multiplier / 2 = {dp.noise_multiplier / 2} "
                                  "(Andrew et al. 2021, Theorem 1)")
    if defense.central_dp.enabled and any_fedsgd(settings):
        raise ConfigError("defense.central_dp.enabled", True, "clips model updates; FedSGD clients "
                          "send gradients (use client.update_mode=fedavg)")
    if defense.secure_aggregation and settings.strategy.name != "gradient_capture":
        raise ConfigError("defense.secure_aggregation", True,
                          "is the capturing server's view; use strategy=gradient_capture")


def _check_simulation(settings: Settings) -> None:
    simulation = settings.simulation
    if simulation.ray_address is not None:
        if not simulation.ray_address.strip():
            raise ConfigError("simulation.ray_address", simulation.ray_address,
                              "null (local Ray), auto or HOST:PORT")
        for key in ("num_cpus", "dashboard"):
            if getattr(simulation, key):
                raise ConfigError(f"simulation.{key}", getattr(simulation, key),
                                  "belongs to the cluster when "
                                  "simulation.ray_address is set; leave it null/false")


def _check_replies(settings: Settings) -> None:
    """`strategy.min_train_replies` must be reachable: at most the clients a round samples."""
    strategy = settings.strategy
    sampled = sample_size(settings.simulation.num_clients, strategy.fraction_train, 1)
    if strategy.min_train_replies > sampled:
        raise ConfigError("strategy.min_train_replies", strategy.min_train_replies,
                          f"a round samples only {sampled} clients (simulation.num_clients x "
                          "strategy.fraction_train)")


def check_rules(settings: Settings) -> None:
    """Every cross-key rule; raises `ConfigError` on the first broken one."""
    _check_roles(settings)
    _check_replies(settings)
    _check_capture(settings)
    _check_defenses(settings)
    _check_simulation(settings)
    check_gradient_inversion(settings)
    check_membership(settings)
    check_dp_audit(settings)
    check_dp_audit_fl(settings)
    check_representation_inversion(settings)
    check_own_inputs(settings)
    if settings.kind == "par_gan":
        _check_par_gan(settings)
        if settings.resume:
            raise ConfigError("resume", True, "kind=par_gan runs in one piece; it has no checkpoints")
