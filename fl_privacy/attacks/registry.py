"""Where gradient-inversion attacks register: `attack.gradient_inversion.name` chooses among them.

An attack registers where it is defined, with `@inversion_attack(name, needs=..., options=...)`: the name
the config uses, the capture it needs (`gradient`, `weights` or `any`), and how its options are built from
the `attack.gradient_inversion` section. The registry finds every module of `fl_privacy.attacks` itself,
so a new passive attack is its module, its preset and its test: the config's choices
(`lab.preflight` checks the name against `registered_attacks()`) and the dispatch (`run_attack`) come
from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import GradientInversionSettings

Needs = Literal["gradient", "weights", "any"]
Attack = Callable[[nn.Module, CapturedUpdate, Any], Any]
Options = Callable[[GradientInversionSettings, bool], Any]


@dataclass(frozen=True)
class InversionAttack:
    """A registered attack: the function, the capture it needs, and the builder of its options from
    `attack.gradient_inversion` (and whether to show progress)."""

    name: str
    run: Attack
    needs: Needs
    options: Options


_ATTACKS: dict[str, InversionAttack] = {}


def inversion_attack(name: str, needs: Needs, options: Options) -> Callable[[Attack], Attack]:
    """Register the decorated function as gradient-inversion attack `name`."""

    def register(attack: Attack) -> Attack:
        if name in _ATTACKS and _ATTACKS[name].run is not attack:
            raise ValueError(f"gradient-inversion attack {name!r} is registered twice")
        _ATTACKS[name] = InversionAttack(name, attack, needs, options)
        return attack

    return register


def registered_attacks() -> dict[str, InversionAttack]:
    """Every registered attack by name (importing each module of `fl_privacy.attacks` once, so each
    registers)."""
    package = importlib.import_module("fl_privacy.attacks")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"fl_privacy.attacks.{module.name}")
    return dict(_ATTACKS)


def attack_options(settings: GradientInversionSettings, progress: bool = False) -> Any:
    """The options of the attack `settings.name`, built from `settings`."""
    return registered_attacks()[settings.name].options(settings, progress)


def run_attack(name: str, model: nn.Module, payload: CapturedUpdate, options: Any) -> Any:
    """Run attack `name` on one captured update; the payload kind must fit the attack."""
    attack = registered_attacks()[name]
    kind = "gradient" if payload.is_gradient else "weights"
    if attack.needs not in ("any", kind):
        raise ValueError(f"attack {name!r} needs a {attack.needs} capture, got {kind} "
                         "(client.update_mode=fedsgd sends gradients, fedavg sends weights)")
    with torch.random.fork_rng():
        return attack.run(model, payload, options)
