"""Configuration errors: one line naming the key, the value and what is allowed.

The config dataclasses check their own fields with `require` as they are built, so a bad value
fails when the command line is read, before Ray or any model starts.
"""

from typing import Any


class ConfigError(ValueError):
    """A bad configuration value, as `"<key>=<value>: <what is allowed>"`."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError("key=value: allowed") unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value!r}: {allowed}")


def at_least(key: str, value: Any, low: float) -> None:
    require(value >= low, key, value, f"must be >= {low:g}")


def positive(key: str, value: Any) -> None:
    require(value > 0, key, value, "must be > 0")


def one_of(key: str, value: Any, allowed: Any) -> None:
    require(value in allowed, key, value, f"must be one of {list(allowed)}")
