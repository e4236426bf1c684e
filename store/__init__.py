"""The contract between the generator and the server: neighbour lists, runs and the store protocol.

A *run* is one complete set of neighbour lists for one model, written under a fresh `run_id`, made
visible only when the model's pointer is moved to it. The server reads the pointer, then one item.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

__all__ = [
    "ABANDONED_AFTER",
    "DEFAULT_SHARDS",
    "SCORE_DECIMALS",
    "IncompleteWriteError",
    "Neighbour",
    "NeighbourList",
    "NeighbourStore",
    "Run",
    "RunStatus",
    "StaleRunError",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailableError",
    "new_run_id",
    "rollback_target",
    "run_started",
    "runs_to_delete",
    "shard_of",
]

# Result items of one run are spread over this many partition keys so that bulk writes and hot reads
# are not limited by a single DynamoDB partition. Recorded per run, so it can change between runs.
DEFAULT_SHARDS = 16

# Scores are cosine similarities rounded to this many decimals, both when ranked and when stored, so
# that neighbours with equal stored scores are always ordered by handle.
SCORE_DECIMALS = 6


class StoreError(Exception):
    """Something went wrong in the neighbour store."""


class StoreConfigError(StoreError):
    """The store cannot be used as configured (e.g. no AWS region is set); the message says how."""


class StoreUnavailableError(StoreError):
    """The store could not be reached, or did not answer in time."""


class StaleRunError(StoreError):
    """A run could not be published because a newer run is already current."""


class IncompleteWriteError(StoreError):
    """Some neighbour lists of a run could not be written, so the run must not be published."""


class RunStatus:
    """The life of a run: writing → published (→ rolled_back or retired) → deleting; a dead
    writer's stays writing. A retired run was current until an export that cannot build its model
    replaced it. A run is marked deleting, only while it is not current, before any of its lists
    is deleted, and nothing goes back to it after: a cleanup that dies half-way leaves a run that
    no rollback can land on and that the next cleanup finishes deleting."""

    WRITING = "writing"
    PUBLISHED = "published"
    ROLLED_BACK = "rolled_back"
    RETIRED = "retired"
    DELETING = "deleting"


@dataclass(frozen=True)
class Neighbour:
    """One similar user, how similar they are (cosine, 0 < score ≤ 1), and whether the match is
    mutual: each of the two users is in the other's list of the same run."""

    user_handle: int
    score: float
    mutual: bool = False


@dataclass(frozen=True)
class NeighbourList:
    """The ranked similar users of one user under one model: best first, ties by handle."""

    user_handle: int
    neighbours: tuple[Neighbour, ...]


@dataclass(frozen=True)
class Run:
    """One generation of one model's neighbour lists."""

    model_handle: str
    run_id: str
    generated_at: str
    status: str = RunStatus.WRITING
    top_n: int = 0
    shards: int = DEFAULT_SHARDS
    user_count: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    # How well the run's model did on its own export's hold-out (None: not measured).
    quality: dict[str, Any] | None = None
    # The export the run was made from: {"id": ..., "files": {name: {"bytes", "sha256"}}}.
    export: dict[str, Any] | None = None
    # The run's model artifact, as `store.artifacts.Artifact.describe` gives it:
    # {"uri": ..., "sha256": <of its MANIFEST.json>, "bytes": ...} (None: the run has none).
    artifact: dict[str, Any] | None = None


def new_run_id(now: datetime | None = None) -> str:
    """Return a run id that sorts after every earlier one (UTC time to the µs, random tail)."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def shard_of(user_handle: int, shards: int) -> int:
    """Return the shard that holds a user's result item."""
    return user_handle % shards


class NeighbourStore(Protocol):
    """Where runs of neighbour lists are written, published and read."""

    def ensure_tables(self) -> None:
        """Create what the store keeps runs in, if it does not exist yet (a writer calls this)."""

    def begin_run(self, run: Run) -> None:
        """Record a new run as being written."""

    def write_lists(self, run: Run, lists: Iterable[NeighbourList], part: str | None = None) -> int:
        """Write neighbour lists under the run; return how many; raise IncompleteWriteError.

        ``part`` names the share of the run's lists this call writes (a Spark partition's): a
        call that writes the same part again (a retried task) replaces that part's count
        instead of adding to it, so the run still counts each list once. Calls without a part
        add up.
        """

    def publish(self, run: Run, expected_users: int) -> Run:
        """Check the run is complete and make it current, recording its artifact if it names one;
        raise StaleRunError if a newer one is."""

    def current_run(self, model_handle: str) -> Run | None:
        """Return the model's published run, or None."""

    def current_runs(self) -> dict[str, Run]:
        """Return every model's published run, by model handle."""

    def runs(self, model_handle: str) -> list[Run]:
        """Return every recorded run of the model, oldest first."""

    def get_list(self, run: Run, user_handle: int) -> NeighbourList | None:
        """Return a user's neighbour list in the run, or None if the user has none."""

    def delete_run(self, run: Run) -> int:
        """Delete a run that is not current, with its lists; return how many lists were deleted.

        The run is first marked deleting, atomically with a check that it is not current (else
        StoreError), so no rollback can go back to it once its lists start to go."""

    def rollback(self, model_handle: str) -> Run:
        """Make the newest earlier published run current again; mark the current one rolled back.

        Atomically with a check that the run gone back to is still published (not deleting)."""

    def retire(self, run: Run) -> bool:
        """Stop serving a model whose current run is `run` (no run is current after); return
        whether it did (False when another run is current by now)."""


def rollback_target(runs: Iterable[Run], current_run_id: str) -> Run | None:
    """Return the run a rollback from the current run goes back to: the newest earlier published."""
    earlier = [r for r in runs if r.run_id < current_run_id and r.status == RunStatus.PUBLISHED]
    return max(earlier, key=lambda r: r.run_id) if earlier else None


# A run still `writing` is taken for abandoned (and deleted by cleanup) only once it is this old:
# before that, a slower generator that began before the current run may still be writing it.
ABANDONED_AFTER = timedelta(hours=24)


def run_started(run_id: str) -> datetime | None:
    """Return when a run began, read from its id (None if the id is not one of `new_run_id`'s)."""
    try:
        return datetime.strptime(run_id[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def runs_to_delete(
    runs: Iterable[Run],
    current_run_id: str | None,
    now: datetime | None = None,
    abandoned_after: timedelta = ABANDONED_AFTER,
) -> list[Run]:
    """Return the runs that cleanup may delete, given the run that is now current.

    Kept: the current run, the newest published run before it (so a rollback has somewhere to go),
    every run newer than the current one, and older runs still being written that began less than
    ``abandoned_after`` ago (in both cases another generator may still be writing them).
    """
    if current_run_id is None:
        return []
    now = now or datetime.now(UTC)

    def in_progress(r: Run) -> bool:
        started = run_started(r.run_id)
        return (
            r.status == RunStatus.WRITING
            and started is not None
            and now - started < abandoned_after
        )

    older = [r for r in runs if r.run_id < current_run_id]
    older_published = [r for r in older if r.status == RunStatus.PUBLISHED]
    keep = {max(older_published, key=lambda r: r.run_id).run_id} if older_published else set()
    return sorted(
        (r for r in older if r.run_id not in keep and not in_progress(r)), key=lambda r: r.run_id
    )
