"""End to end over real HTTP: DynamoDB Local, the generator, gunicorn, and the store going away.

Each test starts its own DynamoDB Local (kept on disk in a temporary folder, so that it can be
stopped and started again with its data) and its own server on free loopback ports.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack import dynamodb_local as local
from devstack import pidfile
from store.dynamo import DynamoStore
from tests.fakes import aws_env, wait_for

pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
USERS = 300
MODELS = ["interests", "course_views"]


# Added to the fake AWS environment of every process the tests start. DATA_DIR is set, so that a
# developer's .env cannot point the generator elsewhere.
OWN_SETTINGS = {"DATA_DIR": "", "LOG_LEVEL": "WARNING"}


def run_server(env_file: Path, *args: str) -> list[str]:
    """Return the command line of run_server.py with a settings file of the test's own."""
    return [sys.executable, "run_server.py", "--env-file", str(env_file), *args]


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], Any]:
    """Send one HTTP request to the loopback port; return status, headers and decoded JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json"} if payload is not None else {}
        all_headers.update(headers or {})
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, dict(response.getheaders()), json.loads(raw) if raw else None
    finally:
        connection.close()


def answers(port: int, path: str, status: int, process: Any = None) -> bool:
    """Return whether GET path answers the status now; fail if the process has exited."""
    if process is not None and process.poll() is not None:
        raise AssertionError(f"the process exited with code {process.returncode}")
    try:
        return request(port, "GET", path, timeout=2.0)[0] == status
    except OSError:
        return False


def generate_and_serve(tmp: Path, env: dict[str, str], *generate: str) -> subprocess.Popen[bytes]:
    """Run the generator to the end (logs in tmp), then start the server; return its process."""
    with (tmp / "generator.log").open("wb") as log:
        finished = subprocess.run(
            [sys.executable, "run_generator.py", "generate", *generate],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    assert finished.returncode == 0, (tmp / "generator.log").read_text()[-3000:]
    with (tmp / "server.log").open("wb") as log:
        return subprocess.Popen(
            run_server(tmp / "none.env", "serve"),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class Stack:
    """DynamoDB Local with published runs, and gunicorn serving them."""

    dynamodb: local.DynamoDBLocal
    data_dir: Path
    log_dir: Path
    env: dict[str, str]
    port: int
    server: subprocess.Popen[bytes]

    def store(self) -> DynamoStore:
        return DynamoStore.connect(
            table_prefix=self.env["DYNAMODB_TABLE_PREFIX"],
            region="us-east-1",
            endpoint_url=self.dynamodb.endpoint_url,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    data_dir = tmp / "dynamodb"
    dynamodb = local.start(local.free_port(), data_dir, log_path=tmp / "dynamodb.log")
    running: Stack | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        port = local.free_port()
        env = aws_env(
            dynamodb.endpoint_url,
            **OWN_SETTINGS,
            DYNAMODB_TABLE_PREFIX=f"e2e_{uuid.uuid4().hex[:8]}",
            HOST="127.0.0.1",
            PORT=str(port),
            GUNICORN_WORKERS="2",
            GUNICORN_THREADS="4",
        )
        server = generate_and_serve(tmp, env, "--synthetic-users", str(USERS), "--models", *MODELS)
        wait_for(lambda: answers(port, "/readyz", 200, server), "/readyz answers 200", 30)
        running = Stack(dynamodb, data_dir, tmp, env, port, server)
        yield running
    finally:
        local.terminate(server, timeout=20)
        local.stop(running.dynamodb if running is not None else dynamodb)  # it may be restarted


def test_the_server_answers_similar_users_with_scores_over_http(stack):
    body = {"user_handle": 110, "model_handle": "interests"}  # every synthetic user follows tags
    status, headers, answer = request(stack.port, "POST", "/similar-users", body)

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    users = answer["data"]["similar_users"]
    assert len(users) == 5
    handles = [u["user_handle"] for u in users]
    scores = [u["score"] for u in users]
    assert 110 not in handles
    assert all(1 <= h <= USERS for h in handles)
    assert all(0 < s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_the_answer_is_the_current_run_as_stored(stack):
    store = stack.store()
    run = store.current_run("course_views")
    assert run is not None
    user, stored = next(
        (user, found)
        for user in range(1, USERS + 1)
        if (found := store.get_list(run, user)) is not None and len(found.neighbours) > 5
    )

    status, _, answer = request(
        stack.port, "GET", f"/similar-users/{user}?model_handle=course_views&top_n=50"
    )

    assert status == 200
    assert answer["data"]["run_id"] == run.run_id
    assert [(u["user_handle"], u["score"]) for u in answer["data"]["similar_users"]] == [
        (n.user_handle, n.score) for n in stored.neighbours
    ]


def test_models_lists_the_runs_the_generator_published(stack):
    status, _, answer = request(stack.port, "GET", "/models")

    assert status == 200
    assert sorted(m["model_handle"] for m in answer["models"]) == sorted(MODELS)
    current = stack.store().current_runs()
    assert {m["model_handle"]: m["run_id"] for m in answer["models"]} == {
        handle: run.run_id for handle, run in current.items()
    }


def test_the_lookup_command_prints_the_same_json_as_the_api(stack):
    _, _, answer = request(stack.port, "POST", "/similar-users", {"user_handle": 7, "top_n": 3})

    printed = subprocess.run(
        run_server(stack.log_dir / "none.env", "lookup", "--user-handle", "7", "--top-n", "3"),
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert json.loads(printed.stdout) == answer


def test_the_lookup_command_prints_a_problem_for_an_unknown_user(stack):
    printed = subprocess.run(
        run_server(stack.log_dir / "none.env", "lookup", "--user-handle", str(USERS + 1)),
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert printed.returncode == 1
    assert json.loads(printed.stderr)["title"] == "Unknown user"


def test_errors_over_http_are_problems(stack):
    answers = [
        request(stack.port, "POST", "/similar-users", {"user_handle": USERS + 1}),
        request(stack.port, "POST", "/similar-users", {"user_handle": "110"}),
        request(stack.port, "PUT", "/similar-users", {"user_handle": 110}),
        request(stack.port, "GET", "/similar-users/110?model_handle=nope"),
    ]

    assert [status for status, _, _ in answers] == [404, 422, 405, 404]
    for status, headers, body in answers:
        assert headers["Content-Type"] == "application/problem+json"
        assert body["status"] == status
    assert "POST" in answers[2][1]["Allow"]


def test_a_chunked_body_over_the_limit_is_413(stack):
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    body = b'{"user_handle": 110, "pad": "' + b"x" * 100_000 + b'"}'
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
    try:
        connection.request(
            "POST",
            "/similar-users",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/problem+json"
    finally:
        connection.close()


def test_the_store_going_down_is_a_503_and_coming_back_needs_no_restart(stack):
    assert request(stack.port, "GET", "/similar-users/110")[0] == 200
    server_pid = stack.server.pid
    local.stop(stack.dynamodb)
    try:
        # A user whose list no worker has cached (110's may be answered from a worker's cache
        # until its pointer cache expires).
        status, headers, body = request(stack.port, "GET", "/similar-users/111")

        assert status == 503
        assert int(headers["Retry-After"]) >= 1
        assert body["title"] == "Store unavailable"
        # Readiness is cached for about a second: it says 503 once that has lapsed.
        wait_for(lambda: request(stack.port, "GET", "/readyz")[0] == 503, "/readyz says 503", 10)
    finally:
        stack.dynamodb = local.start(
            stack.dynamodb.port, stack.data_dir, log_path=stack.log_dir / "dynamodb.log"
        )

    wait_for(
        lambda: answers(stack.port, "/similar-users/110", 200, stack.server),
        "/similar-users/110 answers 200",
        15,
    )

    assert stack.server.poll() is None and stack.server.pid == server_pid


# -- make run ---------------------------------------------------------------------------------


def start_up(tmp: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `run_server.py up` with its output going to a file; return it and the file."""
    output = tmp / f"up-{time.monotonic_ns()}.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            run_server(tmp / ".env", "up", "--state-dir", str(tmp / "state"), *extra),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, output


def wait_for_banner(process: subprocess.Popen[bytes], output: Path, timeout: float) -> list[str]:
    """Wait until `up` says it is up; return the curl commands it printed."""

    def curls() -> list[str] | None:
        text = output.read_text(errors="replace")
        assert process.poll() is None, text[-3000:]
        if "Press Ctrl-C" not in text:
            return None
        found = re.findall(r"^curl .*$", text, re.MULTILINE)
        assert found, text
        return found

    return wait_for(curls, "`up` says it is up", timeout)


def test_up_brings_the_stack_up_prints_a_working_curl_and_stops_it_all(tmp_path):
    dynamodb_port, port = local.free_port(), local.free_port()
    env = aws_env(
        **OWN_SETTINGS,
        DYNAMODB_PORT=str(dynamodb_port),
        PORT=str(port),
        DYNAMODB_TABLE_PREFIX=f"up_{uuid.uuid4().hex[:8]}",
        GUNICORN_WORKERS="1",
    )
    processes = []
    try:
        process, output = start_up(tmp_path, env, "--synthetic-users", "200")
        processes.append(process)
        by_handle, by_profile = wait_for_banner(process, output, timeout=240)
        assert (tmp_path / ".env").is_file()  # created from example.env
        dynamodb_pid = json.loads((tmp_path / "state" / "dynamodb.pid").read_text())["pid"]

        printed = subprocess.run(
            shlex.split(by_handle), capture_output=True, text=True, timeout=30, check=True
        )
        answer = json.loads(printed.stdout)
        assert answer["request_data"]["user_handle"] == 110
        assert len(answer["data"]["similar_users"]) == 5
        assert all(0 < u["score"] <= 1 for u in answer["data"]["similar_users"])

        # A newcomer's profile with a misspelt interest: matched, answered, explained.
        printed = subprocess.run(
            shlex.split(by_profile), capture_output=True, text=True, timeout=30, check=True
        )
        answer = json.loads(printed.stdout)
        matched = answer["request_data"]["matched"]
        assert [m["how"] for m in matched] == ["fuzzy", "exact", "exact"]
        assert matched[0]["input"] != matched[0]["name"]
        assert answer["request_data"]["unmatched"] == []
        assert answer["data"]["similar_users"]
        asked = {m["name"] for m in matched}
        for neighbour in answer["data"]["similar_users"]:
            shown = sum(e["contribution"] for e in neighbour["shared"])
            rest = neighbour["shared_rest"]["contribution"]
            assert shown + rest == pytest.approx(neighbour["score"], abs=1e-5)
            # Only what the profile holds is shared evidence: its interests, its course (and,
            # in the hybrid, that course's tags).
            for evidence in neighbour["shared"]:
                assert evidence["name"] in asked or evidence["kind"] == "course_tag"

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, output.read_text()[-3000:]
        assert not local.is_dynamodb_local(dynamodb_pid)
        assert not local.port_in_use(port) and not local.port_in_use(dynamodb_port)
        assert not (tmp_path / "state" / "dynamodb.pid").exists()

        # Again, serving what was published last time; Ctrl-C stops it too.
        process, output = start_up(tmp_path, env, "--no-generate")
        processes.append(process)
        wait_for_banner(process, output, timeout=120)
        assert request(port, "GET", "/similar-users/110")[0] == 200

        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, output.read_text()[-3000:]
        assert not local.port_in_use(port) and not local.port_in_use(dynamodb_port)
    finally:
        for each in processes:
            local.terminate(each, timeout=20)
        pid_file = tmp_path / "state" / "dynamodb.pid"
        if pid_file.exists():  # `up` failed to clean up: do it for it
            leftover = pidfile.read(pid_file)
            if leftover is not None:
                local.stop(leftover.pid)
