"""Register the schema's defaults with Hydra's ConfigStore, so `conf/` states only what differs.

Root keys come as the `schema` config; each group with options in `conf/` gets a `base` option its
YAML files extend (`defaults: [base, _self_]`); groups without options there (`defense`, `attack`,
`evaluation`) get their `default` option straight from the schema.
"""

from __future__ import annotations

import functools

from hydra.core.config_store import ConfigStore

from fl_privacy.config.schema import Settings

GROUPS_WITH_OPTIONS = ("data", "partition", "model", "strategy", "client", "simulation")
GROUPS_FROM_SCHEMA = ("defense", "attack", "evaluation")


@functools.cache
def register_schema() -> None:
    """Store the defaults once per process (before Hydra composes a config)."""
    store = ConfigStore.instance()
    defaults = Settings().model_dump()
    groups = (*GROUPS_WITH_OPTIONS, *GROUPS_FROM_SCHEMA)
    store.store(name="schema", node={key: value for key, value in defaults.items() if key not in groups})
    for group in GROUPS_WITH_OPTIONS:
        store.store(group=group, name="base", node=defaults[group])
    for group in GROUPS_FROM_SCHEMA:
        store.store(group=group, name="default", node=defaults[group])
