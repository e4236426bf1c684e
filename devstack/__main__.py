"""Start, stop or check the DynamoDB Local of a development stack (`make dynamodb-start`/`-stop`).

    python -m devstack start|stop|status [--port P] [--data-dir D | --in-memory] [--env-file F]

The one place in `devstack/` that reads the environment: DYNAMODB_PORT (default 8000) and
DYNAMODB_DATA_DIR (default `.dynamodb/<port>/data`), from the process environment or `.env`, as
`run_server.py up` reads them, so that `make dynamodb-start` and `make run` find the same instance.
The stack itself is `run_server.py up`: it needs the server's settings, which only it reads.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dotenv import dotenv_values

from config import ConfigError, dynamodb_local_settings
from devstack.dynamodb_local import PROJECT_ROOT, DynamoDBLocalError, answers
from devstack.pidfile import place_for, read, start_or_reuse, stop_recorded

NOT_RUNNING = 3  # the LSB exit status of `status` for "not running"


def port_number(text: str) -> int:
    """Parse a TCP port number (1 to 65535)."""
    if not (text.isdigit() and 0 < int(text) < 65536):
        raise argparse.ArgumentTypeError(f"expected a port number (1 to 65535), got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    top = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Start, stop or check DynamoDB Local for development (pid file and log "
        "beside the data folder, by default .dynamodb/<port>/).",
    )
    top.add_argument("command", choices=["start", "stop", "status"])
    top.add_argument(
        "--port",
        type=port_number,
        help="port to listen on (default: $DYNAMODB_PORT or 8000)",
    )
    storage = top.add_mutually_exclusive_group()
    storage.add_argument(
        "--data-dir",
        type=Path,
        help="where tables are kept (default: $DYNAMODB_DATA_DIR or .dynamodb/<port>/data)",
    )
    storage.add_argument("--in-memory", action="store_true", help="keep tables in memory only")
    top.add_argument(
        "--env-file",
        type=Path,
        default=PROJECT_ROOT / ".env",
        help="settings file; variables already set win (default: .env)",
    )
    return top


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    """Run the `start`, `stop` or `status` command and return the exit status."""
    top = parser()
    args = top.parse_args(argv)
    settings = {k: v for k, v in dotenv_values(args.env_file).items() if v is not None}
    try:
        port, data_dir = dynamodb_local_settings({**settings, **env})
    except ConfigError as error:
        top.error(str(error))
    port = args.port or port
    place = place_for(port, args.data_dir or data_dir, in_memory=args.in_memory)

    if args.command == "status":
        running = read(place.pid_file)
        if running is None:
            print(f"DynamoDB Local is not running (no live process in {place.pid_file})")
            return NOT_RUNNING
        if not answers(running.port):
            print(f"DynamoDB Local (pid {running.pid}) does not answer on {running.endpoint_url}")
            return 1
        print(f"DynamoDB Local running on {running.endpoint_url} (pid {running.pid})")
        return 0

    if args.command == "stop":
        stopped = stop_recorded(place)
        if stopped is None:
            print(f"DynamoDB Local is not running (no live process in {place.pid_file})")
        else:
            print(f"DynamoDB Local stopped (pid {stopped.pid})")
        return 0

    try:
        instance, started = start_or_reuse(place, port)
    except DynamoDBLocalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if started:
        print(
            f"DynamoDB Local running on {instance.endpoint_url} (pid {instance.pid}, "
            f"{place.describe()})"
        )
    else:
        print(f"DynamoDB Local already running on {instance.endpoint_url} (pid {instance.pid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
