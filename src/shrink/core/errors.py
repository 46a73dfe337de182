"""Errors the pipeline raises for bad input: each names the file, line or config key at fault."""


class ShrinkError(Exception):
    """Base class: a message a user can act on, without a traceback hunt."""


class DataError(ShrinkError):
    """Bad input data; the message names the file and line."""

    def __init__(self, path, line, message):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


class ConfigError(ShrinkError):
    """A bad configuration value; the message names the key."""

    def __init__(self, key, message, kind="config key"):
        self.key = key
        super().__init__(f"{kind} '{key}': {message}")


class TrainingError(ShrinkError):
    """Training went wrong in a way that must stop the run (NaN loss, nothing to train on)."""


def reject_unknown_keys(settings, dataclass_type, prefix):
    """ConfigError naming `prefix.key` for the first key of `settings` that `dataclass_type` has no field for."""
    from dataclasses import fields

    known = sorted(f.name for f in fields(dataclass_type))
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", f"unknown key (known: {', '.join(known)})")


def require_at_least_one(settings, keys, prefix):
    """ConfigError naming `prefix.key` for the first of `keys` whose value on `settings` is below 1."""
    for key in keys:
        if getattr(settings, key) < 1:
            raise ConfigError(f"{prefix}.{key}", f"must be at least 1, got {getattr(settings, key)}")


class StorageError(ShrinkError):
    """The results could not be written: disk full, read-only filesystem or no permission."""

    def __init__(self, path, errno_code, message):
        self.path, self.errno = str(path), errno_code
        super().__init__(message)
