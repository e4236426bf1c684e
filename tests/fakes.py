"""Test doubles every test shares: fake AWS settings, hand-written runs, stores that misbehave."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from similarity.space import SPACE_FILE, ModelSpace
from store import (
    Neighbour,
    NeighbourList,
    NeighbourStore,
    Run,
    StoreUnavailableError,
    new_run_id,
)
from store.artifacts import Artifact, ArtifactError, ArtifactStore
from store.memory import MemoryStore

T = TypeVar("T")

# Credentials no AWS account accepts, and no shared config file: a test never reaches real AWS.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def aws_env(endpoint_url: str | None = None, **extra: str) -> dict[str, str]:
    """Return this process's environment without its AWS settings, plus fake ones and `extra`.

    For a child process (generator, server) that must talk to DynamoDB Local at `endpoint_url`.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_AWS)
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint_url
    env.update(extra)
    return env


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll until the condition is neither None nor False; return it, or fail naming it."""
    deadline = time.monotonic() + timeout
    while (found := condition()) is None or found is False:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)
    return found


class Clock:
    """Seconds that pass only when a test says so (``clock.now += 60``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# {user: [(neighbour, score), ...]}; an entry may add whether the match is mutual (neighbour,
# score, True).
Lists = Mapping[int, list[tuple[int, float]] | list[tuple[int, float, bool]]]


def publish_lists(
    store: NeighbourStore,
    lists: Lists,
    model_handle: str = "interests",
    *,
    shards: int = 4,
    top_n: int | None = None,
    generated_at: str = "2026-11-23T10:00:00Z",
    quality: dict[str, Any] | None = None,
    export: dict[str, Any] | None = None,
    artifact: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Run:
    """Publish one run of hand-written lists ({user: [(neighbour, score), ...]}, an entry maybe
    with its mutual flag); return it.

    The run's `top_n` (neighbours stored per user) is the longest list unless given.
    """
    longest = max((len(neighbours) for neighbours in lists.values()), default=0)
    run = Run(
        model_handle,
        run_id or new_run_id(),
        generated_at,
        top_n=top_n or longest or 1,
        shards=shards,
        quality=quality,
        export=export,
        artifact=artifact,
    )
    store.begin_run(run)
    written = store.write_lists(
        run,
        [
            NeighbourList(user, tuple(Neighbour(*entry) for entry in neighbours))
            for user, neighbours in lists.items()
        ],
    )
    assert written == len(lists)
    return store.publish(run, expected_users=len(lists))


class SpaceArtifacts:
    """An artifact store that holds spaces in memory and writes one into the fetch cache the first
    time it is fetched (as the S3 store downloads into it); a run id in `broken` fails to fetch
    with its error. `fetches` counts the fetches."""

    def __init__(self) -> None:
        self.spaces: dict[str, ModelSpace] = {}
        self.broken: dict[str, ArtifactError] = {}
        self.fetches = 0

    def hold(self, space: ModelSpace, run_id: str) -> Artifact:
        uri = f"file:///held/{space.model_handle}/{run_id}"
        self.spaces[uri] = space
        return Artifact(uri=uri, sha256="0" * 64, bytes=0)

    def fetch(self, artifact: Artifact, cache: Path) -> Path:
        self.fetches += 1
        model_handle, run_id = artifact.uri.split("/")[-2:]
        if run_id in self.broken:
            error = self.broken[run_id]
            raise type(error)(*error.args)
        folder = cache / model_handle / run_id
        if not (folder / SPACE_FILE).is_file():
            self.spaces[artifact.uri].write(folder)
        return folder


def space_lists(space: ModelSpace, top_n: int = 5) -> dict[int, list[tuple[int, float]]]:
    """Return every user's exact neighbours in a space, as the generator would store them."""
    lists = {}
    for row, handle in enumerate(space.handles.tolist()):
        found = space.search(space.row(row), top_n, space.users, exclude=row)
        lists[int(handle)] = [(m.user_handle, m.score) for m in found]
    return lists


def with_mutual(
    lists: Mapping[int, list[tuple[int, float]]],
) -> dict[int, list[tuple[int, float, bool]]]:
    """Return hand-written lists with each entry marked mutual as the generator marks it: when
    the neighbour's own list holds the user."""
    listed = {user: {h for h, _ in neighbours} for user, neighbours in lists.items()}
    return {
        user: [(h, s, user in listed.get(h, ())) for h, s in neighbours]
        for user, neighbours in lists.items()
    }


def publish_space(
    store: NeighbourStore,
    artifacts: ArtifactStore | SpaceArtifacts | None,
    space: ModelSpace,
    *,
    top_n: int = 5,
    lists: Lists | None = None,
    with_artifact: bool = True,
) -> Run:
    """Publish a run of a space: its users' exact lists (unless given) and, when `with_artifact`,
    the space as the run's artifact in `artifacts`; return the run."""
    run_id = new_run_id()
    artifact = None
    if with_artifact and isinstance(artifacts, SpaceArtifacts):
        artifact = artifacts.hold(space, run_id)
    elif with_artifact and artifacts is not None:
        folder = artifacts.stage(space.model_handle, run_id)
        space.write(folder)
        artifact = artifacts.put(space.model_handle, run_id, folder)
    return publish_lists(
        store,
        with_mutual(space_lists(space, top_n)) if lists is None else lists,
        space.model_handle,
        top_n=top_n,
        artifact=None if artifact is None else artifact.describe(),
        run_id=run_id,
    )


class CountingStore(MemoryStore):
    """A memory store that counts the run pointers and the neighbour lists read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.pointer_reads = 0
        self.list_reads = 0

    def current_run(self, model_handle: str) -> Run | None:
        self.pointer_reads += 1
        return super().current_run(model_handle)

    def get_list(self, run: Run, user_handle: int) -> NeighbourList | None:
        self.list_reads += 1
        return super().get_list(run, user_handle)


class DownStore(MemoryStore):
    """A memory store whose reads fail as if DynamoDB could not be reached, while `up` is False."""

    def __init__(self, up: bool = False) -> None:
        super().__init__()
        self.up = up

    def _check(self) -> None:
        if not self.up:
            raise StoreUnavailableError("connect timeout")

    def current_run(self, model_handle: str) -> Run | None:
        self._check()
        return super().current_run(model_handle)

    def current_runs(self) -> dict[str, Run]:
        self._check()
        return super().current_runs()

    def get_list(self, run: Run, user_handle: int) -> NeighbourList | None:
        self._check()
        return super().get_list(run, user_handle)


class BrokenStore:
    """A store with a bug: every call raises an error whose text must never reach a client."""

    def __getattr__(self, name: str) -> Any:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"secret internals of {name}")

        return broken


def unreachable_s3() -> Any:
    """Return an S3 client for a loopback port nothing listens on, retrying nothing."""
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 1}),
    )
