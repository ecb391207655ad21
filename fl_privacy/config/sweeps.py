"""The jobs of a Hydra multirun, expanded as Hydra's basic sweeper does.

Hydra exposes the sweeper's expansion only in its private API, so it is done here with the public
override parser: the preset's `hydra.sweeper.params` first, the command line's overrides win; per key
the last override wins, and the jobs are the product in key order. The entry point validates every job
with it before the first starts; the report uses it to name jobs that never ran.
"""

from __future__ import annotations

import itertools

from omegaconf import DictConfig, OmegaConf


def sweep_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's overrides (`KEY=VALUE` strings), in job order, from a composed multirun config or a
    sweep's `multirun.yaml`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    task = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
    sweep = [f"{key}={value}" for key, value in params.items()] + task
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(sweep):
        key = override.get_key_element()
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
        choices[key] = [f"{key}={value}" for value in values]
    return [list(job) for job in itertools.product(*choices.values())]
