"""`run_generator.py rollback --model M`: one command puts the previous published run back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import run_generator
from store import Neighbour, Run, RunStatus
from store.dynamo import DynamoStore
from tests.fakes import aws_env, publish_lists

pytestmark = [pytest.mark.dynamodb_local]

SCRIPT = Path(run_generator.__file__).resolve()


def publish(store: DynamoStore, user_score: float) -> Run:
    return publish_lists(store, {1: [(2, user_score)]}, shards=2)


def rollback(store: DynamoStore, endpoint: str, model: str) -> subprocess.CompletedProcess[str]:
    env = aws_env(endpoint, DYNAMODB_TABLE_PREFIX=store.table_prefix, LOG_LEVEL="INFO")
    return subprocess.run(
        [sys.executable, str(SCRIPT), "rollback", "--model", model],
        cwd=SCRIPT.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rollback_makes_the_previous_run_current_and_says_which(local_store, dynamodb_local):
    first = publish(local_store, 0.5)
    second = publish(local_store, 0.9)

    done = rollback(local_store, dynamodb_local.endpoint_url, "interests")

    assert done.returncode == 0, done.stderr
    assert first.run_id in done.stdout
    assert local_store.current_run("interests").run_id == first.run_id
    assert local_store.get_list(first, 1).neighbours == (Neighbour(2, 0.5),)
    statuses = {r.run_id: r.status for r in local_store.runs("interests")}
    assert statuses == {first.run_id: RunStatus.PUBLISHED, second.run_id: RunStatus.ROLLED_BACK}


def rollback_in_process(store: DynamoStore, endpoint: str) -> int:
    """Run the command in this process (no import cost), with the store's settings."""
    env = aws_env(endpoint, DYNAMODB_TABLE_PREFIX=store.table_prefix)
    return run_generator.main(["rollback", "--model", "interests"], env=env)


def test_rollback_with_no_earlier_run_fails_clearly_and_changes_nothing(
    local_store, dynamodb_local, caplog
):
    only = publish(local_store, 0.5)

    code = rollback_in_process(local_store, dynamodb_local.endpoint_url)

    assert code == 1
    assert "no earlier published run" in caplog.text
    assert local_store.current_run("interests").run_id == only.run_id


def test_rollback_of_a_model_never_published_fails_clearly(local_store, dynamodb_local, caplog):
    code = rollback_in_process(local_store, dynamodb_local.endpoint_url)

    assert code == 1
    assert "no published run" in caplog.text
    assert local_store.current_run("interests") is None


def test_rollback_never_creates_tables(dynamodb_local, table_prefix, caplog):
    env = aws_env(dynamodb_local.endpoint_url, DYNAMODB_TABLE_PREFIX=table_prefix)

    code = run_generator.main(["rollback", "--model", "interests"], env=env)

    assert code == 1
    assert "tables do not exist" in caplog.text
    store = DynamoStore.connect(table_prefix=table_prefix, endpoint_url=dynamodb_local.endpoint_url)
    names = store.client.list_tables()["TableNames"]
    assert not [name for name in names if name.startswith(table_prefix)]
