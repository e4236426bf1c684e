"""What the entry points share: bounded readers of their settings, and the logging set-up.

Only the entry points (`run_generator.py`, `run_server.py`, `python -m devstack`) read the
environment; each turns it into a frozen config with these readers, so a bad value fails at start
with a one-line message naming the setting, and nothing below them ever looks at `os.environ`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Read true or false (also yes/no, 1/0, on/off, in any case)."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "yes", "1", "on"):
        return True
    if raw in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def env_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Read a comma-separated list (empty when unset)."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def log_level(env: Mapping[str, str]) -> str:
    """Read LOG_LEVEL, one of the standard level names (default INFO)."""
    return env_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO")


# The AWS SDK's loggers and the HTTP library under it: at DEBUG they write request bodies, signed
# headers and where (and which) credentials were found, session tokens included.
AWS_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


@dataclass(frozen=True)
class AwsSettings:
    """Where AWS is and who we are there; what is None is left to boto3's usual chain."""

    region: str | None
    dynamodb_endpoint: str | None  # e.g. DynamoDB Local
    s3_endpoint: str | None
    credentials: tuple[str, str, str | None] | None = field(default=None, repr=False)
    # How much the AWS SDK logs (AWS_LOGGERS): WARNING unless AWS_LOG_LEVEL asks for more, since
    # below it the SDK logs secrets; never lower than LOG_LEVEL.
    log_level: str = "WARNING"


def aws_settings(env: Mapping[str, str]) -> AwsSettings:
    """Read AWS_REGION (else AWS_DEFAULT_REGION), the endpoints and the access key, if set."""
    key_id, secret = (
        env_text(env, "AWS_ACCESS_KEY_ID", ""),
        env_text(env, "AWS_SECRET_ACCESS_KEY", ""),
    )
    return AwsSettings(
        region=env_text(env, "AWS_REGION", "") or env_text(env, "AWS_DEFAULT_REGION", "") or None,
        dynamodb_endpoint=_endpoint(env, "DYNAMODB"),
        s3_endpoint=_endpoint(env, "S3"),
        credentials=(key_id, secret, env_text(env, "AWS_SESSION_TOKEN", "") or None)
        if key_id and secret
        else None,
        log_level=env_choice(env, "AWS_LOG_LEVEL", LOG_LEVELS, "WARNING"),
    )


def _endpoint(env: Mapping[str, str], service: str) -> str | None:
    """Read a service's endpoint: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL."""
    return (
        env_text(env, f"AWS_ENDPOINT_URL_{service}", "")
        or env_text(env, "AWS_ENDPOINT_URL", "")
        or None
    )


def s3_client(aws: AwsSettings) -> Any:
    """Return a new S3 client for the settings' region, endpoint and access key."""
    import boto3

    key_id, secret, token = aws.credentials or (None, None, None)
    return boto3.client(
        "s3",
        region_name=aws.region,
        endpoint_url=aws.s3_endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def artifact_uri(env: Mapping[str, str], default: str) -> str:
    """Read ARTIFACT_URI, where runs' model artifacts are kept: file://FOLDER or
    s3://BUCKET[/PREFIX]."""
    from store.artifacts import open_artifacts

    uri = env_text(env, "ARTIFACT_URI", default)
    try:
        open_artifacts(uri, lambda: None)  # only parses: touches neither the disk nor S3
    except ValueError as error:
        raise ConfigError(f"ARTIFACT_URI: {error}") from None
    return uri


def dynamodb_local_settings(env: Mapping[str, str]) -> tuple[int, Path | None]:
    """Read DYNAMODB_PORT (default 8000) and DYNAMODB_DATA_DIR (None: the port's own folder)."""
    data_dir = env_text(env, "DYNAMODB_DATA_DIR", "")
    return env_int(env, "DYNAMODB_PORT", 8000, 1, 65535), Path(data_dir) if data_dir else None


def positive_int(text: str) -> int:
    """Parse a command-line whole number of at least 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure_logging(level: str, aws_level: str = "WARNING") -> None:
    """Send log records to stderr at `level`; the AWS SDK's (AWS_LOGGERS) at `aws_level` or
    `level`, whichever is higher, so LOG_LEVEL=DEBUG alone never logs the SDK's secrets."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    levels = logging.getLevelNamesMapping()
    for name in AWS_LOGGERS:
        logging.getLogger(name).setLevel(max(levels[aws_level], levels[level]))
