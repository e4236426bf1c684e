"""DynamoDB Local starts, answers, keeps data where told and stops; failures say what to do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import local
from store.local import DynamoDBLocal, DynamoDBLocalError

ROOT = Path(__file__).resolve().parents[1]
# DynamoDB Local checks no signature, but wants one, with an access key id of letters and digits.
FAKE_SIGNATURE = (
    "AWS4-HMAC-SHA256 Credential=fake/20240101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=abc"
)


def dynamodb(endpoint_url: str, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Send one DynamoDB API call with nothing but the standard library; return status and JSON."""
    request = urllib.request.Request(
        endpoint_url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": FAKE_SIGNATURE,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def create_table(endpoint_url: str, name: str) -> None:
    status, _ = dynamodb(
        endpoint_url,
        "CreateTable",
        {
            "TableName": name,
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    assert status == 200


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def started(tmp_path: Path) -> Iterator[DynamoDBLocal]:
    instance = local.start(local.free_port(), log_path=tmp_path / "dynamodb.log")
    try:
        yield instance
    finally:
        local.stop(instance)


@pytest.mark.dynamodb_local
def test_an_in_memory_instance_answers_dynamodb_calls(started: DynamoDBLocal) -> None:
    assert started.endpoint_url == f"http://127.0.0.1:{started.port}"
    assert dynamodb(started.endpoint_url, "ListTables", {}) == (200, {"TableNames": []})


@pytest.mark.dynamodb_local
def test_stop_ends_the_process_and_closes_the_port(started: DynamoDBLocal) -> None:
    local.stop(started)

    assert started.process is not None and started.process.poll() is not None
    assert refuses_connections(started.port)


@pytest.mark.dynamodb_local
def test_a_data_dir_keeps_tables_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # not there yet: start creates it
    first = local.start(local.free_port(), data_dir=data_dir, log_path=tmp_path / "first.log")
    try:
        create_table(first.endpoint_url, "neighbours")
    finally:
        local.stop(first)
    assert [p.name for p in data_dir.iterdir()] == ["shared-local-instance.db"]

    second = local.start(local.free_port(), data_dir=data_dir, log_path=tmp_path / "second.log")
    try:
        assert dynamodb(second.endpoint_url, "ListTables", {}) == (
            200,
            {"TableNames": ["neighbours"]},
        )
    finally:
        local.stop(second)


@pytest.mark.dynamodb_local
def test_start_on_a_busy_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(DynamoDBLocalError, match=f"port {port} is already in use"):
            local.start(port, log_path=tmp_path / "dynamodb.log")


def test_stop_by_pid_ends_the_process(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    local.stop(process.pid)

    assert process.wait(timeout=1) is not None


def test_stopping_a_process_that_is_already_gone_is_not_an_error() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()

    local.stop(process.pid)


def test_a_missing_jar_asks_for_make_install(tmp_path: Path) -> None:
    with pytest.raises(DynamoDBLocalError, match="run `make install`"):
        local.find_jar(tmp_path)


def test_the_jar_is_found_in_node_modules() -> None:
    jar_dir = local.find_jar(ROOT)

    assert (jar_dir / "DynamoDBLocal.jar").is_file()
    assert (jar_dir / "DynamoDBLocal_lib").is_dir()


@pytest.mark.parametrize(
    ("data_dir", "storage"),
    [(None, ["-inMemory"]), (Path("/db"), ["-dbPath", "/db"])],
)
def test_java_command_runs_the_jar_with_its_native_libraries(
    data_dir: Path | None, storage: list[str]
) -> None:
    jar_dir = Path("/jar")

    assert local.java_command(jar_dir, 8123, data_dir) == [
        "java",
        "-Djava.library.path=/jar/DynamoDBLocal_lib",
        "-jar",
        "/jar/DynamoDBLocal.jar",
        "-sharedDb",
        "-port",
        "8123",
        *storage,
        "-disableTelemetry",
    ]


def test_without_java_start_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java anywhere

    with pytest.raises(DynamoDBLocalError, match=r"Java 17 or newer is needed .*openjdk-17"):
        local.start(local.free_port())


@pytest.mark.parametrize(
    "version_line", ['java version "1.8.0_292"', 'openjdk version "11.0.20" 2023-07-18']
)
def test_a_java_older_than_17_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_line: str
) -> None:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(DynamoDBLocalError, match="Java 17 or newer is needed"):
        local.start(local.free_port())


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('java version "1.8.0_292"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "24-ea" 2025-03-18', 24),
        ("bash: java: command not found", None),
    ],
)
def test_java_major_version_reads_old_and_new_formats(output: str, major: int | None) -> None:
    assert local.java_major_version(output) == major


def cli(*args: str, data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    """Run `python -m store.local` as the Makefile does, with the port from DYNAMODB_PORT."""
    return subprocess.run(
        [sys.executable, "-m", "store.local", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env={**os.environ, "DYNAMODB_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.dynamodb_local
def test_the_command_line_starts_once_and_stops(tmp_path: Path) -> None:
    data_dir, port = tmp_path / ".dynamodb" / "data", local.free_port()
    try:
        first = cli("start", data_dir=data_dir, port=port)
        pid = json.loads((tmp_path / ".dynamodb" / "dynamodb.pid").read_text())["pid"]
        again = cli("start", data_dir=data_dir, port=port)
        status = cli("status", data_dir=data_dir, port=port)
    finally:
        stopped = cli("stop", data_dir=data_dir, port=port)

    url = f"http://127.0.0.1:{port}"
    assert (first.returncode, first.stdout) == (
        0,
        f"DynamoDB Local running on {url} (pid {pid}, data in {data_dir})\n",
    )
    assert (again.returncode, again.stdout) == (
        0,
        f"DynamoDB Local already running on {url} (pid {pid})\n",
    )
    assert (status.returncode, status.stdout) == (
        0,
        f"DynamoDB Local running on {url} (pid {pid})\n",
    )
    assert (stopped.returncode, stopped.stdout) == (0, f"DynamoDB Local stopped (pid {pid})\n")
    assert refuses_connections(port)


def test_the_command_line_stop_says_when_nothing_runs(tmp_path: Path) -> None:
    stopped = cli("stop", data_dir=tmp_path / "data", port=local.free_port())

    assert stopped.returncode == 0
    assert stopped.stdout.startswith("DynamoDB Local is not running")
