"""DynamoDB Local for development: it starts, answers, keeps each port's tables apart and stops;
whoever stops it removes only its own record; failures say what to do."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import dynamodb_local as local
from devstack import pidfile
from devstack.dynamodb_local import DynamoDBLocal, DynamoDBLocalError
from tests.fakes import aws_env, wait_for

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


# -- where each instance lives, and the record of which process runs there ---------------------


def test_each_port_has_its_own_folder_for_tables_pid_file_and_log(tmp_path: Path) -> None:
    first = pidfile.place_for(8000, project_root=tmp_path)
    second = pidfile.place_for(8001, project_root=tmp_path)

    assert first.data_dir == tmp_path / ".dynamodb" / "8000" / "data"
    assert first.pid_file == tmp_path / ".dynamodb" / "8000" / "dynamodb.pid"
    assert first.log_file == tmp_path / ".dynamodb" / "8000" / "dynamodb.log"
    assert second.data_dir == tmp_path / ".dynamodb" / "8001" / "data"


def test_a_chosen_data_dir_keeps_the_pid_file_and_log_beside_it(tmp_path: Path) -> None:
    place = pidfile.place_for(8000, tmp_path / "mine" / "tables", project_root=tmp_path)

    assert place.data_dir == tmp_path / "mine" / "tables"
    assert place.pid_file == tmp_path / "mine" / "dynamodb.pid"
    assert place.log_file == tmp_path / "mine" / "dynamodb.log"


def test_a_record_names_the_instance_it_was_written_for(tmp_path: Path) -> None:
    pid_file = tmp_path / "state" / "dynamodb.pid"  # its folder is not there yet
    pidfile.write(
        pid_file, DynamoDBLocal(8123, 4321, "http://127.0.0.1:8123"), pidfile.Place(tmp_path)
    )

    assert pidfile.recorded(pid_file) == DynamoDBLocal(8123, 4321, "http://127.0.0.1:8123")
    assert [p.name for p in pid_file.parent.iterdir()] == ["dynamodb.pid"]


def test_a_record_of_a_process_that_is_not_dynamodb_local_is_not_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "dynamodb.pid"
    pidfile.write(
        pid_file, DynamoDBLocal(8123, os.getpid(), "http://127.0.0.1:8123"), pidfile.Place(tmp_path)
    )

    assert pidfile.read(pid_file) is None


def test_a_record_is_removed_only_by_the_process_it_names(tmp_path: Path) -> None:
    pid_file = tmp_path / "dynamodb.pid"
    pidfile.write(
        pid_file, DynamoDBLocal(8123, 2222, "http://127.0.0.1:8123"), pidfile.Place(tmp_path)
    )

    assert pidfile.remove(pid_file, 1111) is False
    assert pidfile.recorded(pid_file) == DynamoDBLocal(8123, 2222, "http://127.0.0.1:8123")
    assert pidfile.remove(pid_file, 2222) is True
    assert not pid_file.exists()
    assert pidfile.remove(pid_file, 2222) is False


@pytest.mark.dynamodb_local
def test_two_ports_keep_their_tables_apart(tmp_path: Path) -> None:
    ports = [local.free_port(), local.free_port()]
    places = [pidfile.place_for(port, project_root=tmp_path) for port in ports]
    running: list[tuple[pidfile.Place, DynamoDBLocal]] = []
    try:
        for port, place, table in zip(ports, places, ["first", "second"], strict=True):
            instance, started = pidfile.start_or_reuse(place, port, project_root=ROOT)
            running.append((place, instance))
            assert started
            create_table(instance.endpoint_url, table)

        tables = [dynamodb(f"http://127.0.0.1:{port}", "ListTables", {}) for port in ports]
    finally:
        for place, instance in running:
            pidfile.stop_started(place, instance)

    assert tables == [(200, {"TableNames": ["first"]}), (200, {"TableNames": ["second"]})]
    for place in places:
        assert [p.name for p in place.data_dir.iterdir()] == ["shared-local-instance.db"]


@pytest.mark.dynamodb_local
def test_an_instance_keeping_its_tables_elsewhere_is_refused_not_reused(tmp_path: Path) -> None:
    port = local.free_port()
    in_memory = pidfile.place_for(port, tmp_path / "data", in_memory=True)
    on_disk = pidfile.place_for(port, tmp_path / "data")  # the same pid file, other tables
    sibling = pidfile.place_for(port, tmp_path / "other")  # a folder beside it: the same pid file
    instance, started = pidfile.start_or_reuse(in_memory, port, project_root=ROOT)
    try:
        assert started
        for place in (on_disk, sibling):
            with pytest.raises(DynamoDBLocalError, match="keeps its tables in memory, not in"):
                pidfile.start_or_reuse(place, port, project_root=ROOT)
        reused, started = pidfile.start_or_reuse(in_memory, port, project_root=ROOT)
        assert (reused.pid, started) == (instance.pid, False)
    finally:
        pidfile.stop_started(in_memory, instance)
    assert not on_disk.data_dir.exists() and not sibling.data_dir.exists()


# -- the command line (make dynamodb-start, make dynamodb-stop) ---------------------------------


def cli(*args: str, env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m devstack` as the Makefile does, with only the given DYNAMODB_ settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DYNAMODB_")}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args, "--env-file", str(env_file)],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.dynamodb_local
def test_the_command_line_starts_once_refuses_another_port_and_stops(tmp_path: Path) -> None:
    data_dir, port, other = tmp_path / "state" / "data", local.free_port(), local.free_port()
    env = {"DYNAMODB_PORT": str(port), "DYNAMODB_DATA_DIR": str(data_dir)}
    no_env = tmp_path / "none.env"
    try:
        first = cli("start", env=env, env_file=no_env)
        pid = json.loads((tmp_path / "state" / "dynamodb.pid").read_text())["pid"]
        again = cli("start", env=env, env_file=no_env)
        elsewhere = cli("start", env={**env, "DYNAMODB_PORT": str(other)}, env_file=no_env)
        status = cli("status", env=env, env_file=no_env)
    finally:
        stopped = cli("stop", env=env, env_file=no_env)

    url = f"http://127.0.0.1:{port}"
    assert (first.returncode, first.stdout) == (
        0,
        f"DynamoDB Local running on {url} (pid {pid}, data in {data_dir})\n",
    )
    assert (again.returncode, again.stdout) == (
        0,
        f"DynamoDB Local already running on {url} (pid {pid})\n",
    )
    assert elsewhere.returncode == 1
    assert f"already runs on {url}: stop it to use port {other}" in elsewhere.stderr
    assert (status.returncode, status.stdout) == (
        0,
        f"DynamoDB Local running on {url} (pid {pid})\n",
    )
    assert (stopped.returncode, stopped.stdout) == (0, f"DynamoDB Local stopped (pid {pid})\n")
    assert refuses_connections(port)
    assert not (tmp_path / "state" / "dynamodb.pid").exists()


def test_the_command_line_stop_says_when_nothing_runs(tmp_path: Path) -> None:
    stopped = cli("stop", "--data-dir", str(tmp_path / "data"), env={}, env_file=tmp_path / ".env")

    assert (stopped.returncode, stopped.stdout) == (
        0,
        f"DynamoDB Local is not running (no live process in {tmp_path / 'dynamodb.pid'})\n",
    )


@pytest.mark.parametrize(
    ("args", "settings", "dot_env", "folder"),
    [
        ([], {}, "", ".dynamodb/8000"),
        ([], {"DYNAMODB_PORT": "8123"}, "", ".dynamodb/8123"),
        (["--port", "8124"], {"DYNAMODB_PORT": "8123"}, "", ".dynamodb/8124"),
        ([], {}, "DYNAMODB_PORT=8125\n", ".dynamodb/8125"),
        ([], {"DYNAMODB_PORT": "8123"}, "DYNAMODB_PORT=8125\n", ".dynamodb/8123"),
        ([], {"DYNAMODB_DATA_DIR": "{tmp}/chosen/data"}, "", "{tmp}/chosen"),
        (["--data-dir", "{tmp}/a/data"], {"DYNAMODB_DATA_DIR": "{tmp}/b/data"}, "", "{tmp}/a"),
    ],
)
def test_the_command_line_finds_the_folder_its_settings_choose(
    tmp_path: Path, args: list[str], settings: dict[str, str], dot_env: str, folder: str
) -> None:
    (tmp_path / ".env").write_text(dot_env)
    tmp = str(tmp_path)
    status = cli(
        "status",
        *[a.format(tmp=tmp) for a in args],
        env={k: v.format(tmp=tmp) for k, v in settings.items()},
        env_file=tmp_path / ".env",
    )

    pid_file = (ROOT / folder.format(tmp=tmp)) / "dynamodb.pid"
    assert (status.returncode, status.stdout) == (
        3,
        f"DynamoDB Local is not running (no live process in {pid_file})\n",
    )


@pytest.mark.parametrize("port", ["0", "65536", "eighty"])
def test_the_command_line_refuses_a_port_that_is_not_one(tmp_path: Path, port: str) -> None:
    status = cli("status", env={"DYNAMODB_PORT": port}, env_file=tmp_path / ".env")

    assert status.returncode == 2
    assert "DYNAMODB_PORT must be" in status.stderr


# -- make run (run_server.py up) beside make dynamodb-start and make dynamodb-stop ---------------


@pytest.mark.dynamodb_local
@pytest.mark.slow
def test_a_store_restarted_under_make_run_is_left_to_make_dynamodb_stop(tmp_path: Path) -> None:
    dynamodb_port, port = local.free_port(), local.free_port()
    place = pidfile.place_for(dynamodb_port, tmp_path / "state" / "data")
    settings = {"DYNAMODB_PORT": str(dynamodb_port), "DYNAMODB_DATA_DIR": str(place.data_dir)}
    env = aws_env(
        **settings, PORT=str(port), GUNICORN_WORKERS="1", DYNAMODB_TABLE_PREFIX="restarted"
    )
    command = [sys.executable, "run_server.py", "--env-file", str(tmp_path / ".env"), "up"]
    with (tmp_path / "up.log").open("wb") as log:
        stack = subprocess.Popen(
            [*command, "--no-generate"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    replacement: DynamoDBLocal | None = None
    try:
        wait_for(lambda: pidfile.read(place.pid_file) is not None, "make run starts its store")
        own = pidfile.read(place.pid_file)
        assert own is not None
        # The store dies under the running stack, and `make dynamodb-start` starts another.
        os.kill(own.pid, signal.SIGKILL)
        wait_for(lambda: not local.port_in_use(dynamodb_port), "the killed store's port is free")
        restarted = cli("start", env=settings, env_file=tmp_path / "none.env")
        replacement = pidfile.read(place.pid_file)
        assert restarted.returncode == 0, restarted.stderr
        assert replacement is not None and replacement.pid != own.pid

        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0, (tmp_path / "up.log").read_text()[-3000:]

        assert pidfile.read(place.pid_file) == replacement  # not the stack's to stop
        assert local.answers(dynamodb_port)
        stopped = cli("stop", env=settings, env_file=tmp_path / "none.env")
        assert stopped.stdout == f"DynamoDB Local stopped (pid {replacement.pid})\n"
        assert refuses_connections(dynamodb_port)
    finally:
        local.terminate(stack)
        pidfile.stop_recorded(place)
        if replacement is not None:  # even when its record was lost
            local.stop(replacement.pid)
