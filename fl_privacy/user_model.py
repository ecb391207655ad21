"""Your own model in the lab: `model._target_=pkg.module.Factory` builds it with Hydra's `instantiate`.

The factory (an `nn.Module` class or a function returning one) is called as
`Factory(image_shape=(C, H, W), num_classes=K, **kwargs)`, where `kwargs` are the model section's keys that
are not the lab's own (`ModelSettings`' fields): `model._target_=my_models.TinyNet +model.width=32` calls
`TinyNet(image_shape=..., num_classes=..., width=32)`. `num_classes` is `model.num_outputs` when set, else
the data set's class count (plus the GAN adversary's "fake" class when one plays). A leaf: it imports the
schema and the errors only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from fl_privacy.config.schema import ModelSettings
from fl_privacy.errors import ConfigError

TARGET_KEY = "model._target_"


def factory_kwargs(settings: ModelSettings) -> dict[str, Any]:
    """The model section's keys that go to the user's factory (every key the schema does not declare)."""
    return dict(settings.model_extra or {})


def resolve_target(target: str) -> Any:
    """The object `target` names (`pkg.module.Name`); `ConfigError` naming `model._target_` when it does
    not import or is not callable."""
    from hydra._internal.utils import _locate  # hydra.utils.get_object, without its multi-line error log

    try:
        found = _locate(target)
    except Exception as error:  # ImportError/AttributeError, or the user's module failing as it imports
        reason = " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__
        raise ConfigError(TARGET_KEY, target, f"does not import ({reason}); give pkg.module.Factory "
                          "importable from the working directory or PYTHONPATH") from None
    if not callable(found):
        raise ConfigError(TARGET_KEY, target, f"is a {type(found).__name__}, not a class or function")
    return found


def build_user_model(settings: ModelSettings, image_shape: Sequence[int], num_classes: int) -> nn.Module:
    """`settings.target` instantiated with the image shape, the class count and the section's extra keys;
    `ConfigError` naming `model._target_` when it does not import, fails, or builds no `nn.Module`."""
    from hydra.utils import instantiate

    assert settings.target is not None
    resolve_target(settings.target)
    kwargs = factory_kwargs(settings)
    shape = tuple(int(size) for size in image_shape)
    try:
        # `_partial_`: Hydra binds the section's keys; the lab's arguments stay plain (a tuple, an int)
        factory = instantiate({"_target_": settings.target, "_partial_": True, **kwargs}, _convert_="all")
        model = factory(image_shape=shape, num_classes=int(num_classes))
    except Exception as error:
        cause = error.__cause__ or error
        called = ", ".join([f"image_shape={shape}", f"num_classes={num_classes}",
                            *(f"{key}={value!r}" for key, value in kwargs.items())])
        reason = str(cause).splitlines()[0] if str(cause) else ""
        raise ConfigError(TARGET_KEY, settings.target,
                          f"failed when called with {called} ({type(cause).__name__}: {reason})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(TARGET_KEY, settings.target,
                          f"returned a {type(model).__name__}, not a torch.nn.Module")
    return model
