"""The store's pure parts: run ids, shards, which runs cleanup may delete, and reading items."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from store import (
    Neighbour,
    NeighbourList,
    Run,
    RunStatus,
    StoreError,
    StoreUnavailableError,
    new_run_id,
    rollback_target,
    runs_to_delete,
    shard_of,
)
from store.dynamo import DynamoStore
from store.items import from_item, pointer_item, run_from_item, run_to_item, to_item


def run(run_id: str, status: str = RunStatus.PUBLISHED) -> Run:
    return Run(model_handle="interests", run_id=run_id, generated_at="", status=status)


def test_run_ids_sort_in_time_order_even_within_one_microsecond():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_run_id(start + timedelta(microseconds=i)) for i in range(0, 2000, 7)]
    assert ids == sorted(ids)
    assert len(set(new_run_id(start) for _ in range(50))) == 50


def test_shards_spread_consecutive_users_over_every_shard():
    assert {shard_of(u, 16) for u in range(1, 17)} == set(range(16))


def test_nothing_is_deleted_while_no_run_is_current():
    assert runs_to_delete([run("a", RunStatus.WRITING)], None) == []


def test_cleanup_keeps_the_current_run_and_the_previous_published_one():
    runs = [run("1"), run("2"), run("3"), run("4")]
    assert [r.run_id for r in runs_to_delete(runs, "4")] == ["1", "2"]


def test_cleanup_deletes_abandoned_older_runs_but_never_newer_ones_still_being_written():
    runs = [run("1"), run("2", RunStatus.WRITING), run("3"), run("4", RunStatus.WRITING)]
    assert [r.run_id for r in runs_to_delete(runs, "3")] == ["2"]


def test_an_abandoned_run_is_not_mistaken_for_the_rollback_target():
    runs = [run("1"), run("2", RunStatus.WRITING), run("3")]
    assert [r.run_id for r in runs_to_delete(runs, "3")] == ["2"]


def test_a_rollback_goes_to_the_newest_earlier_published_run_skipping_others():
    runs = [run("1"), run("2", RunStatus.ROLLED_BACK), run("3", RunStatus.WRITING), run("4")]
    assert rollback_target(runs, "4") == run("1")
    assert rollback_target(runs, "1") is None


def test_cleanup_deletes_rolled_back_runs_once_a_newer_run_is_current():
    runs = [run("1"), run("2", RunStatus.ROLLED_BACK), run("3")]
    assert [r.run_id for r in runs_to_delete(runs, "3")] == ["2"]


def test_an_older_run_still_being_written_is_kept_for_a_day_then_deleted_as_abandoned():
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    slower = run(new_run_id(now - timedelta(hours=1)), RunStatus.WRITING)  # began first
    current = run(new_run_id(now - timedelta(minutes=5)))
    abandoned = run(new_run_id(now - timedelta(hours=25)), RunStatus.WRITING)

    deleted = runs_to_delete([abandoned, slower, current], current.run_id, now=now)

    assert deleted == [abandoned]
    later = now + timedelta(hours=24)
    assert runs_to_delete([slower, current], current.run_id, now=later) == [slower]


class Answers:
    """A DynamoDB client whose GetItem answers `item`, or raises `error`."""

    def __init__(self, item: dict | None = None, error: Exception | None = None) -> None:
        self.item, self.error = item, error

    def get_item(self, **kwargs):
        if self.error is not None:
            raise self.error
        return {"Item": self.item}


RUN = Run("interests", new_run_id(), "2026-12-01T00:00:00Z", top_n=3, shards=2)


@pytest.mark.parametrize(
    "item",
    [
        {"pk": {"S": "x"}, "user_handle": {"N": "1"}},  # no list
        {"user_handle": {"N": "1"}, "similar_users": {"S": "[[2, 0.5"}},  # cut short
        {"user_handle": {"N": "1"}, "similar_users": {"S": '{"a": 1}'}},  # not pairs
        {"user_handle": {"N": "1"}, "similar_users": {"S": "[" * 100_000 + "]" * 100_000}},
        {"user_handle": {"N": "one"}, "similar_users": {"S": "[]"}},
    ],
)
def test_a_malformed_result_item_is_a_store_error(item):
    with pytest.raises(StoreError, match="malformed"):
        DynamoStore(Answers(item)).get_list(RUN, 1)


def test_a_malformed_pointer_is_a_store_error():
    with pytest.raises(StoreError, match="malformed"):
        DynamoStore(Answers({"model_handle": {"S": "interests"}})).current_run("interests")


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "Credentials were refreshed, but the refreshed credentials are still expired."
        ),
        RecursionError("maximum recursion depth exceeded"),
    ],
)
def test_the_sdk_failing_inside_is_the_store_unavailable(error):
    with pytest.raises(StoreUnavailableError):
        DynamoStore(Answers(error=error)).get_list(RUN, 1)


ARTIFACT = {"uri": "s3://bucket/artifacts/interests/x", "sha256": "ab" * 32, "bytes": 1234}


@pytest.mark.parametrize(
    "described",
    [
        {},
        {"quality": {"k": 10, "recall": 0.25}},
        {"export": {"id": "ab12", "files": {}}},
        {"artifact": ARTIFACT},
        {"quality": {"k": 10}, "export": {"id": "ab12"}, "artifact": ARTIFACT},
    ],
)
def test_a_run_reads_back_from_its_record_and_its_pointer_as_it_was_written(described):
    written = Run("interests", new_run_id(), "2026-12-01T00:00:00Z", top_n=3, **described)
    assert run_from_item(run_to_item(written)) == written
    assert run_from_item(pointer_item(written)) == written


def test_a_runs_artifact_is_one_json_string_attribute_left_out_when_there_is_none():
    assert "artifact" not in run_to_item(RUN)
    item = run_to_item(replace(RUN, artifact=ARTIFACT))
    assert json.loads(item["artifact"]["S"]) == ARTIFACT


# -- result items ------------------------------------------------------------------------------


def neighbour_list(*entries: tuple[int, float, bool]) -> NeighbourList:
    return NeighbourList(110, tuple(Neighbour(*entry) for entry in entries))


@pytest.mark.parametrize(
    "written",
    [
        neighbour_list(),
        neighbour_list((7, 0.5, False), (9, 0.25, False)),
        neighbour_list((7, 0.5, True), (9, 0.25, False), (12, 0.125, True)),
        neighbour_list(*((u, 0.5, True) for u in range(1, 51))),
    ],
    ids=["empty", "none mutual", "some mutual", "all 50 mutual"],
)
def test_a_list_reads_back_from_its_item_as_it_was_written(written):
    assert from_item(to_item(RUN, written)) == written


def test_the_mutual_neighbours_are_a_hexadecimal_bitmask_of_their_places_in_the_list():
    written = neighbour_list((7, 0.5, True), (9, 0.25, False), (12, 0.125, True))

    item = to_item(RUN, written)

    assert item["similar_users"] == {"S": "[[7,0.500000],[9,0.250000],[12,0.125000]]"}
    assert item["mutual"] == {"S": "5"}  # the first (1) and the third (4)


def test_an_item_without_mutual_neighbours_is_the_item_of_before():
    item = to_item(RUN, neighbour_list((7, 0.5, False)))

    assert set(item) == {"pk", "user_handle", "similar_users"}


def test_an_item_written_before_mutual_neighbours_were_marked_reads_as_none_mutual():
    old = {
        "pk": {"S": f"interests#{RUN.run_id}#0"},
        "user_handle": {"N": "110"},
        "similar_users": {"S": "[[7,0.500000],[9,0.250000]]"},
    }

    assert from_item(old) == neighbour_list((7, 0.5, False), (9, 0.25, False))


@pytest.mark.parametrize("bits", ["", "0x5", "5_0", " 5", "A", "g", "8"])
def test_a_mutual_bitmask_that_is_not_one_of_ours_is_a_malformed_item(bits):
    item = to_item(RUN, neighbour_list((7, 0.5, True), (9, 0.25, False), (12, 0.125, True)))
    item["mutual"] = {"S": bits}  # "8": a fourth neighbour, past the end of the list

    with pytest.raises(StoreError, match="malformed"):
        from_item(item)


def test_marking_every_neighbour_mutual_keeps_an_item_of_50_near_one_write_unit():
    # DynamoDB counts an item as its attribute names plus their values.
    def size(item: dict) -> int:
        return sum(len(name) + len(next(iter(value.values()))) for name, value in item.items())

    handles = range(9_999_950, 10_000_000)  # the longest handles of a 10M-user export
    plain = to_item(RUN, neighbour_list(*((u, 0.123456, False) for u in handles)))
    marked = to_item(RUN, neighbour_list(*((u, 0.123456, True) for u in handles)))

    assert size(marked) - size(plain) == len("mutual") + 13  # 50 bits in 13 hexadecimal digits
    assert size(marked) < 1_100
