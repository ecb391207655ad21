"""Rules for the user's own inputs (docs/configuration.md: bring your own model and data) and tracking;
`check_rules` runs them with the others. Settings only: files are checked where the data are read."""

from __future__ import annotations

from fl_privacy.config.schema import Settings
from fl_privacy.errors import ConfigError

# Data sets that ship inside a package: nothing is read from data.root.
EMBEDDED_DATA = ("mnist_offline", "lfw_offline", "skimage_photos")
# Data sources whose data.root is the user's folder or file.
OWN_DATA = {"image_folder": "a folder with one subfolder of images per class",
            "npz": "a .npz file with arrays x_train, y_train, x_test, y_test"}


def check_own_inputs(settings: Settings) -> None:
    """The model section's extra keys need `model._target_`; `data.root` must be null for embedded sets and
    set for your own; `data.resize` is image_folder's; tracking follows federated rounds."""
    model = settings.model
    if model.target is None and model.model_extra:
        key, value = next(iter(model.model_extra.items()))
        raise ConfigError(f"model.{key}", value, "unknown key (a model section's extra keys are "
                          "keyword arguments of model._target_; see fl_privacy/config/schema.py)")
    data = settings.data
    if data.name in EMBEDDED_DATA and data.root is not None:
        raise ConfigError("data.root", data.root, f"data.name={data.name} ships inside a package and reads "
                          "no files; remove data.root (or use data=image_folder / data=npz for your own)")
    if data.name in OWN_DATA and data.root is None:
        raise ConfigError("data.root", None, f"data.name={data.name} reads {OWN_DATA[data.name]}: "
                          "set data.root to it")
    if data.resize is not None and data.name != "image_folder":
        raise ConfigError("data.resize", data.resize, "resizes data=image_folder only; set it to null")
    if settings.tracking != "none" and settings.kind != "federated":
        raise ConfigError("tracking", settings.tracking, "logs the rounds of kind=federated runs; use "
                          "tracking=none with kind=par_gan")
