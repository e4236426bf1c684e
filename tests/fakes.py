"""Test doubles every test shares: fake AWS settings, hand-written runs, stores that misbehave."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from store import (
    Neighbour,
    NeighbourList,
    NeighbourStore,
    Run,
    StoreUnavailableError,
    new_run_id,
)
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


Lists = Mapping[int, list[tuple[int, float]]]


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
) -> Run:
    """Publish one run of hand-written lists ({user: [(neighbour, score), ...]}); return it.

    The run's `top_n` (neighbours stored per user) is the longest list unless given.
    """
    longest = max((len(neighbours) for neighbours in lists.values()), default=0)
    run = Run(
        model_handle,
        new_run_id(),
        generated_at,
        top_n=top_n or longest or 1,
        shards=shards,
        quality=quality,
        export=export,
    )
    store.begin_run(run)
    written = store.write_lists(
        run,
        [
            NeighbourList(user, tuple(Neighbour(h, s) for h, s in neighbours))
            for user, neighbours in lists.items()
        ],
    )
    assert written == len(lists)
    return store.publish(run, expected_users=len(lists))


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
