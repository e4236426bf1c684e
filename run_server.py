"""Command line of the API: serve it with gunicorn, look a user up, or bring the whole stack up.

    python run_server.py [serve]                    gunicorn on $HOST:$PORT (default 127.0.0.1:5000)
    python run_server.py lookup --user-handle 110 [--model-handle M] [--top-n N] [--explain]
                                [--mutual-only]
    python run_server.py lookup --profile '{"interests": ["python"]}' [--explain] [...]
    python run_server.py up [--synthetic-users N]   what `make run` does: DynamoDB Local, generator,
                                                    server, until Ctrl-C or SIGTERM

The only place (with run_generator.py) that reads the environment: settings come from the process
environment and a `.env` file (see example.env), and are passed on as plain arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import runpy
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values
from flask import Flask
from gunicorn.app.base import BaseApplication

from config import (
    AwsSettings,
    ConfigError,
    artifact_uri,
    aws_settings,
    configure_logging,
    dynamodb_local_settings,
    env_float,
    env_int,
    env_list,
    env_text,
    log_level,
    positive_int,
    s3_client,
)
from server import Settings, create_app
from server.api import lookup
from server.cache import READY_SECONDS, RESULT_CACHE_MB, STALE_IF_ERROR_SECONDS, CurrentRuns
from server.default_model import AUTO
from server.errors import STORE_UNAVAILABLE, ApiError, problem_body
from server.query import integer_or_text, loads, parse_query
from server.settings import MAX_BODY_BYTES, PROFILE_EXACT_MAX_USERS
from server.spaces import Spaces
from store import NeighbourStore, StoreConfigError, StoreError

if TYPE_CHECKING:
    from store.artifacts import ArtifactStore
    from store.dynamo import DynamoStore

ROOT = Path(__file__).resolve().parent
GUNICORN_CONF = ROOT / "server" / "gunicorn.conf.py"
DEFAULT_ENV_FILE = ROOT / ".env"
EXAMPLE_ENV_FILE = ROOT / "example.env"
DEFAULT_ARTIFACT_URI = (ROOT / "data" / "artifacts").as_uri()
DEFAULT_ARTIFACT_CACHE = "similar-users-artifacts"  # under the system's temporary folder

log = logging.getLogger("server")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server takes from the environment."""

    host: str
    port: int
    workers: int
    threads: int
    timeout: int
    log_level: str
    table_prefix: str
    aws: AwsSettings
    connect_timeout: float
    read_timeout: float
    retries: int
    settings: Settings
    artifact_uri: str  # where runs' model artifacts are read: file://FOLDER or s3://BUCKET/PREFIX
    artifact_cache_dir: Path  # where artifacts read from S3 are kept


def config_from_env(env: Mapping[str, str]) -> ServerConfig:
    """Return the server's configuration from environment variables (see example.env)."""
    workers_name = "GUNICORN_WORKERS" if env.get("GUNICORN_WORKERS") else "WEB_CONCURRENCY"
    artifact_cache_dir = Path(
        env_text(
            env, "ARTIFACT_CACHE_DIR", str(Path(tempfile.gettempdir()) / DEFAULT_ARTIFACT_CACHE)
        )
    )
    if env.get("RESULT_CACHE_LISTS", "").strip():
        # A renamed setting is never ignored in silence.
        raise ConfigError(
            "RESULT_CACHE_LISTS is no longer read: the result cache is sized in memory, "
            "RESULT_CACHE_MB (MB per worker process)"
        )
    try:
        settings = Settings(
            default_model=env_text(env, "DEFAULT_MODEL", AUTO),
            default_top_n=env_int(env, "DEFAULT_TOP_N", 5, 1, 1000),
            pointer_cache_seconds=env_float(env, "POINTER_CACHE_SECONDS", 5.0, 0, 300),
            readiness_cache_seconds=env_float(
                env, "READINESS_CACHE_SECONDS", READY_SECONDS, 0, 300
            ),
            stale_if_error_seconds=env_float(
                env, "STALE_IF_ERROR_SECONDS", STALE_IF_ERROR_SECONDS, 0, 7 * 24 * 3600
            ),
            result_cache_mb=env_float(env, "RESULT_CACHE_MB", RESULT_CACHE_MB, 0, 1_000_000),
            max_body_bytes=env_int(env, "MAX_BODY_BYTES", MAX_BODY_BYTES, 64, 16 * 1_048_576),
            retry_after_seconds=env_int(env, "RETRY_AFTER_SECONDS", 5, 1, 3600),
            api_key=env_text(env, "API_KEY", "") or None,
            cors_origins=env_list(env, "CORS_ORIGINS"),
            profile_exact_max_users=env_int(
                env, "PROFILE_EXACT_MAX_USERS", PROFILE_EXACT_MAX_USERS, 1, 10**9
            ),
            artifact_cache_dir=artifact_cache_dir,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return ServerConfig(
        host=env_text(env, "HOST", "127.0.0.1"),
        port=env_int(env, "PORT", 5000, 1, 65535),
        workers=env_int(env, workers_name, 2, 1, 64),
        threads=env_int(env, "GUNICORN_THREADS", 4, 1, 256),
        timeout=env_int(env, "GUNICORN_TIMEOUT", 30, 1, 3600),
        log_level=log_level(env),
        table_prefix=env_text(env, "DYNAMODB_TABLE_PREFIX", "similar_users"),
        aws=aws_settings(env),
        connect_timeout=env_float(env, "STORE_CONNECT_TIMEOUT_SECONDS", 0.5, 0.05, 60),
        read_timeout=env_float(env, "STORE_READ_TIMEOUT_SECONDS", 0.5, 0.05, 60),
        retries=env_int(env, "STORE_RETRIES", 1, 0, 10),
        settings=settings,
        artifact_uri=artifact_uri(env, DEFAULT_ARTIFACT_URI),
        artifact_cache_dir=artifact_cache_dir,
    )


def connect_store(config: ServerConfig) -> DynamoStore:
    """Return a DynamoDB store whose reads fail fast, so a dead store means a quick 503."""
    from store.dynamo import DynamoStore

    try:
        return DynamoStore.connect(
            table_prefix=config.table_prefix,
            region=config.aws.region,
            endpoint_url=config.aws.dynamodb_endpoint,
            credentials=config.aws.credentials,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_attempts=config.retries,  # botocore counts retries after the first attempt here
        )
    except StoreConfigError as error:
        raise ConfigError(str(error)) from None
    except Exception as error:  # say so at start, not in every request
        raise ConfigError(f"cannot create the DynamoDB client: {error}") from error


def connect_artifacts(config: ServerConfig) -> ArtifactStore:
    """Return the artifact store ARTIFACT_URI names (an S3 client is made only once needed)."""
    from store.artifacts import open_artifacts

    return open_artifacts(config.artifact_uri, lambda: s3_client(config.aws))


# What `main` gets its store from (tests hand in their own).
Connect = Callable[[ServerConfig], NeighbourStore]


# -- serve ------------------------------------------------------------------------------------


class Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
    """Run an app factory under gunicorn with server/gunicorn.conf.py and the given options."""

    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Apply the config file, then the options from the environment."""
        from_file = runpy.run_path(str(GUNICORN_CONF))
        for key, value in {**from_file, **self.options}.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        """Create the app in the worker, after the fork."""
        return self.factory()


def serve(config: ServerConfig, connect: Connect) -> int:
    """Serve the API with gunicorn until it is stopped."""
    connect(config)  # fail here, clearly, rather than in every worker
    options = {
        "bind": f"{config.host}:{config.port}",
        "workers": config.workers,
        "threads": config.threads,
        "timeout": config.timeout,
        "loglevel": config.log_level.lower(),
    }

    def app() -> Flask:  # called in each worker after the fork: its own boto3 clients
        configure_logging(config.log_level, config.aws.log_level)
        return create_app(connect(config), config.settings, artifacts=connect_artifacts(config))

    Gunicorn(app, options).run()
    return 0


# -- lookup -----------------------------------------------------------------------------------


def lookup_command(config: ServerConfig, args: argparse.Namespace, connect: Connect) -> int:
    """Print the API's answer for one user or one profile, or its problem on stderr."""
    values: dict[str, object] = {}
    if args.model_handle is not None:
        values["model_handle"] = args.model_handle
    if args.top_n is not None:
        values["top_n"] = integer_or_text(args.top_n)
    if args.explain:
        values["explain"] = True
    if args.mutual_only:
        values["mutual_only"] = True
    runs = CurrentRuns(connect(config), ttl=0)
    spaces = Spaces(
        connect_artifacts(config),
        config.settings.artifact_cache_dir,
        retry_seconds=config.settings.retry_after_seconds,
    )
    try:
        if args.profile is not None:
            values["profile"] = loads(args.profile)
        else:
            values["user_handle"] = integer_or_text(args.user_handle)
        query = parse_query(values, config.settings)
        answer = lookup(query, runs, spaces, config.settings.profile_exact_max_users)
    except ApiError as error:
        print(json.dumps(error.body(), indent=2, ensure_ascii=False), file=sys.stderr)
        return 1
    except StoreError as error:
        log.error("%s", error)
        print(json.dumps(problem_body(*STORE_UNAVAILABLE), indent=2), file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0


# -- up ---------------------------------------------------------------------------------------


def up_command(config: ServerConfig, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Bring the whole stack up (make run): DynamoDB Local, the generator, then the server."""
    from devstack.pidfile import place_for  # development only, imported when asked for
    from devstack.stack import up

    dynamodb_port, data_dir = dynamodb_local_settings(env)
    if args.state_dir is not None:  # the folder of data/, the pid file and the log
        data_dir = args.state_dir / "data"
    return up(
        host=config.host,
        port=config.port,
        dynamodb_port=dynamodb_port,
        place=place_for(dynamodb_port, data_dir),
        env=env,
        env_file=args.env_file,
        generate_runs=args.generate,
        synthetic_users=args.synthetic_users,
    )


# -- command line -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    top = argparse.ArgumentParser(
        prog="run_server.py", description="Serve the similar-users API (default: serve)."
    )
    top.add_argument(
        "--env-file",
        type=Path,
        default=DEFAULT_ENV_FILE,
        help="settings file read at start; variables already set win (default: .env)",
    )
    commands = top.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API with gunicorn on $HOST:$PORT")
    look = commands.add_parser("lookup", help="print the API's answer for one user or profile")
    asked = look.add_mutually_exclusive_group(required=True)
    asked.add_argument("--user-handle", help="the user whose similar users to find")
    asked.add_argument(
        "--profile",
        help='a newcomer\'s profile as JSON, e.g. \'{"interests": ["python"], "courses": '
        '["python-beyond-basics"], "assessments": [{"tag": "python", "score": 180}]}\'',
    )
    look.add_argument(
        "--explain", action="store_true", help="add the shared features behind each score"
    )
    look.add_argument(
        "--mutual-only",
        action="store_true",
        help="only the similar users who list the user back (not with --profile)",
    )
    look.add_argument("--model-handle", help="model to answer with (default: $DEFAULT_MODEL)")
    look.add_argument("--top-n", help="how many similar users (default: $DEFAULT_TOP_N)")
    stack = commands.add_parser(
        "up", help="run DynamoDB Local, the generator and the server until Ctrl-C (make run)"
    )
    stack.add_argument(
        "--synthetic-users",
        type=positive_int,
        help="generate from a synthetic export of N users (default: $DATA_DIR, else 10,000)",
    )
    stack.add_argument(
        "--no-generate",
        dest="generate",
        action="store_false",
        help="serve the runs already published instead of generating new ones",
    )
    stack.add_argument(
        "--state-dir",
        type=Path,
        help="folder of DynamoDB Local's data, log and pid file (default: beside "
        "$DYNAMODB_DATA_DIR, else .dynamodb/<DYNAMODB_PORT>)",
    )
    return top


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    connect: Connect = connect_store,
) -> int:
    """Run the command line with settings from `env` over --env-file's; return the exit code."""
    args = parser().parse_args(argv)
    command = args.command or "serve"
    if command == "up":
        from devstack.stack import create_env_file

        create_env_file(args.env_file, EXAMPLE_ENV_FILE)
    from_file = {k: v for k, v in dotenv_values(args.env_file).items() if v is not None}
    env = {**from_file, **env}  # variables already set win
    try:
        config = config_from_env(env)
        configure_logging(config.log_level, config.aws.log_level)
        if command == "serve":
            return serve(config, connect)
        if command == "lookup":
            return lookup_command(config, args, connect)
        return up_command(config, args, env)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
