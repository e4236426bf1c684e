"""One contract for every NeighbourStore: in memory, moto, and the real DynamoDB Local."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from moto import mock_aws

from store import (
    IncompleteWriteError,
    Neighbour,
    NeighbourList,
    NeighbourStore,
    Run,
    RunStatus,
    StaleRunError,
    StoreError,
    new_run_id,
)
from store.dynamo import DynamoStore
from store.memory import MemoryStore
from tests.fakes import Lists, publish_lists


@pytest.fixture(
    params=["memory", "moto", pytest.param("dynamodb_local", marks=pytest.mark.dynamodb_local)]
)
def store(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[NeighbourStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "moto":
        yield from moto_store(table_prefix)
    else:
        yield request.getfixturevalue("local_store")


def moto_store(table_prefix: str) -> Iterator[DynamoStore]:
    """Yield a DynamoStore on moto, which intercepts boto3 only: every call goes through boto3."""
    with mock_aws():
        on_moto = DynamoStore.connect(
            table_prefix=table_prefix, region="us-east-1", fast_path=False
        )
        on_moto.ensure_tables()
        yield on_moto


def make_run(model: str = "interests") -> Run:
    return Run(
        model_handle=model,
        run_id=new_run_id(),
        generated_at="2026-11-23T10:00:00Z",
        top_n=3,
        shards=4,
        settings={"weighting": "tfidf"},
    )


def lists_for(users: range, offset: int = 1000) -> Lists:
    """Return hand-written lists: user u's neighbours are u + offset and u + offset + 1."""
    return {u: [(u + offset, 0.9), (u + offset + 1, 0.433123)] for u in users}


def write(store: NeighbourStore, run: Run, lists: Lists) -> None:
    """Begin a run and write its lists, without publishing it."""
    store.begin_run(run)
    store.write_lists(run, [neighbour_list(u, pairs) for u, pairs in lists.items()])


def publish(store: NeighbourStore, run: Run, lists: Lists) -> Run:
    """Begin, write and publish a run of hand-written lists."""
    write(store, run, lists)
    return store.publish(run, expected_users=len(lists))


def neighbour_list(user: int, pairs: list[tuple[int, float]]) -> NeighbourList:
    return NeighbourList(user, tuple(Neighbour(h, s) for h, s in pairs))


def test_nothing_is_current_before_the_first_publish(store):
    assert store.current_run("interests") is None
    assert store.current_runs() == {}


def test_a_published_run_serves_every_list_exactly(store):
    run = make_run()
    lists = lists_for(range(1, 61))  # more than two 25-item batches
    write(store, run, lists)
    published = store.publish(run, expected_users=60)
    current = store.current_run("interests")
    assert current == published
    assert current.status == RunStatus.PUBLISHED
    assert current.user_count == 60
    assert current.settings == {"weighting": "tfidf"}
    for user, pairs in lists.items():
        assert store.get_list(current, user) == neighbour_list(user, pairs)


def test_scores_come_back_as_floats_in_rank_order(store):
    run = publish_lists(store, {7: [(3, 1.0), (9, 0.5), (2, 0.000001)]})
    got = store.get_list(run, 7)
    assert [n.user_handle for n in got.neighbours] == [3, 9, 2]
    assert all(isinstance(n.score, float) for n in got.neighbours)
    assert [n.score for n in got.neighbours] == [1.0, 0.5, 0.000001]


def test_mutual_matches_come_back_marked_and_the_others_not(store):
    lists = {
        1: [(2, 0.9, True), (3, 0.5, True)],
        2: [(1, 0.9, True)],
        3: [(4, 0.7, False), (1, 0.5, True)],  # 4 lists nobody
        4: [],
    }
    run = publish_lists(store, lists)
    for user, entries in lists.items():
        found = store.get_list(run, user)
        assert [(n.user_handle, n.score, n.mutual) for n in found.neighbours] == entries


def test_a_user_with_an_empty_list_is_known_but_has_no_neighbours(store):
    run = publish_lists(store, {5: []})
    assert store.get_list(run, 5) == NeighbourList(5, ())
    assert store.get_list(run, 6) is None


def test_a_run_that_is_being_written_is_invisible(store):
    first = publish_lists(store, lists_for(range(1, 4)))
    write(store, make_run(), lists_for(range(1, 4), offset=5000))
    assert store.current_run("interests") == first
    assert store.get_list(first, 1).neighbours[0].user_handle == 1001


def test_a_run_missing_lists_cannot_be_published(store):
    first = publish_lists(store, lists_for(range(1, 4)))
    second = make_run()
    write(store, second, lists_for(range(1, 3)))
    with pytest.raises(IncompleteWriteError, match="expected 3"):
        store.publish(second, expected_users=3)
    assert store.current_run("interests") == first


def test_the_pointer_only_moves_forward(store):
    older, newer = make_run(), make_run()
    assert older.run_id < newer.run_id
    for run in (older, newer):
        write(store, run, lists_for(range(1, 3)))
    store.publish(newer, expected_users=2)
    with pytest.raises(StaleRunError):
        store.publish(older, expected_users=2)
    assert store.current_run("interests").run_id == newer.run_id


def test_a_new_run_replaces_the_current_one(store):
    publish_lists(store, lists_for(range(1, 3)))
    second = publish_lists(store, lists_for(range(1, 3), offset=7000))
    current = store.current_run("interests")
    assert current.run_id == second.run_id
    assert store.get_list(current, 1).neighbours[0].user_handle == 7001


def test_models_have_independent_pointers(store):
    interests = publish_lists(store, lists_for(range(1, 3)), "interests")
    views = publish_lists(store, lists_for(range(10, 12)), "course_views")
    assert store.current_runs() == {"course_views": views, "interests": interests}
    assert store.get_list(views, 1) is None


def test_runs_are_listed_oldest_first_with_their_status(store):
    first = publish_lists(store, lists_for(range(1, 3)))
    writing = make_run()
    store.begin_run(writing)
    runs = store.runs("interests")
    assert [r.run_id for r in runs] == [first.run_id, writing.run_id]
    assert [r.status for r in runs] == [RunStatus.PUBLISHED, RunStatus.WRITING]


def test_a_run_id_cannot_be_begun_twice(store):
    run = make_run()
    store.begin_run(run)
    with pytest.raises(StoreError):
        store.begin_run(replace(run))


def test_deleting_an_old_run_removes_its_lists_but_the_current_run_is_protected(store):
    old = publish_lists(store, lists_for(range(1, 40)))
    current = publish_lists(store, lists_for(range(1, 40)))
    with pytest.raises(StoreError):
        store.delete_run(current)
    assert store.delete_run(old) == 39
    assert store.get_list(old, 1) is None
    assert [r.run_id for r in store.runs("interests")] == [current.run_id]
    assert store.get_list(current, 1) is not None


def test_rollback_makes_the_previous_run_current_and_it_is_never_rolled_back_to_again(store):
    first = publish_lists(store, lists_for(range(1, 4)))
    second = publish_lists(store, lists_for(range(1, 4), offset=5000))
    assert store.rollback("interests") == first
    assert store.current_run("interests").run_id == first.run_id
    assert store.get_list(store.current_run("interests"), 1).neighbours[0].user_handle == 1001
    statuses = {r.run_id: r.status for r in store.runs("interests")}
    assert statuses == {first.run_id: RunStatus.PUBLISHED, second.run_id: RunStatus.ROLLED_BACK}
    with pytest.raises(StoreError, match="no earlier published run"):
        store.rollback("interests")


def test_a_rolled_back_run_cannot_be_published_again_but_a_newer_run_can(store):
    publish_lists(store, lists_for(range(1, 3)))
    bad = publish_lists(store, lists_for(range(1, 3)))
    store.rollback("interests")
    with pytest.raises(StaleRunError):
        store.publish(bad, expected_users=2)
    newer = publish_lists(store, lists_for(range(1, 3)))
    assert store.current_run("interests").run_id == newer.run_id


def test_rollback_without_a_published_run_is_an_error(store):
    with pytest.raises(StoreError, match="no published run"):
        store.rollback("interests")


def test_a_run_carries_its_quality_and_export_wherever_it_is_read(store):
    quality = {"k": 10, "recall": 0.25, "ndcg": 0.125, "users_evaluated": 300}
    export = {"id": "ab12", "files": {"user_course_views.csv": {"bytes": 10, "sha256": "0f"}}}
    run = replace(make_run(), quality=quality, export=export)
    write(store, run, lists_for(range(1, 3)))

    published = store.publish(run, expected_users=2)

    assert (published.quality, published.export) == (quality, export)
    assert store.current_run("interests") == published
    assert store.current_runs()["interests"] == published
    assert [(r.quality, r.export) for r in store.runs("interests")] == [(quality, export)]


ARTIFACT = {"uri": "file:///srv/artifacts/interests/x", "sha256": "ab" * 32, "bytes": 1234}


def test_a_run_begun_with_its_artifact_keeps_it_when_published(store):
    run = replace(make_run(), artifact=ARTIFACT)
    write(store, run, lists_for(range(1, 3)))

    published = store.publish(replace(run, artifact=None), expected_users=2)

    assert published.artifact == ARTIFACT
    assert store.current_run("interests") == published
    assert store.current_runs()["interests"] == published
    assert [r.artifact for r in store.runs("interests")] == [ARTIFACT]


def test_an_artifact_written_after_the_run_was_begun_is_recorded_when_it_is_published(store):
    run = make_run()
    write(store, run, lists_for(range(1, 3)))
    assert [r.artifact for r in store.runs("interests")] == [None]

    published = store.publish(replace(run, artifact=ARTIFACT), expected_users=2)

    assert published.artifact == ARTIFACT
    assert store.current_run("interests") == published
    assert [r.artifact for r in store.runs("interests")] == [ARTIFACT]


def test_a_rollback_goes_back_to_the_earlier_runs_own_artifact(store):
    first = publish(store, replace(make_run(), artifact=ARTIFACT), lists_for(range(1, 3)))
    publish(store, replace(make_run(), artifact=ARTIFACT | {"uri": "file:///other"}), {1: []})

    assert store.rollback("interests").artifact == ARTIFACT
    assert store.current_run("interests") == first


def test_a_run_without_quality_reads_back_without_it(store):
    published = publish(store, make_run(), lists_for(range(1, 3)))
    assert (published.quality, published.export, published.artifact) == (None, None, None)
    assert store.current_run("interests") == published


def test_retiring_the_current_run_leaves_the_model_without_one(store):
    first = publish(store, make_run(), lists_for(range(1, 3)))
    other = publish(store, make_run("course_views"), lists_for(range(1, 3)))

    assert store.retire(first) is True

    assert store.current_run("interests") is None
    assert store.current_runs() == {"course_views": other}
    assert [r.status for r in store.runs("interests")] == [RunStatus.RETIRED]
    assert store.retire(first) is False  # nothing is current any more


def test_a_run_no_longer_current_is_not_retired(store):
    first = publish(store, make_run(), lists_for(range(1, 3)))
    second = publish(store, make_run(), lists_for(range(1, 3)))

    assert store.retire(first) is False

    assert store.current_run("interests") == second
    assert {r.run_id: r.status for r in store.runs("interests")} == {
        first.run_id: RunStatus.PUBLISHED,
        second.run_id: RunStatus.PUBLISHED,
    }


def test_deleting_the_current_run_is_refused_and_leaves_it_published(store):
    current = publish_lists(store, lists_for(range(1, 4)))
    with pytest.raises(StoreError, match="is current"):
        store.delete_run(current)
    assert [r.status for r in store.runs("interests")] == [RunStatus.PUBLISHED]
    assert store.get_list(current, 1) is not None


# -- crash safety of DynamoDB's multi-request operations, through clients that misbehave --------


@pytest.fixture(params=["moto", pytest.param("dynamodb_local", marks=pytest.mark.dynamodb_local)])
def dynamo(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[DynamoStore]:
    """A DynamoStore (with no fast path: every call goes through its client)."""
    if request.param == "moto":
        yield from moto_store(table_prefix)
    else:
        yield request.getfixturevalue("local_store")


class Client:
    """A DynamoDB client passing every call on to a real one, for subclasses to misbehave."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class DiesWhileDeleting(Client):
    """Deletes one batch of a run's lists, then the process 'dies' (every later batch fails)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.deleted_batches = 0

    def batch_write_item(self, **kwargs: Any) -> Any:
        (requests,) = kwargs["RequestItems"].values()
        if "DeleteRequest" in requests[0]:
            if self.deleted_batches >= 1:
                raise ConnectionAbortedError("the cleanup died")
            self.deleted_batches += 1
        return self.client.batch_write_item(**kwargs)


class RetriesEveryUpdate(Client):
    """Applies each UpdateItem twice, as a retry after a lost answer to one that did apply does."""

    def update_item(self, **kwargs: Any) -> Any:
        self.client.update_item(**kwargs)
        return self.client.update_item(**kwargs)


class DeletesDuringRollback(Client):
    """Lets `cleanup` begin to delete a run just before a rollback's transaction is sent."""

    def __init__(self, client: Any, cleanup: Callable[[], None]) -> None:
        super().__init__(client)
        self.cleanup = cleanup

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.cleanup()
        return self.client.transact_write_items(**kwargs)


def on(client: Any, store: DynamoStore) -> DynamoStore:
    """Return a store on the same tables as `store`, through `client`."""
    return DynamoStore(client, table_prefix=store.table_prefix, writers=1)


def test_a_half_deleted_run_is_never_rolled_back_to_and_the_next_cleanup_finishes_it(dynamo):
    lists = lists_for(range(1, 80))  # 79 lists: more than one batch of 25 to delete
    oldest, previous, current = (publish_lists(dynamo, lists) for _ in range(3))
    dying = on(DiesWhileDeleting(dynamo.client), dynamo)

    with pytest.raises(ConnectionAbortedError):
        dying.delete_run(oldest)

    statuses = {r.run_id: r.status for r in dynamo.runs("interests")}
    assert statuses[oldest.run_id] == RunStatus.DELETING
    assert dynamo.get_list(oldest, 1) is None  # its first batch is gone
    assert dynamo.rollback("interests").run_id == previous.run_id
    with pytest.raises(StoreError, match="no earlier published run"):
        dynamo.rollback("interests")  # not onto the half-deleted run
    assert dynamo.current_run("interests").run_id == previous.run_id

    assert dynamo.delete_run(oldest) == 79 - 25
    assert oldest.run_id not in [r.run_id for r in dynamo.runs("interests")]
    assert current.run_id in [r.run_id for r in dynamo.runs("interests")]


def test_a_rollback_onto_a_run_that_begins_to_be_deleted_meanwhile_changes_nothing(dynamo):
    previous = publish_lists(dynamo, lists_for(range(1, 4)))
    current = publish_lists(dynamo, lists_for(range(1, 4)))
    dies = DiesWhileDeleting(dynamo.client)
    dies.deleted_batches = 1  # it dies before deleting anything: the run is only marked
    dying = on(dies, dynamo)

    def cleanup() -> None:
        with pytest.raises(ConnectionAbortedError):
            dying.delete_run(previous)

    racing = on(DeletesDuringRollback(dynamo.client, cleanup), dynamo)
    with pytest.raises(StaleRunError, match=f"{previous.run_id}.*began to be deleted"):
        racing.rollback("interests")

    assert dynamo.current_run("interests").run_id == current.run_id
    statuses = {r.run_id: r.status for r in dynamo.runs("interests")}
    assert statuses == {previous.run_id: RunStatus.DELETING, current.run_id: RunStatus.PUBLISHED}


def test_a_retried_count_of_written_lists_is_not_counted_twice(dynamo):
    retried = on(RetriesEveryUpdate(dynamo.client), dynamo)
    run = make_run()
    lists = lists_for(range(1, 31))
    retried.begin_run(run)
    half = [neighbour_list(u, pairs) for u, pairs in lists.items()]
    retried.write_lists(run, half[:10])
    retried.write_lists(run, half[10:])

    published = retried.publish(run, expected_users=30)

    assert dynamo.current_run("interests") == published
    assert published.user_count == 30


# -- lists written in parts (a Spark partition each): a retried part is counted once -----------


@pytest.mark.parametrize(
    "writes",
    [
        pytest.param(
            [("p0", range(1, 11)), ("p0", range(1, 11)), ("p1", range(11, 26))], id="retried"
        ),
        pytest.param(
            [("p0", range(1, 11)), ("p1", range(11, 26)), ("p2", range(26, 31))], id="parts"
        ),
        pytest.param([(None, range(1, 11)), (None, range(11, 26))], id="no-part"),
        pytest.param(
            [(None, range(1, 11)), ("p1", range(11, 26)), ("p1", range(11, 26))], id="mixed"
        ),
    ],
)
def test_each_list_is_counted_once_however_its_part_was_written(store, writes):
    run = make_run()
    store.begin_run(run)
    users = sorted({u for _, part_users in writes for u in part_users})
    lists = lists_for(range(users[0], users[-1] + 1))

    for part, part_users in writes:
        batch = [neighbour_list(u, lists[u]) for u in part_users]
        assert store.write_lists(run, batch, part=part) == len(part_users)

    published = store.publish(run, expected_users=len(users))
    assert published.user_count == len(users)
    assert store.get_list(published, users[-1]) == neighbour_list(users[-1], lists[users[-1]])


def test_a_part_retried_after_its_count_was_lost_is_counted_once(dynamo):
    # A retried task through a client that applies every count twice: still each list once.
    retried = on(RetriesEveryUpdate(dynamo.client), dynamo)
    run = make_run()
    lists = [neighbour_list(u, pairs) for u, pairs in lists_for(range(1, 21)).items()]
    retried.begin_run(run)
    for _ in range(2):
        retried.write_lists(run, lists[:12], part="0")
    retried.write_lists(run, lists[12:], part="1")

    with pytest.raises(IncompleteWriteError, match="holds 20 lists"):
        retried.publish(run, expected_users=32)
    assert retried.publish(run, expected_users=20).user_count == 20
