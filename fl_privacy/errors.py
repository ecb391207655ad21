"""Errors that reach the user as one clear line instead of a traceback."""


class ConfigError(ValueError):
    """A config value is invalid; the message names the key and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


class DataNotFoundError(FileNotFoundError):
    """A data set is not on disk and downloading was not allowed."""


class RoundFailed(RuntimeError):
    """A training round cannot go on: fewer successful replies than `min_train_replies`, or a client's
    process died (Ray does not bring the worker back, and the clients queued on it fail with it)."""
