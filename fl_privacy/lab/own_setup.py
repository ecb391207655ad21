"""Pre-flight checks of the user's own pieces (model factory, data files) and of the optional packages a
setting needs (tracking, Flower Datasets' partitioners): one `ConfigError` naming the key, before any data
are loaded."""

from __future__ import annotations

import importlib.util

from fl_privacy.config.schema import Settings
from fl_privacy.data.own_data import check_source
from fl_privacy.errors import ConfigError
from fl_privacy.user_model import resolve_target

# The packages each optional setting imports, and the extra that installs them.
TRACKING_MODULES = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow", "sqlalchemy", "alembic")}
PARTITIONER_MODULES = ("flwr_datasets", "datasets")


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [module for module in modules if importlib.util.find_spec(module) is None]


def check_own_setup(settings: Settings) -> None:
    """`model._target_` imports, `data.root` exists for your own data, and the packages that `tracking` and
    the `fds_*` partitions need are installed."""
    if settings.model.target is not None:
        resolve_target(settings.model.target)
    check_source(settings.data)
    if settings.tracking != "none" and (missing := _missing(TRACKING_MODULES[settings.tracking])):
        raise ConfigError("tracking", settings.tracking, f"needs {', '.join(missing)}: pip install "
                          "'fl-privacy[tracking]' (or set tracking=none)")
    if settings.partition.name.startswith("fds_") and (missing := _missing(PARTITIONER_MODULES)):
        raise ConfigError("partition.name", settings.partition.name, f"needs {', '.join(missing)}: pip "
                          "install 'fl-privacy[partitioners]' (or use partition=iid/dirichlet/one_class)")
