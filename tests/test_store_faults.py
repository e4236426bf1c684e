"""The server under a steady loopback load while its DynamoDB Local is killed, hung and restarted.

Every answer must come and be a correct 200 (the list the store holds) or a 503 with Retry-After,
never a 500 or a wrong list; readiness says 503 while the store is down; and the server recovers by
itself, without a restart. Each phase lasts until what it is there for has been seen: the test
waits on answers, not on the clock. It prints the figures it measured, for the README's
"Reliability" section; no assertion depends on them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from devstack import dynamodb_local as local
from devstack.stack import wait_until_ready
from generator import pipeline
from generator.tables import load_tables
from server.cache import READY_SECONDS
from server.security import SECURITY_HEADERS
from store.dynamo import DynamoStore
from tests.fakes import aws_env, wait_for

pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
USERS = 300
TAGS = [f"tag{t}" for t in range(30)]
KEY = "fault-test-key-0123456789"
CONNECT_TIMEOUT = READ_TIMEOUT = 0.5
RETRIES = 1
# The longest a request should take while the store is down or hung, printed beside the slowest
# answer measured: a request waits on at most one store read that fails (the run pointer, or if
# that answered, the list), tried 1 + RETRIES times, each within the connect or read timeout, with
# botocore's backoff (under 1 s) before a retry.
BOUND = (1 + RETRIES) * (CONNECT_TIMEOUT + READ_TIMEOUT) + RETRIES * 1.0
# An answer that has not come by then is a failure: the store's timeouts did not hold.
CLIENT_TIMEOUT = 15.0
CLIENTS = 4
PAUSE = 0.02  # between two requests of one client: about 100 requests per second in all
MAX_REQUESTS = 20_000
STEADY = 20  # answers in a row, all correct, that show the server has recovered
PHASE_TIMEOUT = 60.0  # the longest a phase may wait for what it is there for


def get(port: int, path: str, timeout: float = CLIENT_TIMEOUT) -> tuple[int, dict[str, str], Any]:
    """GET a loopback path with the API key; return status, headers and decoded JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"X-API-Key": KEY})
        response = connection.getresponse()
        raw = response.read()
        return response.status, dict(response.getheaders()), json.loads(raw) if raw else None
    finally:
        connection.close()


@dataclass
class Answer:
    """One request of the load and what came back."""

    sent: float  # seconds since the load started
    seconds: float
    user: int
    status: int  # 0: no answer (connection error or client timeout)
    verdict: str  # "ok", "503", or what was wrong


@dataclass
class Load:
    """A few clients asking for random users at a steady pace until stopped."""

    port: int
    expected: dict[int, list[dict[str, Any]]]
    run_id: str
    answers: list[Answer] = field(default_factory=list)
    readiness: list[tuple[float, float, int]] = field(default_factory=list)  # sent, back, status
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started

    def judge(self, user: int, status: int, headers: dict[str, str], body: Any) -> str:
        if status == 200:
            data = body["data"]
            if data["run_id"] != self.run_id or data["similar_users"] != self.expected[user]:
                return "wrong list"
            return "ok"
        if status == 503:
            if int(headers.get("Retry-After", "0")) < 1:
                return "503 without Retry-After"
            if headers.get("Content-Type") != "application/problem+json":
                return "503 not a problem"
            return "503"
        return f"unexpected {status}"

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set() and len(self.answers) < MAX_REQUESTS:
            user = rng.randint(1, USERS)
            sent = self.now()
            try:
                status, headers, body = get(self.port, f"/similar-users/{user}?top_n=5")
                verdict = self.judge(user, status, headers, body)
            except (OSError, http.client.HTTPException) as error:
                status, verdict = 0, f"no answer ({type(error).__name__})"
            with self._lock:
                self.answers.append(Answer(sent, self.now() - sent, user, status, verdict))
            time.sleep(PAUSE)

    def ready(self) -> None:
        while not self._stop.is_set():
            sent = self.now()
            try:
                status = get(self.port, "/readyz")[0]
            except (OSError, http.client.HTTPException):
                status = 0
            with self._lock:
                self.readiness.append((sent, self.now(), status))
            time.sleep(0.2)

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self.client, args=(seed,), daemon=True)
            for seed in range(CLIENTS)
        ]
        self._threads.append(threading.Thread(target=self.ready, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def sent_since(self, since: float) -> tuple[list[Answer], list[tuple[float, int]]]:
        """Return the answers and the readiness probes (sent, status) sent since, in that order."""
        with self._lock:
            answers = sorted((a for a in self.answers if a.sent >= since), key=lambda a: a.sent)
            probes = [(sent, status) for sent, _, status in self.readiness if sent >= since]
        return answers, probes

    def saw_the_store_down(self, since: float) -> bool:
        """Return whether, since then, a lookup was a 503 and readiness said 503."""
        answers, probes = self.sent_since(since)
        return any(a.status == 503 for a in answers) and any(s == 503 for _, s in probes)

    def recovered(self, since: float) -> float | None:
        """Return when the answers sent since then became correct for good, or None if not yet.

        Recovered: readiness said 200, and after that probe STEADY answers in a row were correct.
        """
        answers, probes = self.sent_since(since)
        ready = next((t for t, status in probes if status == 200), None)
        if ready is None:
            return None
        after = [a for a in answers if a.sent >= ready]
        if len(after) < STEADY or any(a.verdict != "ok" for a in after[-STEADY:]):
            return None
        return after[-STEADY].sent


@dataclass
class Stack:
    dynamodb: local.DynamoDBLocal
    data_dir: Path
    log_dir: Path
    port: int
    server: subprocess.Popen[bytes]
    expected: dict[int, list[dict[str, Any]]]
    run_id: str

    def restart_dynamodb(self) -> None:
        self.dynamodb = local.start(
            self.dynamodb.port, self.data_dir, log_path=self.log_dir / "dynamodb.log"
        )

    def kill_dynamodb(self) -> None:
        os.kill(self.dynamodb.pid, signal.SIGKILL)
        assert self.dynamodb.process is not None
        self.dynamodb.process.wait(10)


def write_export(folder: Path) -> Path:
    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_handle,interest_tag,date_followed"]
    for user in range(1, USERS + 1):
        lines += [f"{user},{tag},2017-06-27" for tag in rng.sample(TAGS, rng.randint(3, 6))]
    (folder / "user_interests.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    data_dir = tmp_path / "dynamodb"
    dynamodb = local.start(local.free_port(), data_dir, log_path=tmp_path / "dynamodb.log")
    server: subprocess.Popen[bytes] | None = None
    running: Stack | None = None
    try:
        prefix = f"faults_{uuid.uuid4().hex[:8]}"
        store = DynamoStore.connect(
            table_prefix=prefix, region="us-east-1", endpoint_url=dynamodb.endpoint_url
        )
        store.ensure_tables()
        tables = load_tables(write_export(tmp_path / "export"))
        pipeline.run(tables, store, ["interests"], top_n_stored=10, threads=1)
        run = store.current_run("interests")
        assert run is not None
        expected = {}
        for user in range(1, USERS + 1):
            found = store.get_list(run, user)
            assert found is not None
            expected[user] = [
                {"user_handle": n.user_handle, "score": n.score, "mutual": n.mutual}
                for n in found.neighbours[:5]
            ]
        port = local.free_port()
        env = aws_env(
            dynamodb.endpoint_url,
            LOG_LEVEL="WARNING",
            DYNAMODB_TABLE_PREFIX=prefix,
            HOST="127.0.0.1",
            PORT=str(port),
            GUNICORN_WORKERS="2",
            GUNICORN_THREADS="4",
            POINTER_CACHE_SECONDS="1",
            STORE_CONNECT_TIMEOUT_SECONDS=str(CONNECT_TIMEOUT),
            STORE_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
            STORE_RETRIES=str(RETRIES),
            API_KEY=KEY,
        )
        command = [sys.executable, "run_server.py", "--env-file", str(tmp_path / "none.env")]
        with (tmp_path / "server.log").open("wb") as log:
            server = subprocess.Popen(
                [*command, "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_ready(server, f"http://127.0.0.1:{port}", timeout=60)
        running = Stack(dynamodb, data_dir, tmp_path, port, server, expected, run.run_id)
        yield running
    finally:
        current = running.dynamodb if running is not None else dynamodb
        with contextlib.suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGCONT)
        local.terminate(server, timeout=20)
        local.stop(current)


PHASES = [  # (name, event that starts it, event that ends it)
    ("store up", "start", "killed"),
    ("store killed", "killed", "restarting"),
    ("store restarting", "restarting", "restarted"),
    ("store back", "restarted", "stopped"),
    ("store hung (SIGSTOP)", "stopped", "continued"),
    ("store resumed (SIGCONT)", "continued", "end"),
]


def summarise(load: Load, events: dict[str, float]) -> dict[str, Any]:
    """Return the figures of a fault run: requests, answers by status, latencies, per phase."""
    by_verdict = Counter(a.verdict for a in load.answers)
    phases = {}
    for name, start, end in PHASES:  # an answer counts in the phase in which it came back
        answers = [a for a in load.answers if events[start] <= a.sent + a.seconds < events[end]]
        phases[name] = {
            "seconds": round(events[end] - events[start], 1),
            "requests": len(answers),
            "by_status": dict(sorted(Counter(str(a.status) for a in answers).items())),
            "slowest_seconds": round(max((a.seconds for a in answers), default=0), 3),
        }
    return {
        "requests": len(load.answers),
        "by_status": dict(sorted(Counter(str(a.status) for a in load.answers).items())),
        "by_verdict": dict(sorted(by_verdict.items())),
        "slowest_answer_seconds": round(max(a.seconds for a in load.answers), 3),
        "bound_seconds": BOUND,
        "median_200_seconds": round(
            statistics.median(a.seconds for a in load.answers if a.verdict == "ok"), 4
        ),
        "recovery_seconds": {
            "after restart": round(events["recovered_after_restart"] - events["restarted"], 2),
            "after SIGCONT": round(events["recovered_after_continue"] - events["continued"], 2),
        },
        "phases": phases,
    }


def test_the_server_survives_its_store_being_killed_hung_and_restarted(stack, capsys):
    events: dict[str, float] = {}
    status, headers, _ = get(stack.port, "/similar-users/1")
    assert status == 200
    assert all(headers[name] == value for name, value in SECURITY_HEADERS.items())

    with Load(stack.port, stack.expected, stack.run_id) as load:
        events["start"] = 0.0
        wait_for(lambda: load.recovered(0.0), "correct answers before any fault", PHASE_TIMEOUT)
        events["killed"] = load.now()
        stack.kill_dynamodb()
        wait_for(
            lambda: load.saw_the_store_down(events["killed"]), "503s, store killed", PHASE_TIMEOUT
        )
        events["restarting"] = load.now()
        stack.restart_dynamodb()
        events["restarted"] = load.now()
        events["recovered_after_restart"] = wait_for(
            lambda: load.recovered(events["restarted"]), "recovery after the restart", PHASE_TIMEOUT
        )
        events["stopped"] = load.now()
        os.kill(stack.dynamodb.pid, signal.SIGSTOP)
        wait_for(
            lambda: load.saw_the_store_down(events["stopped"]), "503s, store hung", PHASE_TIMEOUT
        )
        events["continued"] = load.now()
        os.kill(stack.dynamodb.pid, signal.SIGCONT)
        events["recovered_after_continue"] = wait_for(
            lambda: load.recovered(events["continued"]), "recovery after SIGCONT", PHASE_TIMEOUT
        )
        events["end"] = load.now()

    figures = summarise(load, events)
    with capsys.disabled():
        print(f"\nstore faults under load: {json.dumps(figures)}")

    # Every answer came, and is a correct 200 or a 503 with Retry-After.
    assert set(figures["by_verdict"]) <= {"ok", "503"}, figures
    # Before any fault, and again from each recovery to the next fault, every answer is correct:
    # the server recovered by itself (the pointer cache and connection pool start afresh).
    for since, until in [
        (events["start"], events["killed"]),
        (events["recovered_after_restart"], events["stopped"]),
        (events["recovered_after_continue"], events["end"]),
    ]:
        verdicts = [
            a.verdict for a in load.answers if since <= a.sent and a.sent + a.seconds < until
        ]
        assert verdicts and set(verdicts) == {"ok"}, (since, until, Counter(verdicts))
    # Readiness: once it said 503 for a dead or hung store, it said 503 until the store was back.
    # Each worker keeps what the store said to it for READY_SECONDS: a worker that asked just
    # before the fault may say 200 that long after it, even after the other worker said 503.
    for since, until in [
        (events["killed"], events["restarting"]),
        (events["stopped"], events["continued"]),
    ]:
        during = [
            (sent, status) for sent, back, status in load.readiness if since <= sent < back < until
        ]
        statuses = [status for _, status in during]
        assert 503 in statuses, load.readiness  # the phase waited for readiness to say so
        first = statuses.index(503)
        later = {status for sent, status in during[first:] if sent >= since + READY_SECONDS}
        assert later <= {503}, load.readiness
    assert load.readiness[-1][2] == 200
    assert stack.server.poll() is None  # the same server all along
