"""Checks that need the code, not just the settings (model layers, Opacus, the data's classes); they run
before anything heavy starts and raise `ConfigError` naming the key."""

from __future__ import annotations

import importlib.util

from torch import nn

from fl_privacy.apps.roles import role_of
from fl_privacy.config.rules import roles_in_use
from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation
from fl_privacy.devices import check_device
from fl_privacy.errors import ConfigError
from fl_privacy.lab.own_setup import check_own_setup
from fl_privacy.models import FAKE_CLASS_ROLES, build_model, model_outputs

# Ray's dashboard imports these (they come with `ray[default]`); without them it hangs.
DASHBOARD_MODULES = ("aiohttp", "aiohttp_cors", "opencensus", "prometheus_client")
# Node names do not depend on the image shape, so the checks build the model for MNIST-sized images.
PROBE_SHAPE, PROBE_CLASSES = (1, 28, 28), 10


def check_representation_layers(settings: Settings, model: nn.Module | None = None) -> None:
    """`attack.representation_inversion.layers` must be nodes of the model (built at the probe shape when
    not given)."""
    from fl_privacy.attacks.representation_inversion import layer_names

    if model is None:
        model = build_model(settings.model, PROBE_SHAPE, PROBE_CLASSES)
    nodes = layer_names(model)
    for layer in settings.attack.representation_inversion.layers:
        if layer not in nodes:
            raise ConfigError("attack.representation_inversion.layers", layer, f"allowed: {', '.join(nodes)}")


def check_inversion_attack(settings: Settings) -> None:
    """`attack.gradient_inversion.name` must be a registered attack (its choices are the registry's)."""
    from fl_privacy.attacks.registry import registered_attacks

    name = settings.attack.gradient_inversion.name
    if name not in (attacks := registered_attacks()):
        raise ConfigError("attack.gradient_inversion.name", name, f"allowed: {', '.join(sorted(attacks))}")


def audit_delta(settings: Settings) -> float:
    """The δ the canary audit uses: central DP's when only the server adds noise, else local DP's."""
    central_only = settings.defense.central_dp.enabled and "dp" not in roles_in_use(settings)
    return settings.defense.central_dp.delta if central_only else settings.defense.dp.delta


def check_dp_audit_power(settings: Settings) -> None:
    """An audit whose canary count and confidence cannot give any ε lower bound (all guesses right still
    not significant) is refused before training."""
    from fl_privacy.evaluation.dp_audit import max_showable_epsilon

    audit, count = settings.attack.dp_audit, settings.data.canaries.count
    if max_showable_epsilon(count, list(audit.guesses), audit_delta(settings), audit.confidence) <= 0:
        raise ConfigError("attack.dp_audit.confidence", audit.confidence,
                          f"data.canaries.count={count} canaries with guesses {list(audit.guesses)} cannot "
                          "give any ε lower bound at this confidence even if every guess is right: "
                          "lower the confidence or add canaries")


def check_settings(settings: Settings) -> None:
    """Everything checkable before data is loaded (the entry point runs it right after validation)."""
    check_device(settings.device)
    check_inversion_attack(settings)
    check_own_setup(settings)
    if settings.model.target is None:  # a user's model is checked at the data's shape (check_before_run)
        check_model(settings, build_model(settings.model, PROBE_SHAPE, PROBE_CLASSES))
    if settings.simulation.dashboard:
        missing = [m for m in DASHBOARD_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError("simulation.dashboard", True, "Ray's dashboard needs packages that are missing "
                              f"({', '.join(missing)}); pip install 'ray[default]' "
                              "or set simulation.dashboard=false")


def check_model(settings: Settings, model: nn.Module) -> None:
    """What the settings ask of the model: Opacus-compatible layers for DP-SGD, the layers that
    `defense.suppress` and the representation inverter name."""
    if "dp" in roles_in_use(settings):
        from fl_privacy.defenses.dp_sgd import check_opacus_compatible

        problems = check_opacus_compatible(model)
        if problems:
            raise ConfigError("model", settings.model.model_dump(),
                              f"cannot train with DP-SGD ({problems[0]}); use model.norm=group or none")
    suppress = settings.defense.suppress
    if suppress.enabled:
        names = dict(model.named_parameters())
        for layer in suppress.layers:
            if layer not in names:
                raise ConfigError("defense.suppress.layers", layer, f"allowed: {', '.join(names)}")
    if settings.attack.representation_inversion.after_run:
        check_representation_layers(settings, model)
    if settings.attack.dp_audit.after_run:
        check_dp_audit_power(settings)


def check_before_run(settings: Settings, federation: Federation) -> None:
    """Checks that need the data: the model has an output per class (and the GAN attack's "fake" class),
    and the GAN attack's victim class exists and is not the adversary's."""
    splits = federation.splits
    needed = model_outputs(settings.client, splits.num_classes)
    if settings.model.target is not None:  # the user's model, built as the federation will build it
        check_model(settings, build_model(settings.model, splits.image_shape, needed))
    if settings.model.num_outputs is not None and settings.model.num_outputs < needed:
        raise ConfigError("model.num_outputs", settings.model.num_outputs,
                          f"{splits.name} has {splits.num_classes} classes"
                          + (" and the GAN attack adds a 'fake' class" if needed > splits.num_classes else "")
                          + f": at least {needed} (or null)")
    if needed == splits.num_classes:
        return
    victim = settings.attack.gan.victim_class
    if victim >= splits.num_classes:
        raise ConfigError("attack.gan.victim_class", victim,
                          f"{splits.name} has classes 0..{splits.num_classes - 1}")
    for partition in range(len(federation.client_indices)):
        if (role_of(settings, partition) in FAKE_CLASS_ROLES
                and victim in federation.client_classes(partition)):
            raise ConfigError("attack.gan.victim_class", victim,
                              f"the adversary (partition {partition}) holds that "
                              "class itself; pick a class it does not hold")
