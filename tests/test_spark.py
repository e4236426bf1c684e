"""The Spark engine against the local one, with a real local Spark (local[2]) and DynamoDB Local.

One Spark session serves the module (starting it takes seconds); each test publishes under its
own table prefix. Faults reach the executors through the engine's `fault` seam: a task's Python
worker ends itself mid-publish (as a killed task does) or raises.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyspark", reason="the Spark engine's extra: pip install -e '.[spark]'")

from pyspark import cloudpickle

from generator import pipeline
from generator.spark import engine, read, session
from generator.spark.rows import Blocks, user_index
from generator.synthetic import synthesize
from generator.tables import Limits, load_tables
from server import Settings, create_app
from similarity.features import UserIndex
from similarity.space import ModelSpace
from store import NeighbourList, RunStatus
from store.artifacts import Artifact, FileArtifacts
from store.dynamo import DynamoStore
from store.items import from_item
from store.memory import MemoryStore
from tests.fakes import FAKE_AWS

# The faults below run on the executors, whose Python workers cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [
    pytest.mark.dynamodb_local,
    pytest.mark.slow,
    # pyspark leaves the sockets it reads collected results from to the garbage collector.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
]

TOP_N = 20
# Two blocks of users per run here (blocks = cores × this): every block-pair path is taken (a
# block against itself and against the other) in the fewest Spark tasks.
PARTITIONS_PER_CORE = 1


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    started = session.start("local[2]")
    yield started
    started.stop()
    gc.collect()  # pyspark's sockets are closed here, under this module's warning filter


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,000-user synthetic export with a survey: every model can be built from it."""
    folder = tmp_path_factory.mktemp("export")
    synthesize(2000, folder, seed=3, survey=True)
    return folder


@pytest.fixture(scope="module")
def small_tables(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> read.SparkTables:
    """A 300-user export as Spark read it (read once for the fault tests)."""
    folder = tmp_path_factory.mktemp("small")
    synthesize(300, folder, seed=5)
    return read.read_export(spark, str(folder))


def dynamo(instance: Any, prefix: str) -> DynamoStore:
    store = DynamoStore.connect(table_prefix=prefix, endpoint_url=instance.endpoint_url)
    store.ensure_tables()
    return store


def spec(instance: Any, prefix: str) -> engine.StoreSpec:
    """How the executors reach DynamoDB Local: their workers were started before this test set
    its environment, so region and (fake) credentials travel with the spec."""
    return engine.StoreSpec(
        table_prefix=prefix,
        endpoint_url=instance.endpoint_url,
        region=FAKE_AWS["AWS_DEFAULT_REGION"],
        credentials=(FAKE_AWS["AWS_ACCESS_KEY_ID"], FAKE_AWS["AWS_SECRET_ACCESS_KEY"], None),
    )


def stored_lists(store: DynamoStore, model_handle: str, run_id: str) -> dict[int, NeighbourList]:
    """Every list of a run, read by scanning the results table."""
    found: dict[int, NeighbourList] = {}
    pages = store.client.get_paginator("scan").paginate(TableName=store.results_table)
    for page in pages:
        for item in page["Items"]:
            if item["pk"]["S"].rsplit("#", 1)[0] == f"{model_handle}#{run_id}":
                listed = from_item(item)
                found[listed.user_handle] = listed
    return found


def test_every_model_from_spark_equals_the_local_engine_and_is_served(
    spark, export, dynamodb_local, table_prefix, tmp_path
):
    # The local engine, into memory.
    local_tables = load_tables(export)
    local_store = MemoryStore()
    local_artifacts = FileArtifacts(tmp_path / "local")
    pipeline.run(
        local_tables,
        local_store,
        top_n_stored=TOP_N,
        approximate=False,
        artifacts=local_artifacts,
    )
    # The Spark engine, into DynamoDB Local, its executors writing the lists.
    store = dynamo(dynamodb_local, table_prefix)
    spark_artifacts = FileArtifacts(tmp_path / "spark")
    results = engine.run(
        spark,
        read.read_export(spark, str(export)),
        store,
        spec(dynamodb_local, table_prefix).open,
        top_n_stored=TOP_N,
        artifacts=spark_artifacts,
        partitions_per_core=PARTITIONS_PER_CORE,
    )
    local_runs, spark_runs = local_store.current_runs(), store.current_runs()
    assert sorted(spark_runs) == sorted(local_runs)
    assert len(spark_runs) == 7  # every model, the survey's too
    assert {r.model_handle for r in results} == set(spark_runs)
    handles = UserIndex.of(local_tables).handles
    for model_handle, run in spark_runs.items():
        local_run = local_runs[model_handle]
        assert run.status == RunStatus.PUBLISHED
        assert run.user_count == local_run.user_count
        assert run.settings["engine"]["name"] == "spark"
        lists = stored_lists(store, model_handle, run.run_id)
        assert len(lists) == run.user_count
        compared = 0
        for user in handles.tolist():
            expected = local_store.get_list(local_run, user)
            if expected is None:
                assert user not in lists, (model_handle, user)
                continue
            got = lists[user]
            assert [n.user_handle for n in got.neighbours] == [
                n.user_handle for n in expected.neighbours
            ], (model_handle, user)
            assert np.allclose(
                [n.score for n in got.neighbours], [n.score for n in expected.neighbours], atol=1e-6
            ), (model_handle, user)
            assert [n.mutual for n in got.neighbours] == [n.mutual for n in expected.neighbours]
            compared += 1
        assert compared == run.user_count
        # The same model artifact: the same space, row for row.
        ours = ModelSpace.load(
            spark_artifacts.fetch(Artifact.from_record(run.artifact), tmp_path), mmap=False
        )
        theirs = ModelSpace.load(
            local_artifacts.fetch(Artifact.from_record(local_run.artifact), tmp_path), mmap=False
        )
        assert (ours.handles == theirs.handles).all()
        assert (ours.matrix.indptr == theirs.matrix.indptr).all()
        assert (ours.matrix.indices == theirs.matrix.indices).all()
        assert np.allclose(ours.matrix.data, theirs.matrix.data, atol=1e-6)
        assert [b.handle for b in ours.blocks] == [b.handle for b in theirs.blocks]
        for mine, other in zip(ours.blocks, theirs.blocks, strict=True):
            assert list(mine.features) == list(other.features)
            assert sorted(mine.arrays) == sorted(other.arrays)
            for name, values in mine.arrays.items():
                assert np.allclose(values, other.arrays[name], rtol=1e-9, atol=1e-9), name
    # Served by the API from the runs the executors wrote.
    client = create_app(store, Settings(api_key=None)).test_client()
    user = int(handles[0])
    for model_handle in ("hybrid", "survey"):
        answer = client.post(
            "/similar-users", json={"user_handle": user, "model_handle": model_handle}
        )
        assert answer.status_code == 200, answer.get_json()
        expected = local_store.get_list(local_runs[model_handle], user)
        assert expected is not None
        data = answer.get_json()["data"]
        assert data["run_id"] == spark_runs[model_handle].run_id
        served = [row["user_handle"] for row in data["similar_users"]]
        assert served and served == [n.user_handle for n in expected.neighbours[: len(served)]]


def published_parts(store: DynamoStore, run_id: str, model_handle: str) -> dict[str, int]:
    record = store.client.get_item(
        TableName=store.runs_table,
        Key={"model_handle": {"S": model_handle}, "run_id": {"S": run_id}},
        ConsistentRead=True,
    )["Item"]
    return {key: int(value["N"]) for key, value in record["lists_written"]["M"].items()}


class DiesOnce:
    """A fault that ends the task's Python worker the first time a part reaches a point."""

    def __init__(self, marker: Path, part: str, after: int, recorded: bool) -> None:
        self.marker, self.part, self.after, self.recorded = marker, part, after, recorded

    def __call__(self, part: str, lists: int, recorded: bool) -> None:
        if part != self.part or recorded != self.recorded or lists < self.after:
            return
        try:
            self.marker.open("x").close()  # only the first attempt finds no marker
        except FileExistsError:
            return
        os._exit(17)  # the worker dies mid-task, as a killed executor's task does


@pytest.mark.parametrize("recorded", [False, True], ids=["mid-write", "after-its-count"])
def test_a_task_killed_mid_publish_is_retried_and_the_run_publishes_once(
    spark, small_tables, dynamodb_local, table_prefix, tmp_path, recorded
):
    store = dynamo(dynamodb_local, table_prefix)
    marker = tmp_path / "died"
    fault = DiesOnce(marker, engine.part_name(1), after=5, recorded=recorded)
    (result,) = engine.run(
        spark,
        small_tables,
        store,
        spec(dynamodb_local, table_prefix).open,
        ["interests"],
        top_n_stored=10,
        partitions_per_core=PARTITIONS_PER_CORE,
        fault=fault,
    )
    assert marker.exists()  # the task did die once
    run = store.current_run("interests")
    assert run is not None and run.run_id == result.run_id
    assert run.status == RunStatus.PUBLISHED and run.user_count == result.users
    parts = published_parts(store, run.run_id, "interests")
    assert sum(parts.values()) == result.users  # each list counted once, the retry's included
    assert all(key.startswith("part:block-") for key in parts)
    assert len(stored_lists(store, "interests", run.run_id)) == result.users


class AlwaysFails:
    def __call__(self, part: str, lists: int, recorded: bool) -> None:
        if part == engine.part_name(0) and lists == 3:
            raise RuntimeError("this block's writer always fails")


def test_a_job_that_fails_leaves_the_previous_run_current(
    spark, small_tables, dynamodb_local, table_prefix
):
    store = dynamo(dynamodb_local, table_prefix)
    opener = spec(dynamodb_local, table_prefix).open
    settings = {"top_n_stored": 10, "partitions_per_core": PARTITIONS_PER_CORE}
    (first,) = engine.run(spark, small_tables, store, opener, ["interests"], **settings)
    with pytest.raises(Exception, match="always fails") as raised:
        engine.run(
            spark, small_tables, store, opener, ["interests"], **settings, fault=AlwaysFails()
        )
    # What the command line says of it: one line, the Python cause, no Java trace.
    said = session.job_error(raised.value)
    assert said is not None
    assert str(said) == "the Spark job failed: RuntimeError: this block's writer always fails"
    current = store.current_run("interests")
    assert current is not None and current.run_id == first.run_id
    unpublished = [r for r in store.runs("interests") if r.run_id != first.run_id]
    assert len(unpublished) == 1 and unpublished[0].status == RunStatus.WRITING


BAD_ROWS = {
    "user_interests.csv": (
        "user_handle,interest_tag,date_followed\n"
        "1,python,2017-06-27\n"
        "x,python,2017-06-27\n"  # not an integer
        "2,,2017-06-27\n"  # empty tag
        "3,java,yesterday\n"  # not a date
        "4,java,2017-06-27,extra\n"  # a field too many
        "5,java\n"  # a field too few
        "\n"  # a blank line: not a row
        "1,python,2017-06-27\n"  # a duplicate
        "6,caf\xe9,2017-06-27\n"  # replaced below by bytes that are not UTF-8
        f"7,{'x' * 300},2017-06-27\n"  # longer than the limit below
        "8,go,2017-06-28\n"
    ),
    "user_course_views.csv": (
        "user_handle,view_date,course_id,author_handle,level,view_time_seconds\n"
        "1,2017-06-27,python-intro,5,Beginner,3600\n"
        "2,2017-06-27,python-intro,5,Beginner,-5\n"  # negative seconds
        "3,2017-06-27,python-intro,,Beginner,abc\n"  # not a number
        "4,2017-06-27,,5,Beginner,60\n"  # empty course
        "8,2017-06-28,go-intro,6,,120\n"
    ),
    "user_assessment_scores.csv": (
        "user_handle,assessment_tag,user_assessment_date,user_assessment_score\n"
        "1,python,2017-06-27,150\n"
        "2,python,2017-06-27,\n"  # empty score
        "8,go,2017-06-28,200\n"
    ),
    "course_tags.csv": (
        "course_id,course_tags\n"
        "python-intro,python\n"
        "go-intro,\n"  # a course without tags: not an error
        "go-intro,go\n"
        ",go\n"  # empty course
    ),
    "questions.csv": (
        "question_id,text,scale_min,scale_max,reverse_keyed\n"
        "q1,I like it,1,5,false\n"
        "q2,I do not,5,1,false\n"  # empty scale
        "q1,Again,1,5,true\n"  # repeated question
        "q3,Maybe,1,7,maybe\n"  # not a flag
    ),
    "user_answers.csv": (
        "user_handle,question_id,answer,answered_at\n"
        "1,q1,4,2024-01-01\n"
        "1,q1,5,2024-02-01\n"  # supersedes the answer above
        "2,q1,9,2024-01-01\n"  # off its scale
        "3,q9,3,2024-01-01\n"  # unknown question
        "4,q1,many,2024-01-01\n"  # not a number
    ),
}


def test_bad_rows_give_the_same_report_as_the_local_loader(spark, tmp_path):
    for name, text in BAD_ROWS.items():
        data = text.encode("utf-8").replace("caf\xe9".encode(), b"caf\xe9")
        (tmp_path / name).write_bytes(data)
    limits = Limits(max_row_bytes=200)
    local = load_tables(tmp_path, limits=limits)
    spark_read = read.read_export(spark, str(tmp_path), limits)
    assert local.report.rejected  # the export has bad rows of many kinds
    assert spark_read.report.summary() == local.report.summary()
    assert spark_read.report.rejected == local.report.rejected
    index = user_index(spark_read)
    assert (index.handles == UserIndex.of(local).handles).all()
    blocks = Blocks.cut(index.handles, 3)  # fewer users than blocks: a block each
    assert blocks.count == len(index) and [blocks.users(b).tolist() for b in range(2)] == [[1], [8]]


@pytest.mark.parametrize(
    ("master", "retried"),
    [
        ("local[2]", "local[2,4]"),
        ("local", "local[1,4]"),
        ("local[*]", "local[*,4]"),
        ("local[2,8]", "local[2,4]"),
        ("spark://cluster:7077", "spark://cluster:7077"),
        ("yarn", "yarn"),
    ],
)
def test_a_local_master_retries_a_failed_task_as_a_cluster_does(master, retried):
    assert session.with_retries(master) == retried
    assert session.local_master(master) == master.startswith("local")


def test_users_are_cut_into_blocks_of_consecutive_handles():
    handles = np.arange(10, dtype=np.int64) * 3 + 1
    blocks = Blocks.cut(handles, 3)
    assert blocks.count == 3
    assert np.concatenate([blocks.users(b) for b in range(3)]).tolist() == handles.tolist()
    assert [len(blocks.users(b)) for b in range(3)] == [3, 4, 3]
    assert blocks.of(handles).tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    nobody = Blocks.cut(np.empty(0, dtype=np.int64), 4)  # one empty block, as no user has rows
    assert nobody.count == 1 and len(nobody.users(0)) == 0
    assert engine.block_count(120_001, 2, 1) == 3  # at most MAX_BLOCK_USERS (50,000) per block
    assert engine.block_count(1_000, 8, 2) == 16
