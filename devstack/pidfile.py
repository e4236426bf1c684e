"""The record beside a DynamoDB Local's data folder of which process keeps its tables there.

`python -m devstack` and `make run`'s stack start, reuse and stop DynamoDB Local through this one
record, so they agree on what runs. Each port gets its own folder by default, so two stacks on two
ports never share a database. Whoever stops an instance removes the record only if it still names
that instance: a newer one started in its place keeps its record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from devstack.dynamodb_local import (
    PROJECT_ROOT,
    DynamoDBLocal,
    DynamoDBLocalError,
    answers,
    is_dynamodb_local,
    start,
    stop,
)

__all__ = [
    "LOG_FILE",
    "PID_FILE",
    "Place",
    "place_for",
    "read",
    "remove",
    "start_or_reuse",
    "stop_recorded",
    "stop_started",
    "write",
]

PID_FILE = "dynamodb.pid"
LOG_FILE = "dynamodb.log"


@dataclass(frozen=True)
class Place:
    """Where one DynamoDB Local keeps its tables, with its pid file and log beside them."""

    data_dir: Path
    in_memory: bool = False  # tables in memory; the pid file and log are still kept beside data_dir

    @property
    def pid_file(self) -> Path:
        return self.data_dir.parent / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / LOG_FILE

    def describe(self) -> str:
        """Return where the tables are, for a message."""
        return "in memory" if self.in_memory else f"data in {self.data_dir}"


def place_for(
    port: int,
    data_dir: Path | None = None,
    *,
    in_memory: bool = False,
    project_root: Path = PROJECT_ROOT,
) -> Place:
    """Return where DynamoDB Local on `port` lives: `data_dir`, else .dynamodb/<port>/data.

    Every entry point chooses through this, so `make dynamodb-start` and `make run` on one port
    find the same instance, and two ports never share tables unless told to.
    """
    chosen = project_root / ".dynamodb" / str(port) / "data" if data_dir is None else data_dir
    return Place(chosen.absolute(), in_memory)


def write(pid_file: Path, instance: DynamoDBLocal, place: Place) -> None:
    """Record the instance and where it keeps its tables, replacing the pid file whole."""
    record = {
        "pid": instance.pid,
        "port": instance.port,
        "endpoint_url": instance.endpoint_url,
        "tables": place.describe(),
    }
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    partial = pid_file.with_name(f".{pid_file.name}.{os.getpid()}")
    partial.write_text(json.dumps(record) + "\n")
    partial.replace(pid_file)


def recorded(pid_file: Path) -> DynamoDBLocal | None:
    """Return the instance the pid file names, alive or not, or None if there is no valid record."""
    try:
        record = json.loads(pid_file.read_text())
        return DynamoDBLocal(int(record["port"]), int(record["pid"]), str(record["endpoint_url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _tables(pid_file: Path) -> str | None:
    """Return where the recorded instance keeps its tables, as `Place.describe` says it."""
    try:
        tables = json.loads(pid_file.read_text())["tables"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(tables)


def read(pid_file: Path) -> DynamoDBLocal | None:
    """Return the instance recorded in the pid file if it is still running, else None."""
    instance = recorded(pid_file)
    return instance if instance is not None and is_dynamodb_local(instance.pid) else None


def remove(pid_file: Path, pid: int) -> bool:
    """Remove the pid file if it names `pid`; return whether it did (another's record is kept)."""
    instance = recorded(pid_file)
    if instance is None or instance.pid != pid:
        return False
    pid_file.unlink(missing_ok=True)
    return True


def start_or_reuse(
    place: Place, port: int, project_root: Path = PROJECT_ROOT
) -> tuple[DynamoDBLocal, bool]:
    """Return the DynamoDB Local running for `place` on `port`, starting it if none does.

    The flag says whether this call started it (and so is the one to stop it). An instance recorded
    for the place on another port, or one that does not answer, is an error rather than reused.
    """
    running = read(place.pid_file)
    if running is not None:
        tables = _tables(place.pid_file)
        if tables != place.describe():
            # Another data folder (or memory) beside this one: reusing it would mix two databases.
            raise DynamoDBLocalError(
                f"DynamoDB Local (pid {running.pid}, {place.pid_file}) keeps its tables "
                f"{'elsewhere' if tables is None else tables.replace('data in', 'in', 1)}, not "
                f"{place.describe().replace('data in', 'in', 1)}: stop it first"
            )
        if running.port != port:
            raise DynamoDBLocalError(
                f"DynamoDB Local (pid {running.pid}, {place.pid_file}) already runs on "
                f"{running.endpoint_url}: stop it to use port {port}, or use port {running.port}"
            )
        if not answers(port):
            raise DynamoDBLocalError(
                f"DynamoDB Local (pid {running.pid}) is running but does not answer on "
                f"{running.endpoint_url}: stop it first"
            )
        return running, False
    data_dir = None if place.in_memory else place.data_dir
    instance = start(port, data_dir, project_root=project_root, log_path=place.log_file)
    write(place.pid_file, instance, place)
    return instance, True


def stop_started(place: Place, instance: DynamoDBLocal) -> None:
    """Stop an instance this process started, and its record unless a newer instance replaced it."""
    stop(instance)
    remove(place.pid_file, instance.pid)


def stop_recorded(place: Place) -> DynamoDBLocal | None:
    """Stop the instance recorded for `place`; return it, or None if none was running."""
    instance = recorded(place.pid_file)
    if instance is None:
        return None
    alive = is_dynamodb_local(instance.pid)
    if alive:
        stop(instance.pid)
    remove(place.pid_file, instance.pid)  # a stale record goes too
    return instance if alive else None
