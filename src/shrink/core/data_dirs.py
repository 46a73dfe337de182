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
