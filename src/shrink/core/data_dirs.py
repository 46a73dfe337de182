"""Data folders named by a config key or, failing that, an environment variable."""

import os
from pathlib import Path

from .errors import ConfigError


def resolve_data_dir(configured, key, env_var):
    """A data folder from the config key `key` or else the environment variable `env_var`; None if neither is set."""
    if configured:
        kind, value = "config key", configured
    elif os.environ.get(env_var):
        key, kind, value = env_var, "environment variable", os.environ[env_var]
    else:
        return None, None, None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise ConfigError(key, f"data directory '{folder}' does not exist", kind)
    return folder.resolve(), key, kind


def data_source(source, configured, key, env_var, fallback):
    """(source, folder) of a task's data section, the one way every task finds its data.

    `source` synthetic or hub: no folder. local or auto: the folder of config key `key`, else of the
    environment variable `env_var`. With neither set, local fails naming both, and auto falls back to
    `fallback`: "hub" (the task can download its data), None (the data is optional) or "error".
    """
    if source in ("synthetic", "hub"):
        return source, None
    folder, _, _ = resolve_data_dir(configured, key, env_var)
    if folder is not None:
        return "local", folder
    if source == "local" or fallback == "error":
        raise ConfigError(key, f"is not set and neither is the environment variable {env_var} "
                          f"(or set the section's source: synthetic)")
    return fallback, None
