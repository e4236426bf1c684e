"""The server under a steady loopback load while its DynamoDB Local is killed, hung and restarted.

Every answer must be a correct 200 (the list the store holds) or a 503 with Retry-After, none
slower than the store timeouts allow, none a 500 or a wrong list; readiness says 503 while the store
is down; and the server recovers by itself, within seconds, without a restart. The test prints the
figures it measured (they are quoted in the README's "Reliability" section).
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
from typing import Any

import pytest

from devstack import dynamodb_local as local
from generator import pipeline
from generator.tables import load_tables
from server.security import SECURITY_HEADERS
from store.dynamo import DynamoStore

pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
USERS = 300
TAGS = [f"tag{t}" for t in range(30)]
KEY = "fault-test-key-0123456789"
CONNECT_TIMEOUT = READ_TIMEOUT = 0.5
RETRIES = 1
# The longest a request may take while the store is down or hung. A request waits on at most one
# store read that fails (the run pointer, or if that answered, the list): tried 1 + RETRIES times,
# each within the connect or read timeout, with botocore's backoff (under 1 s) before a retry; plus
# a second of slack for a loaded 2-core machine.
SLOWEST = (1 + RETRIES) * (CONNECT_TIMEOUT + READ_TIMEOUT) + RETRIES * 1.0 + 1.0
CLIENTS = 4
PAUSE = 0.02  # between two requests of one client: about 100 requests per second in all
MAX_REQUESTS = 20_000


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def get(port: int, path: str, timeout: float = 15.0) -> tuple[int, dict[str, str], Any]:
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
    readiness: list[tuple[float, int]] = field(default_factory=list)
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
            try:
                status = get(self.port, "/readyz", timeout=15.0)[0]
            except (OSError, http.client.HTTPException):
                status = 0
            self.readiness.append((self.now(), status))
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

    def recovered_at(self, since: float, until: float) -> float:
        """Return when the last answer that was not OK came, of those sent since, back by until."""
        bad = [
            a.sent + a.seconds
            for a in self.answers
            if since <= a.sent and a.sent + a.seconds < until and a.verdict != "ok"
        ]
        return max(bad, default=since)


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
        pipeline.run(tables, store, ["interests"], n=10, threads=1)
        run = store.current_run("interests")
        assert run is not None
        expected = {}
        for user in range(1, USERS + 1):
            found = store.get_list(run, user)
            assert found is not None
            expected[user] = [
                {"user_handle": n.user_handle, "score": n.score} for n in found.neighbours[:5]
            ]
        port = local.free_port()
        env = clean_env(
            AWS_ENDPOINT_URL_DYNAMODB=dynamodb.endpoint_url,
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
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if get(port, "/readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
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
        "bound_seconds": SLOWEST,
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
        time.sleep(2)
        events["killed"] = load.now()
        stack.kill_dynamodb()
        time.sleep(3)
        events["restarting"] = load.now()
        stack.restart_dynamodb()
        events["restarted"] = load.now()
        time.sleep(3)
        events["stopped"] = load.now()
        os.kill(stack.dynamodb.pid, signal.SIGSTOP)
        time.sleep(4)
        events["continued"] = load.now()
        os.kill(stack.dynamodb.pid, signal.SIGCONT)
        time.sleep(3)
        events["end"] = load.now()

    events["recovered_after_restart"] = load.recovered_at(events["restarted"], events["stopped"])
    events["recovered_after_continue"] = load.recovered_at(events["continued"], events["end"])
    figures = summarise(load, events)
    with capsys.disabled():
        print(f"\nstore faults under load: {json.dumps(figures)}")

    # Every answer is a correct 200 or a 503 with Retry-After; nothing hangs.
    assert set(figures["by_verdict"]) <= {"ok", "503"}, figures
    assert figures["slowest_answer_seconds"] <= SLOWEST, figures
    # Before any fault, and again after each recovery, every answer is a correct 200.
    assert all(a.verdict == "ok" for a in load.answers if a.sent + a.seconds < events["killed"])
    # Each fault was seen: 503s while the store was dead and while it was hung.
    assert any(
        a.status == 503 for a in load.answers if events["killed"] < a.sent < events["restarting"]
    )
    assert any(
        a.status == 503 for a in load.answers if events["stopped"] < a.sent < events["continued"]
    )
    # Recovery by itself, within seconds (the pointer cache and connection pool start afresh).
    assert figures["recovery_seconds"]["after restart"] < 3.0, figures
    assert figures["recovery_seconds"]["after SIGCONT"] < 3.0, figures
    assert events["recovered_after_continue"] < events["end"] - 0.5
    assert any(
        a.verdict == "ok" for a in load.answers if a.sent > events["recovered_after_continue"]
    )
    # Readiness: 503 while the store was dead or hung, 200 at the end.
    down = [
        status
        for t, status in load.readiness
        if events["killed"] + 0.5 < t < events["restarting"]
        or events["stopped"] + 1.0 < t < events["continued"]
    ]
    assert down and set(down) == {503}, load.readiness
    assert load.readiness[-1][1] == 200
    assert stack.server.poll() is None  # the same server all along
