"""Bounded readers of settings from an environment mapping, and logging, for the entry points.

Only `run_generator.py` and `run_server.py` read the environment; each turns it into a frozen
config with these readers, so a bad value fails at start with a one-line message naming the
setting, and nothing below the entry points ever looks at `os.environ`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

N = TypeVar("N", int, float)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def env_text(env: Mapping[str, str], name: str, default: str) -> str:
    """Read a word or path; blank counts as unset."""
    return env.get(name, "").strip() or default


def env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Read a whole number between low and high."""
    return _bounded(env, name, default, low, high, int, "a whole number")


def env_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """Read a number between low and high."""
    return _bounded(env, name, default, low, high, float, "a number")


def _bounded(
    env: Mapping[str, str],
    name: str,
    default: N,
    low: N,
    high: N,
    parse: Callable[[str], N],
    noun: str,
) -> N:
    """Read a value of `parse`'s kind between low and high; blank counts as unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {noun}, not {raw!r}") from None
    if not low <= value <= high:  # nan fails this too
        shown = "{:g}" if isinstance(value, float) else "{}"
        bounds = f"between {shown.format(low)} and {shown.format(high)}"
        raise ConfigError(f"{name} must be {bounds}, not {shown.format(value)}")
    return value


def env_choice(env: Mapping[str, str], name: str, choices: Sequence[str], default: str) -> str:
    """Read one of a few words (case-insensitive, returned in the case of `choices`)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    for choice in choices:
        if raw.casefold() == choice.casefold():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")


def env_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Read a comma-separated list (empty when unset)."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def log_level(env: Mapping[str, str]) -> str:
    """Read LOG_LEVEL, one of the standard level names (default INFO)."""
    return env_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO")


def aws_region(env: Mapping[str, str]) -> str | None:
    """Read AWS_REGION, else AWS_DEFAULT_REGION; None leaves the region to boto3's chain."""
    return env_text(env, "AWS_REGION", "") or env_text(env, "AWS_DEFAULT_REGION", "") or None


def endpoint(env: Mapping[str, str], service: str) -> str | None:
    """Read a service's endpoint (e.g. AWS_ENDPOINT_URL_DYNAMODB, else AWS_ENDPOINT_URL)."""
    name = f"AWS_ENDPOINT_URL_{service.upper()}"
    return env_text(env, name, "") or env_text(env, "AWS_ENDPOINT_URL", "") or None


def no_region(dynamodb_endpoint: str | None) -> str:
    """Say how to set the AWS region that boto3 could not find."""
    if dynamodb_endpoint is not None:
        return (
            f"no AWS region is set for the DynamoDB endpoint {dynamodb_endpoint}: set "
            "AWS_DEFAULT_REGION (any region works with DynamoDB Local, e.g. us-east-1; "
            "`cp example.env .env` sets one)"
        )
    return "no AWS region is set: set AWS_REGION or AWS_DEFAULT_REGION (e.g. us-east-1)"


def configure_logging(level: str) -> None:
    """Send log records to stderr at the given level; botocore's only from WARNING."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    quiet = max(logging.WARNING, logging.getLevelNamesMapping()[level])
    logging.getLogger("botocore").setLevel(quiet)  # it logs where credentials came from at INFO
