"""The API under hostile or unlucky traffic: what clients choose never multiplies store reads, and
what the store answers is checked before it is served or cached."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from server import Settings, create_app
from store import NeighbourList, Run, StoreError
from store.memory import MemoryStore
from tests.fakes import Clock, CountingStore, DownStore, publish_lists

INTERESTS = {110: [(7, 0.5)], 7: [(110, 0.5)]}


class ProbedStore(CountingStore, DownStore):
    """A store that can be down (see DownStore), counting the reads asked of it, failed or not:
    pointers and lists (see CountingStore), and listings of every model's pointer."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.listings = 0

    def current_runs(self) -> dict[str, Run]:
        self.listings += 1
        return super().current_runs()


def api(store: Any, clock: Clock, **settings: Any) -> FlaskClient:
    return create_app(store, Settings(**settings), clock=clock).test_client()


def served(**settings: Any) -> tuple[ProbedStore, Clock, FlaskClient]:
    """Return a store holding one run of interests, a clock, and a client of the API on both."""
    store = ProbedStore()
    publish_lists(store, INTERESTS)
    clock = Clock()
    return store, clock, api(store, clock, **settings)


def burst(
    client: FlaskClient, clock: Clock, paths: list[str], reads: Callable[[], int], wait: float
) -> tuple[list[int], int, int]:
    """Ask for the paths all at one instant, then for the first again `wait` seconds later;
    return the burst's statuses, the store reads it made, and the reads the later request made."""
    before = reads()
    statuses = [client.get(path).status_code for path in paths]
    during = reads() - before
    clock.now += wait
    client.get(paths[0])
    return statuses, during, reads() - before - during


# -- readiness ------------------------------------------------------------------------------------


def test_readiness_asks_the_store_once_per_second_however_often_it_is_probed():
    store, clock, client = served(pointer_cache_seconds=0)

    statuses, reads, later = burst(client, clock, ["/readyz"] * 20, lambda: store.listings, 1)

    assert statuses == [200] * 20
    assert (reads, later) == (1, 1)


def test_readiness_keeps_a_failure_for_its_second_too_and_sees_the_store_come_back():
    store, clock, client = served(retry_after_seconds=7)
    store.up = False

    down = [client.get("/readyz") for _ in range(10)]
    reads_down = store.listings
    store.up = True
    clock.now += 1
    up = client.get("/readyz")

    assert {r.status_code for r in down} == {503}
    assert {r.headers["Retry-After"] for r in down} == {"7"}
    assert reads_down == 1
    assert up.status_code == 200 and up.json["models"] == ["interests"]


def test_how_long_readiness_is_kept_is_a_setting():
    store, _, client = served(readiness_cache_seconds=0)

    for _ in range(3):
        client.get("/readyz")

    assert store.listings == 3


# -- what clients choose --------------------------------------------------------------------------


def test_unknown_users_read_the_pointer_again_at_most_once_a_second():
    store, clock, client = served(pointer_cache_seconds=60)
    client.get("/similar-users/110?model_handle=interests")
    clock.now += 10
    unknown = [f"/similar-users/{user}?model_handle=interests" for user in range(1000, 1100)]

    statuses, reads, later = burst(client, clock, unknown, lambda: store.pointer_reads, 1)

    assert statuses == [404] * 100
    assert (reads, later) == (1, 1)  # one fresh read for all 100 unknown users


def test_made_up_model_names_never_push_out_the_pointer_of_a_model_being_served():
    store, _, client = served(pointer_cache_seconds=60)
    client.get("/similar-users/110?model_handle=interests")

    made_up = [
        client.get(f"/similar-users/110?model_handle=made_up_{n}").status_code for n in range(300)
    ]
    reads = store.pointer_reads
    interests = client.get("/similar-users/110?model_handle=interests").status_code

    assert made_up == [404] * 300
    assert interests == 200
    assert store.pointer_reads == reads  # interests' pointer is still cached


def test_a_model_without_a_run_is_asked_of_the_store_once_per_pointer_period():
    store, clock, client = served(pointer_cache_seconds=5)
    nope = ["/similar-users/110?model_handle=nope"] * 10

    statuses, reads, later = burst(client, clock, nope, lambda: store.pointer_reads, 5)

    assert statuses == [404] * 10
    assert (reads, later) == (1, 1)


def test_a_model_published_after_it_was_asked_for_is_served_once_the_pointer_period_ends():
    store, clock, client = served(pointer_cache_seconds=5)
    before = client.get("/similar-users/110?model_handle=course_views").status_code

    publish_lists(store, {110: [(9, 0.3)]}, "course_views")
    clock.now += 5
    after = client.get("/similar-users/110?model_handle=course_views")

    assert before == 404
    assert after.status_code == 200 and after.json["data"]["model_handle"] == "course_views"


def test_a_down_store_is_asked_for_a_pointer_at_most_once_a_second_while_cached_lists_answer():
    store, clock, client = served(pointer_cache_seconds=5)
    client.get("/similar-users/110?model_handle=interests")
    store.up = False
    clock.now += 60
    cached = ["/similar-users/110?model_handle=interests"] * 50

    statuses, reads, later = burst(client, clock, cached, lambda: store.pointer_reads, 1)

    assert statuses == [200] * 50
    assert (reads, later) == (1, 1)  # one failed read for all 50, then one a second later


def test_a_request_waits_on_one_failing_read_at_most():
    store, clock, client = served(pointer_cache_seconds=5)
    client.get("/similar-users/110?model_handle=interests")
    store.up = False
    clock.now += 60

    statuses = [
        client.get(f"/similar-users/{user}?model_handle=interests").status_code
        for user in (7, 7, 110)
    ]

    assert statuses == [503, 503, 200]
    # The first request's pointer read failed; no list was asked of the store that just failed.
    assert (store.pointer_reads, store.list_reads) == (2, 1)


# -- what the store answers -----------------------------------------------------------------------


class CrossedStore(MemoryStore):
    """A store that, while `crossed`, answers with the list or the run of someone else."""

    def __init__(self) -> None:
        super().__init__()
        self.crossed = True

    def get_list(self, run: Run, user_handle: int) -> NeighbourList | None:
        found = super().get_list(run, user_handle)
        if self.crossed and found is not None:
            return NeighbourList(user_handle + 1, found.neighbours)
        return found

    def current_run(self, model_handle: str) -> Run | None:
        if self.crossed and model_handle == "course_views":
            return super().current_run("interests")
        return super().current_run(model_handle)


def test_another_users_list_is_neither_served_nor_cached():
    store = CrossedStore()
    publish_lists(store, INTERESTS)
    client = api(store, Clock(), pointer_cache_seconds=0)

    crossed = client.get("/similar-users/110?model_handle=interests")
    store.crossed = False
    right = client.get("/similar-users/110?model_handle=interests")

    assert crossed.status_code == 503
    assert "110" not in crossed.json["detail"] and "111" not in crossed.json["detail"]
    assert right.status_code == 200
    assert right.json["data"]["similar_users"] == [
        {"user_handle": 7, "score": 0.5, "mutual": False}
    ]


def test_another_models_run_is_not_served():
    store = CrossedStore()
    publish_lists(store, INTERESTS)
    publish_lists(store, {110: [(9, 0.3)]}, "course_views")
    client = api(store, Clock(), pointer_cache_seconds=0)

    assert client.get("/similar-users/110?model_handle=course_views").status_code == 503


class RefusingStore(MemoryStore):
    """A store that refuses every read, as DynamoDB does a role without access."""

    def current_run(self, model_handle: str) -> Run | None:
        raise StoreError("DynamoDB refused a read: AccessDeniedException")

    def current_runs(self) -> dict[str, Run]:
        raise StoreError("DynamoDB refused a read: AccessDeniedException")


@pytest.mark.parametrize(
    "path",
    ["/similar-users/110?model_handle=interests", "/similar-users/110", "/models", "/readyz"],
)
def test_a_store_that_refuses_a_read_is_503_with_retry_after_and_logged(path, caplog):
    client = api(RefusingStore(), Clock(), retry_after_seconds=7)

    with caplog.at_level(logging.ERROR):
        response = client.get(path)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json["title"] == "Store unavailable"
    assert "AccessDenied" not in response.get_data(as_text=True)
    assert "AccessDeniedException" in caplog.text
