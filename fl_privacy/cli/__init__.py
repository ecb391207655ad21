"""`fl-privacy COMMAND` (or `python -m fl_privacy.cli COMMAND`): thin commands over the lab and finished runs.

`run` is the Hydra entry (`python -m fl_privacy.run`); the commands over a run directory take `KEY=VALUE`
overrides with the run's own dotted keys under the command's attacker node, validated by the same schema.
"""
