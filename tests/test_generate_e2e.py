"""The generator command line end to end, into a real DynamoDB Local."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.dynamodb_local import DynamoDBLocal
from store import Run, RunStatus, run_started
from store.dynamo import DynamoStore
from tests.fakes import aws_env, wait_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.dynamodb_local, pytest.mark.slow]


def generator(
    args: list[str],
    endpoint: str,
    prefix: str,
    extra_env: dict[str, str] | None = None,
    **popen: object,
) -> subprocess.Popen[str]:
    env = aws_env(endpoint, DYNAMODB_TABLE_PREFIX=prefix, **(extra_env or {}))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_generator.py"), *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,  # type: ignore[arg-type]
    )


def run_generator(
    args: list[str], endpoint: str, prefix: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    process = generator(args, endpoint, prefix, extra_env)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def store_for(instance: DynamoDBLocal, prefix: str) -> DynamoStore:
    return DynamoStore.connect(table_prefix=prefix, endpoint_url=instance.endpoint_url)


def test_generate_publishes_every_model_from_a_synthetic_export(dynamodb_local, table_prefix):
    done = run_generator(
        ["generate", "--synthetic-users", "1500", "--top-n", "10"],
        dynamodb_local.endpoint_url,
        table_prefix,
    )
    assert done.returncode == 0, done.stderr
    store = store_for(dynamodb_local, table_prefix)
    runs = store.current_runs()
    assert sorted(runs) == [
        "assessments",
        "course_factors",
        "course_tags",
        "course_views",
        "hybrid",
        "interests",
    ]
    for run in runs.values():
        assert run.status == RunStatus.PUBLISHED
        assert run.top_n == 10
        assert 0 < run.user_count <= 1500
    lists = [store.get_list(runs["interests"], user) for user in range(1, 31)]
    assert all(nl is not None for nl in lists)  # every synthetic user follows some interest
    for neighbour_list in lists:
        assert neighbour_list.user_handle not in [n.user_handle for n in neighbour_list.neighbours]
        assert 0 < len(neighbour_list.neighbours) <= 10
    assert "published run" in done.stderr and "neighbours" in done.stderr


def test_a_killed_run_leaves_the_previous_run_current_and_the_next_run_cleans_up(
    dynamodb_local, table_prefix
):
    args = ["generate", "--synthetic-users", "3000", "--models", "interests", "--top-n", "20"]
    first = run_generator(args, dynamodb_local.endpoint_url, table_prefix)
    assert first.returncode == 0, first.stderr
    store = store_for(dynamodb_local, table_prefix)
    before = store.current_run("interests")
    served_before = store.get_list(before, 1)

    doomed = generator(args, dynamodb_local.endpoint_url, table_prefix)

    def writing() -> Run | None:
        assert doomed.poll() is None, "the generator finished before it could be killed"
        return next((r for r in store.runs("interests") if r.status == RunStatus.WRITING), None)

    try:
        wait_for(writing, "the second run began", timeout=120)
        dead = writing()
        assert dead is not None
        wait_for(lambda: store.get_list(dead, 1) is not None, "the second run wrote lists")
        doomed.send_signal(signal.SIGKILL)
    finally:
        doomed.kill()
        doomed.communicate()
    assert [r for r in store.runs("interests") if r.status == RunStatus.WRITING] == [dead]
    assert store.current_run("interests") == before
    assert store.get_list(before, 1) == served_before

    # The next run keeps the dead one: a slower generator could still be writing it ...
    third = run_generator(args, dynamodb_local.endpoint_url, table_prefix)
    assert third.returncode == 0, third.stderr
    after = store.current_run("interests")
    assert after.run_id > dead.run_id > before.run_id
    assert {r.run_id for r in store.runs("interests")} == {before.run_id, dead.run_id, after.run_id}

    # ... until it is older than ABANDONED_RUN_SECONDS (a day by default).
    began = run_started(dead.run_id)
    assert began is not None
    wait_for(lambda: datetime.now(UTC) - began > timedelta(seconds=1), "the dead run is 1 s old")
    fourth = run_generator(
        args, dynamodb_local.endpoint_url, table_prefix, extra_env={"ABANDONED_RUN_SECONDS": "1"}
    )
    assert fourth.returncode == 0, fourth.stderr
    last = store.current_run("interests")
    assert [r.run_id for r in store.runs("interests")] == [after.run_id, last.run_id]


def test_a_file_missing_a_column_fails_with_a_message_naming_file_and_column(
    dynamodb_local, table_prefix, tmp_path
):
    (tmp_path / "user_interests.csv").write_text("user_handle,date_followed\n1,2017-06-01\n")
    done = run_generator(
        ["generate", "--data-dir", str(tmp_path)], dynamodb_local.endpoint_url, table_prefix
    )
    assert done.returncode == 1
    assert "user_interests.csv" in done.stderr
    assert "'interest_tag'" in done.stderr
    assert store_for(dynamodb_local, table_prefix).current_runs() == {}


def test_an_unreachable_store_fails_with_a_clear_message(tmp_path, table_prefix):
    from devstack.dynamodb_local import free_port

    done = run_generator(
        ["generate", "--synthetic-users", "50"], f"http://127.0.0.1:{free_port()}", table_prefix
    )
    assert done.returncode == 1
    assert "Could not connect" in done.stderr or "DynamoDB" in done.stderr
    assert "Traceback" not in done.stderr
