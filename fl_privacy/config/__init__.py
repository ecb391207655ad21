"""Typed settings: the schema, the rules between keys, and the one translation from Hydra's config.

`load_settings` is the only place that reads a composed `DictConfig`; everything below the entry point
and the lab receives the frozen `Settings` it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from pydantic import ValidationError

from fl_privacy.config.rules import check_rules
from fl_privacy.config.schema import Settings
from fl_privacy.config.store import register_schema
from fl_privacy.errors import ConfigError

_MISSING = object()


def _first_error(error: ValidationError) -> ConfigError:
    """Pydantic's first complaint as one line naming the dotted key."""
    problem = error.errors()[0]
    key = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return ConfigError(key, problem["input"],
                           "unknown key (see fl_privacy/config/schema.py for the keys)")
    return ConfigError(key, problem.get("input", _MISSING), problem["msg"])


def settings_from_dict(values: dict[str, Any]) -> Settings:
    """Validate a plain config tree (e.g. the `config` a run recorded) into `Settings`."""
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        raise _first_error(error) from None
    check_rules(settings)
    return settings


def load_settings(cfg: DictConfig) -> Settings:
    """Validate a composed Hydra config; raises `ConfigError` naming the first bad key."""
    values = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(values, dict)
    return settings_from_dict(cast(dict[str, Any], values))  # a config tree's keys are strings


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_settings(overrides: Sequence[str] = ()) -> Settings:
    """The validated settings `python -m fl_privacy.run OVERRIDES` would run, composed with Hydra's compose
    API (for code outside a Hydra job: `flwr run`, benchmarks, notebooks)."""
    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return load_settings(cfg)


__all__ = ["CONF_DIR", "Settings", "compose_settings", "load_settings", "register_schema",
           "settings_from_dict"]
