"""The API's per-process cache of neighbour lists: by run, bounded, kept from a second read."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

import run_server
from server import Settings, create_app
from server.cache import Ranked, ResultCache
from store import Neighbour, NeighbourList
from store.memory import MemoryStore
from tests.fakes import CountingStore, publish_lists


def client(store: MemoryStore) -> FlaskClient:
    return create_app(store, Settings(pointer_cache_seconds=0)).test_client()


def similar(client: FlaskClient, user: int) -> list[int]:
    return [
        u["user_handle"] for u in client.get(f"/similar-users/{user}").json["data"]["similar_users"]
    ]


def test_a_user_asked_for_again_and_again_is_read_from_the_store_once():
    store = CountingStore()
    publish_lists(store, {110: [(7, 0.5)], 7: [(110, 0.5)]})
    api = client(store)

    answers = [similar(api, 110) for _ in range(5)]

    assert answers == [[7]] * 5
    assert store.list_reads == 1


def test_a_cached_list_keeps_which_matches_are_mutual():
    store = CountingStore()
    publish_lists(store, {110: [(7, 0.5, True), (8, 0.25, False), (9, 0.125, True)]})
    api = client(store)

    first = api.get("/similar-users/110").json["data"]["similar_users"]
    again = api.get("/similar-users/110").json["data"]["similar_users"]
    kept = api.get("/similar-users/110?mutual_only=true&top_n=1").json["data"]["similar_users"]

    assert first == again
    assert [(u["user_handle"], u["mutual"]) for u in again] == [(7, True), (8, False), (9, True)]
    assert kept == [{"user_handle": 7, "score": 0.5, "mutual": True}]
    assert store.list_reads == 1


def test_a_ranked_list_is_filtered_to_its_mutual_matches_before_it_is_cut():
    ranked = Ranked.of(
        NeighbourList(1, (Neighbour(2, 0.9), Neighbour(3, 0.8, True), Neighbour(4, 0.7, True)))
    )

    assert [u["user_handle"] for u in ranked.best(2)] == [2, 3]
    assert [u["user_handle"] for u in ranked.best(1, mutual_only=True)] == [3]
    assert [u["user_handle"] for u in ranked.best(5, mutual_only=True)] == [3, 4]


@pytest.mark.parametrize("pointer_cache_seconds", [0, 60])
def test_an_absent_user_is_asked_of_the_store_each_time(pointer_cache_seconds):
    # An absence may be an eventually consistent read of a just-published item: never kept.
    store = CountingStore()
    run = publish_lists(store, {110: [(7, 0.5)]})
    api = create_app(store, Settings(pointer_cache_seconds=pointer_cache_seconds)).test_client()

    statuses = [api.get("/similar-users/999").status_code for _ in range(3)]
    store.write_lists(run, [NeighbourList(999, (Neighbour(110, 0.5),))])  # now visible

    assert statuses == [404] * 3
    assert store.list_reads == 3
    assert similar(api, 999) == [110]


def test_a_new_run_is_answered_from_itself_never_from_the_cache_of_the_old_one():
    store = CountingStore()
    publish_lists(store, {110: [(7, 0.5)]})
    api = client(store)
    for _ in range(3):
        similar(api, 110)

    publish_lists(store, {110: [(42, 0.9)]})

    assert similar(api, 110) == [42]


def entry(user: int, neighbours: int = 1) -> Ranked:
    return Ranked.of(
        NeighbourList(user, tuple(Neighbour(user + 1 + n, 0.5) for n in range(neighbours)))
    )


ONE = entry(0).nbytes  # the room one short list takes


def cached(cache: ResultCache, users: range | list[int]) -> list[int]:
    """Return which of the users are cached, without touching the cache's order."""
    return [
        u
        for u in users
        if cache._probation.get(("m", "r", u)) or cache._protected.get(("m", "r", u))
    ]


def test_the_cache_never_holds_more_than_its_bytes():
    cache = ResultCache(max_bytes=10 * ONE)
    for user in range(100):
        cache.offer(("m", "r", user), entry(user))
        if user % 3 == 0:
            cache.get(("m", "r", user))

    assert len(cache) == 10 and cache.nbytes == 10 * ONE


def test_long_lists_take_more_room_and_the_bound_still_holds():
    cache = ResultCache(max_bytes=100 * ONE)
    for user in range(200):
        cache.offer(("m", "r", user), entry(user, neighbours=1 + user % 200))
        cache.get(("m", "r", user))

        assert cache.nbytes <= 100 * ONE
    held = [*cache._probation.values(), *cache._protected.values()]
    assert cache.nbytes == sum(r.nbytes for r in held)
    assert 1 < len(held) < 100  # fewer long lists than short ones fit


def test_a_list_larger_than_probation_is_not_kept_and_pushes_nothing_out():
    cache = ResultCache(max_bytes=10 * ONE)  # probation: 2 short lists
    for user in (1, 2):
        cache.offer(("m", "r", user), entry(user))

    cache.offer(("m", "r", 3), entry(3, neighbours=100))

    assert cached(cache, [1, 2, 3]) == [1, 2] and cache.nbytes == 2 * ONE


@pytest.mark.parametrize("megabytes", [-1.0, float("nan"), float("inf")])
def test_settings_refuse_a_cache_size_that_is_not_a_finite_number(megabytes):
    with pytest.raises(ValueError, match="result_cache_mb"):
        Settings(result_cache_mb=megabytes)


def test_a_list_cached_costs_its_items_and_a_fixed_overhead():
    short, long = entry(1, neighbours=5), entry(1, neighbours=50)

    # an int64 handle, a float64 score and a mutual flag's byte each
    assert long.nbytes - short.nbytes == 45 * (8 + 8 + 1)
    assert 1000 < long.nbytes < 1500  # measured in the server: 1.3 KB for 50 neighbours


def test_a_list_offered_twice_is_held_once():
    # Two threads that missed the same user both offer what they read.
    cache = ResultCache(max_bytes=10 * ONE)
    key = ("m", "r", 1)
    cache.offer(key, entry(1))
    cache.get(key)  # now protected
    cache.offer(key, entry(1))
    cache.offer(("m", "r", 2), entry(2))
    cache.offer(("m", "r", 2), entry(2))

    assert len(cache) == 2 and cache.nbytes == 2 * ONE


def test_a_list_on_probation_is_the_first_to_go_and_a_list_asked_for_again_is_kept():
    cache = ResultCache(max_bytes=10 * ONE)  # 2 on probation, 8 protected
    for user in range(8):
        cache.offer(("m", "r", user), entry(user))
        assert cache.get(("m", "r", user)) == entry(user)  # asked again: protected
    for user in (100, 101, 102):
        cache.offer(("m", "r", user), entry(user))

    assert cached(cache, range(8)) == list(range(8))
    assert cached(cache, [100, 101, 102]) == [101, 102]


def test_the_least_recently_used_protected_list_drops_back_to_probation():
    cache = ResultCache(max_bytes=5 * ONE)  # 1 on probation, 4 protected
    for user in range(5):
        cache.offer(("m", "r", user), entry(user))
        cache.get(("m", "r", user))

    assert cached(cache, range(5)) == [0, 1, 2, 3, 4]  # 0 went back to probation
    cache.offer(("m", "r", 9), entry(9))
    assert cached(cache, range(10)) == [1, 2, 3, 4, 9]


def test_users_asked_for_once_do_not_push_out_the_users_asked_for_often():
    cache = ResultCache(max_bytes=5 * ONE)
    hot = ("m", "r", 1)
    cache.offer(hot, entry(1))
    cache.get(hot)

    for user in range(100, 1000):
        cache.offer(("m", "r", user), entry(user))

    assert cache.get(hot) == entry(1)


def test_a_cache_of_size_zero_keeps_nothing():
    cache = ResultCache(max_bytes=0)
    key = ("m", "r", 1)
    cache.offer(key, entry(1))

    assert cache.get(key) is None and len(cache) == 0 and cache.nbytes == 0


def test_the_cache_size_comes_from_the_environment_and_zero_turns_it_off():
    assert run_server.config_from_env({}).settings.result_cache_mb == 128
    assert run_server.config_from_env({"RESULT_CACHE_MB": "0.5"}).settings.result_cache_mb == 0.5
    assert run_server.config_from_env({"RESULT_CACHE_MB": "0"}).settings.result_cache_mb == 0
    store = CountingStore()
    publish_lists(store, {110: [(7, 0.5)]})
    api = create_app(store, Settings(pointer_cache_seconds=0, result_cache_mb=0)).test_client()

    for _ in range(3):
        assert similar(api, 110) == [7]
    assert store.list_reads == 3


@pytest.mark.parametrize("value", ["-1", "lots", "nan", "inf"])
def test_a_bad_cache_size_in_the_environment_is_named(value):
    with pytest.raises(run_server.ConfigError, match="RESULT_CACHE_MB"):
        run_server.config_from_env({"RESULT_CACHE_MB": value})


def test_the_former_count_setting_is_refused_with_its_new_name():
    with pytest.raises(run_server.ConfigError, match=r"RESULT_CACHE_LISTS.*RESULT_CACHE_MB"):
        run_server.config_from_env({"RESULT_CACHE_LISTS": "32768"})
