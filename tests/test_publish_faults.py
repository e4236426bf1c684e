"""Publishing under faults, against DynamoDB Local: nothing partial is ever served, nothing is lost.

* DynamoDB answering with unprocessed items or throttling errors: retried with backoff; if that
  lasts, the run fails loudly, saying why, and is not published.
* A generator killed at chosen points (tests/kill_points.py): during writes, between the last write
  and the pointer flip, during cleanup. The server keeps answering from a complete run throughout,
  and the next run succeeds and deletes what the dead one left.
* Two generators at once: the newer run ends up current.

The generator runs in subprocesses (each costs a few seconds of imports), so the killed-generator
story is told in one test, run after run on the same tables.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from devstack.dynamodb_local import DynamoDBLocal
from generator import pipeline
from generator.tables import Tables, load_tables
from server import Settings, create_app
from store import IncompleteWriteError, NeighbourList, Run, RunStatus
from store.dynamo import DynamoStore
from store.memory import MemoryStore
from tests.fakes import aws_env

pytestmark = [pytest.mark.dynamodb_local]

ROOT = Path(__file__).resolve().parents[1]
USERS = 400  # 16 batches of 25 lists
TAGS = [f"tag{t}" for t in range(40)]
RUN_ID = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{6}")


def write_export(folder: Path, seed: int = 0) -> Path:
    """Write a small interests export where every user follows 3 to 6 of 40 tags."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_handle,interest_tag,date_followed"]
    for user in range(1, USERS + 1):
        for tag in rng.choice(TAGS, size=int(rng.integers(3, 7)), replace=False):
            lines.append(f"{user},{tag},2017-06-27")
    (folder / "user_interests.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def tables(export: Path) -> Tables:
    return load_tables(export)


@pytest.fixture(scope="module")
def expected(tables: Tables) -> dict[int, NeighbourList]:
    """Every user's list as the generator computes it, published to memory: the reference."""
    store = MemoryStore()
    pipeline.run(tables, store, ["interests"], top_n_stored=5, threads=1)
    run = store.current_run("interests")
    assert run is not None
    return {u: found for u in range(1, USERS + 1) if (found := store.get_list(run, u))}


# -- unprocessed items and throttling, in process -----------------------------------------------


class FlakyClient:
    """A DynamoDB client where each batch of lists fails its first `failures` writes (-1: all).

    ``unprocessed``: half the items are written, the rest come back as UnprocessedItems.
    ``throttling``: the call is refused with ProvisionedThroughputExceededException.
    A batch is known by its last item, which stays in every retry of it, so the faults each batch
    meets do not depend on how the writer threads interleave.
    """

    def __init__(self, client: Any, mode: str, failures: int) -> None:
        self.client = client
        self.mode = mode
        self.failures = failures
        self.failed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_write_item(self, **kwargs: Any) -> Any:
        (table, requests), *_ = kwargs["RequestItems"].items()
        last = requests[-1]["PutRequest"]["Item"]
        batch = f"{last['pk']['S']}/{last['user_handle']['N']}"
        with self._lock:
            failing = self.failures < 0 or self.failed.get(batch, 0) < self.failures
            self.failed[batch] = self.failed.get(batch, 0) + failing
        if not failing:
            return self.client.batch_write_item(**kwargs)
        if self.mode == "throttling":
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error}, "BatchWriteItem")
        half = len(requests) // 2
        if half:
            answer = self.client.batch_write_item(RequestItems={table: requests[:half]})
            assert not answer.get("UnprocessedItems")
        return {"UnprocessedItems": {table: requests[half:]}}


@dataclass
class Waits:
    """A store's sleep: records the backoff waits it is asked for, in seconds, and returns."""

    seconds: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


BACKOFF = 0.001  # the first wait; each retry of the same batch waits twice as long


def longest(low: float, high: float) -> float:
    """A jitter that always picks the longest wait allowed, so the waits are known."""
    return high


def flaky_store(
    local_store: DynamoStore, mode: str, failures: int
) -> tuple[DynamoStore, FlakyClient, Waits]:
    """Return a store on DynamoDB Local whose every call goes through a FlakyClient."""
    client = FlakyClient(local_store.client, mode, failures)
    waits = Waits()
    store = DynamoStore(
        client,
        table_prefix=local_store.table_prefix,
        writers=4,
        max_write_attempts=6,
        backoff_base=BACKOFF,
        backoff_cap=1.0,
        sleep=waits,
        jitter=longest,
    )
    return store, client, waits


def served(store: DynamoStore, users: Iterator[int] | range) -> dict[int, Any]:
    """Return what the API answers for each user, over the store (pointer read every time)."""
    client = create_app(store, Settings(pointer_cache_seconds=0)).test_client()
    return {u: client.get(f"/similar-users/{u}?top_n=5").json for u in users}


def assert_run_holds(store: DynamoStore, run: Run, expected: dict[int, NeighbourList]) -> None:
    """Assert the run holds exactly the expected list of every user: nothing lost, nothing extra."""
    assert run.user_count == len(expected)
    for user in range(1, USERS + 1):
        assert store.get_list(run, user) == expected.get(user)


@pytest.mark.parametrize("mode", ["unprocessed", "throttling"])
def test_passing_faults_are_retried_with_backoff_and_the_run_is_complete(
    local_store, tables, expected, mode
):
    store, client, waits = flaky_store(local_store, mode, failures=3)

    pipeline.run(tables, store, ["interests"], top_n_stored=5, threads=1)

    run = local_store.current_run("interests")
    assert run is not None and run.status == RunStatus.PUBLISHED
    assert_run_holds(local_store, run, expected)
    batches = len(client.failed)
    assert batches == -(-len(expected) // 25)
    assert set(client.failed.values()) == {3}
    # Each failed write was followed by a wait, twice as long after each failure of the same batch.
    assert sorted(waits.seconds) == sorted([BACKOFF, BACKOFF * 2, BACKOFF * 4] * batches)


@pytest.mark.parametrize("mode", ["unprocessed", "throttling"])
def test_lasting_faults_fail_the_run_which_is_not_published(local_store, tables, expected, mode):
    pipeline.run(tables, local_store, ["interests"], top_n_stored=5, threads=1)
    before = local_store.current_run("interests")
    answers = served(local_store, range(1, 30))
    store, _, waits = flaky_store(local_store, mode, failures=-1)

    with pytest.raises(IncompleteWriteError, match=r"still unprocessed after 6 attempts"):
        pipeline.run(tables, store, ["interests"], top_n_stored=5, threads=1)

    assert local_store.current_run("interests") == before
    failed = [r for r in local_store.runs("interests") if r.run_id != before.run_id]
    assert [r.status for r in failed] == [RunStatus.WRITING]
    assert served(local_store, range(1, 30)) == answers
    # It waited after each of its 6 attempts, and gave up.
    assert set(waits.seconds) == {BACKOFF * 2**attempt for attempt in range(6)}


def test_lasting_throttling_says_it_was_throttling(local_store, tables):
    store, _, _ = flaky_store(local_store, "throttling", failures=-1)

    with pytest.raises(IncompleteWriteError, match="ProvisionedThroughputExceededException"):
        pipeline.run(tables, store, ["interests"], top_n_stored=5, threads=1)


# -- the generator killed, or failing, as a process ---------------------------------------------


@dataclass
class Generator:
    """Run the generator (through tests/kill_points.py) against one DynamoDB Local and prefix."""

    dynamodb: DynamoDBLocal
    prefix: str
    export: Path

    def env(self, **extra: str) -> dict[str, str]:
        settings = {
            "DYNAMODB_TABLE_PREFIX": self.prefix,
            "DYNAMODB_WRITERS": "4",
            "GENERATOR_THREADS": "1",
            "LOG_LEVEL": "INFO",
            "KILL_POINT": "",
            "STORE_FAULT": "",
        }
        return aws_env(self.dynamodb.endpoint_url, **{**settings, **extra})

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(ROOT / "tests" / "kill_points.py"),
            "generate",
            "--data-dir",
            str(self.export),
            "--models",
            "interests",
            "--top-n",
            "5",
        ]

    def start(self, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env(**extra),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self, **extra: str) -> subprocess.CompletedProcess[str]:
        process = self.start(**extra)
        stdout, stderr = process.communicate(timeout=180)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def store(self) -> DynamoStore:
        return DynamoStore.connect(
            table_prefix=self.prefix, region="us-east-1", endpoint_url=self.dynamodb.endpoint_url
        )


@pytest.fixture
def generator(dynamodb_local, table_prefix, export) -> Generator:
    return Generator(dynamodb_local, table_prefix, export)


class Watcher:
    """Ask the API over the store for random users, non-stop, while a generator runs."""

    def __init__(self, store: DynamoStore, seed: int) -> None:
        self.client = create_app(store, Settings(pointer_cache_seconds=0)).test_client()
        self.rng = random.Random(seed)
        self.answers: list[tuple[int, int, str | None, list[Any] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            user = self.rng.randint(1, USERS)
            answer = self.client.get(f"/similar-users/{user}?top_n=1000")
            data = answer.json.get("data", {}) if answer.status_code == 200 else {}
            self.answers.append(
                (user, answer.status_code, data.get("run_id"), data.get("similar_users"))
            )
            time.sleep(0.005)  # leave the machine's two cores to the generator and DynamoDB

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def assert_only_complete_runs(self, store: DynamoStore, allowed: set[str]) -> None:
        """Assert every answer was a 200 from an allowed run, equal to what that run holds."""
        assert self.answers, "the watcher asked nothing"
        runs = {r.run_id: r for r in store.runs("interests")}
        for user, status, run_id, similar in self.answers:
            assert status == 200, (user, status)
            assert run_id in allowed, f"answered from run {run_id}, allowed {allowed}"
            stored = store.get_list(runs[run_id], user)
            assert stored is not None
            assert similar == [
                {"user_handle": n.user_handle, "score": n.score, "mutual": n.mutual}
                for n in stored.neighbours
            ]


def results_per_run(store: DynamoStore) -> dict[str, int]:
    """Count result items per run id in the whole results table (small here: one test's tables)."""
    counts: dict[str, int] = {}
    kwargs: dict[str, Any] = {"TableName": store.results_table, "ProjectionExpression": "pk"}
    while True:
        page = store.client.scan(**kwargs)
        for item in page["Items"]:
            run_id = item["pk"]["S"].split("#")[1]
            counts[run_id] = counts.get(run_id, 0) + 1
        if "LastEvaluatedKey" not in page:
            return counts
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def published(done: subprocess.CompletedProcess[str]) -> str:
    """Return the run id a generator run published (its log says so)."""
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(rf"published run ({RUN_ID.pattern})", done.stderr)
    assert found, done.stderr[-3000:]
    return found.group(1)


@pytest.mark.slow
def test_a_generator_killed_at_any_point_never_exposes_a_partial_run_and_the_next_cleans_up(
    generator, expected
):
    store = generator.store()
    rng = random.Random(20261123)
    first = published(generator.run())

    # A store that keeps throttling: the run fails, saying why, and is not published.
    done = generator.run(STORE_FAULT="throttling")
    assert done.returncode == 1
    assert "still unprocessed after 8 attempts" in done.stderr
    assert "Traceback" not in done.stderr
    assert store.current_run("interests").run_id == first

    # During writes: at a random batch of the 16.
    point = f"write:{rng.randint(2, 15)}"
    with Watcher(store, 1) as watcher:
        dead = generator.run(KILL_POINT=point)
    assert dead.returncode == -9, dead.stderr[-3000:]
    watcher.assert_only_complete_runs(store, {first})
    partial = max(store.runs("interests"), key=lambda r: r.run_id)
    assert partial.status == RunStatus.WRITING
    assert 0 < results_per_run(store)[partial.run_id] < len(expected)

    # Between the last write and the pointer flip: the run is whole but must stay invisible.
    with Watcher(store, 2) as watcher:
        dead = generator.run(KILL_POINT="publish")
    assert dead.returncode == -9, dead.stderr[-3000:]
    watcher.assert_only_complete_runs(store, {first})
    whole = max(store.runs("interests"), key=lambda r: r.run_id)
    assert whole.status == RunStatus.WRITING
    assert results_per_run(store)[whole.run_id] == len(expected)
    assert store.current_run("interests").run_id == first
    assert len(store.runs("interests")) == 4  # first, throttled, killed while writing, whole

    # The next run publishes; the three dead runs are kept while a slower generator could still be
    # writing them (a day by default), and deleted once older than ABANDONED_RUN_SECONDS. The
    # first stays, for a rollback.
    second = published(generator.run(ABANDONED_RUN_SECONDS="1"))
    assert [r.run_id for r in store.runs("interests")] == [first, second]
    assert set(results_per_run(store)) == {first, second}

    # During cleanup: the third run is published, then dies while deleting the first one.
    with Watcher(store, 3) as watcher:
        dead = generator.run(KILL_POINT=f"cleanup:{rng.randint(2, 12)}")
    assert dead.returncode == -9, dead.stderr[-3000:]
    third = store.current_run("interests").run_id
    assert third not in (first, second)
    watcher.assert_only_complete_runs(store, {second, third})
    assert_run_holds(store, store.current_run("interests"), expected)
    assert 0 < results_per_run(store)[first] < len(expected)  # half deleted

    # The next run finishes the dead cleanup: only the last two runs remain, whole.
    fourth = published(generator.run())
    assert [r.run_id for r in store.runs("interests")] == [third, fourth]
    assert results_per_run(store) == {third: len(expected), fourth: len(expected)}
    assert_run_holds(store, store.current_run("interests"), expected)


@pytest.mark.slow
def test_two_generators_publishing_at_once_end_with_the_newer_run_current(generator):
    store = generator.store()

    both = [generator.start(), generator.start()]
    outputs = [process.communicate(timeout=180) for process in both]

    newest = max(run_id for _, stderr in outputs for run_id in RUN_ID.findall(stderr))
    winner = next(i for i, (_, stderr) in enumerate(outputs) if f"published run {newest}" in stderr)
    assert both[winner].returncode == 0
    assert store.current_run("interests").run_id == newest
    # The other one published first and was superseded, or failed saying why.
    loser, (_, said) = both[1 - winner], outputs[1 - winner]
    assert "Traceback" not in said
    assert loser.returncode == 0 or re.search("not older than|never begun|cannot record", said)
    print(f"two generators: the newer run {newest} is current; the other exited {loser.returncode}")
