"""The API over the in-memory store: every route, every error, one problem shape."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from generator import pipeline
from server import Settings, create_app
from similarity.features import UserIndex
from similarity.models import MODELS
from store import Neighbour, NeighbourList, Run, new_run_id
from store.memory import MemoryStore
from tests.builders import people_tables
from tests.fakes import (
    BrokenStore,
    Clock,
    CountingStore,
    DownStore,
    SpaceArtifacts,
    publish_lists,
    publish_space,
    with_mutual,
)

PROBLEM_KEYS = {"type", "title", "status", "detail"}
OPTIONAL_PROBLEM_KEYS = {"invalid_params", "available_models"}

# Hand-built runs where the answer is obvious: user 110 is most like 5182, then 7 and 9 (a tie,
# so by handle); 9 is in the interests run but has nobody in common; only 110 has course views.
# Stored as the generator stores them, each match marked mutual when it goes both ways: 110 and
# 5182, 110 and 7 are; 110's match with 9 and 7's with 5182 are not.
INTERESTS = {
    110: [(5182, 0.4331), (7, 0.2), (9, 0.2)],
    5182: [(110, 0.4331)],
    7: [(110, 0.2), (5182, 0.1)],
    9: [],
}
COURSE_VIEWS = {110: [(7, 0.8)], 7: [(110, 0.8)]}


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    publish_lists(store, with_mutual(INTERESTS))
    publish_lists(store, with_mutual(COURSE_VIEWS), "course_views")
    return store


def make_client(store: Any, clock: Clock | None = None, **settings: Any) -> FlaskClient:
    settings.setdefault("pointer_cache_seconds", 0)
    app: Flask = create_app(store, Settings(**settings), clock=clock or Clock())
    return app.test_client()


@pytest.fixture
def client(store: MemoryStore) -> FlaskClient:
    return make_client(store)


def similar(answer: dict[str, Any]) -> list[tuple[int, float]]:
    return [(u["user_handle"], u["score"]) for u in answer["data"]["similar_users"]]


# -- answers ---------------------------------------------------------------------------------


def test_post_answers_the_most_similar_users_best_first_with_scores(client):
    response = client.post("/similar-users", json={"user_handle": 110})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert similar(response.json) == INTERESTS[110]


def test_the_answer_names_the_run_it_came_from(client, store):
    current = store.current_run("interests")

    data = client.post("/similar-users", json={"user_handle": 110}).json["data"]

    assert data["model_handle"] == "interests"
    assert data["run_id"] == current.run_id
    assert data["generated_at"] == current.generated_at


def test_the_answer_echoes_the_request_with_defaults_filled_in(client):
    answer = client.post("/similar-users", json={"user_handle": 7}).json

    assert answer["request_data"] == {
        "user_handle": 7,
        "model_handle": "interests",
        "top_n": 5,
        "explain": False,
        "mutual_only": False,
    }


def test_get_gives_the_same_answer_as_post(client):
    posted = client.post(
        "/similar-users", json={"user_handle": 110, "model_handle": "course_views", "top_n": 1}
    )

    got = client.get("/similar-users/110?model_handle=course_views&top_n=1")

    assert got.status_code == 200
    assert got.json == posted.json


def test_top_n_limits_how_many_similar_users_come_back(client):
    answer = client.post("/similar-users", json={"user_handle": 110, "top_n": 2}).json

    assert similar(answer) == INTERESTS[110][:2]
    assert answer["request_data"]["top_n"] == 2


def test_asking_for_more_than_the_run_stored_returns_what_was_stored(client):
    answer = client.post("/similar-users", json={"user_handle": 110, "top_n": 1000}).json

    assert similar(answer) == INTERESTS[110]


def test_model_handle_chooses_the_model(client):
    answer = client.post(
        "/similar-users", json={"user_handle": 110, "model_handle": "course_views"}
    ).json

    assert answer["data"]["model_handle"] == "course_views"
    assert similar(answer) == COURSE_VIEWS[110]


def test_the_default_model_and_top_n_are_settings(store):
    client = make_client(store, default_model="course_views", default_top_n=1)

    answer = client.get("/similar-users/7").json

    assert answer["request_data"] == {
        "user_handle": 7,
        "model_handle": "course_views",
        "top_n": 1,
        "explain": False,
        "mutual_only": False,
    }
    assert similar(answer) == COURSE_VIEWS[7]


def test_a_user_in_the_run_with_nobody_in_common_gets_an_empty_list(client):
    response = client.post("/similar-users", json={"user_handle": 9})

    assert response.status_code == 200
    assert response.json["data"]["similar_users"] == []


def test_a_whole_number_written_with_a_decimal_point_is_a_whole_number(client):
    answer = client.post("/similar-users", json={"user_handle": 110.0, "top_n": 2.0}).json

    assert answer["request_data"]["user_handle"] == 110
    assert similar(answer) == INTERESTS[110][:2]


def test_json_with_a_charset_parameter_is_json(client):
    response = client.post(
        "/similar-users",
        data=b'{"user_handle": 110}',
        content_type="application/json; charset=utf-8",
    )

    assert response.status_code == 200


def test_models_lists_every_published_model_with_its_current_run(client, store):
    answer = client.get("/models").json

    assert answer["default_model"] == "interests"
    assert answer["models"] == [
        {
            "model_handle": run.model_handle,
            "run_id": run.run_id,
            "generated_at": run.generated_at,
            "user_count": run.user_count,
            "top_n": run.top_n,
        }
        for run in sorted(store.current_runs().values(), key=lambda r: r.model_handle)
    ]
    assert [m["user_count"] for m in answer["models"]] == [len(COURSE_VIEWS), len(INTERESTS)]


def test_healthz_says_alive_without_asking_the_store():
    client = make_client(DownStore())

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json == {"status": "alive"}


def test_readyz_says_ready_and_lists_the_published_models(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json == {"status": "ready", "models": ["course_views", "interests"]}


def test_readyz_is_not_ready_before_any_run_is_published():
    response = make_client(MemoryStore()).get("/readyz")

    assert response.status_code == 503
    assert response.json["title"] == "Not ready"
    assert response.headers["Retry-After"] == "5"


def test_openapi_json_is_served(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.")


def test_creating_the_app_does_not_touch_the_store():
    create_app(BrokenStore(), Settings())  # BrokenStore raises on any call


# -- mutual matches --------------------------------------------------------------------------


def mutual(answer: dict[str, Any]) -> list[tuple[int, bool]]:
    return [(u["user_handle"], u["mutual"]) for u in answer["data"]["similar_users"]]


def test_every_similar_user_says_whether_the_match_goes_both_ways(client):
    answer = client.post("/similar-users", json={"user_handle": 110}).json

    assert mutual(answer) == [(5182, True), (7, True), (9, False)]


def test_mutual_only_keeps_the_mutual_matches_then_cuts_to_top_n(client):
    def asked(user: int, top_n: int) -> dict[str, Any]:
        body = {"user_handle": user, "top_n": top_n, "mutual_only": True}
        return client.post("/similar-users", json=body).json

    assert similar(asked(110, 5)) == INTERESTS[110][:2]  # 9 does not list 110
    assert similar(asked(110, 1)) == INTERESTS[110][:1]
    assert similar(asked(7, 1)) == [(110, 0.2)]
    assert similar(asked(9, 5)) == []
    assert asked(110, 1)["request_data"] == {
        "user_handle": 110,
        "model_handle": "interests",
        "top_n": 1,
        "explain": False,
        "mutual_only": True,
    }


def test_mutual_only_in_the_query_string_gives_the_same_answer_as_post(client):
    posted = client.post("/similar-users", json={"user_handle": 7, "mutual_only": True})

    got = client.get("/similar-users/7?mutual_only=true")

    assert got.status_code == 200
    assert got.json == posted.json
    assert mutual(got.json) == [(110, True)]


def test_mutual_only_costs_no_read_beyond_the_users_list():
    store = CountingStore()
    publish_lists(store, with_mutual(INTERESTS))
    client = make_client(store, result_cache_mb=0)  # every request reads the store

    client.get("/similar-users/110")
    client.get("/similar-users/110?mutual_only=true")

    assert store.list_reads == 2


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/similar-users", {"user_handle": 110, "mutual_only": "yes"}),
        ("POST", "/similar-users", {"user_handle": 110, "mutual_only": 1}),
        ("POST", "/similar-users", {"user_handle": 110, "mutual_only": None}),
        ("GET", "/similar-users/110?mutual_only=1", None),
    ],
)
def test_mutual_only_must_be_true_or_false(client, method, path, body):
    response = client.open(path, method=method, json=body)

    assert response.status_code == 422
    assert response.json["invalid_params"] == [
        {"name": "mutual_only", "reason": "must be true or false"}
    ]


def test_mutual_only_with_a_profile_is_refused_naming_the_field_and_why(client):
    body = {"profile": {"interests": ["python"]}, "mutual_only": True}

    response = client.post("/similar-users", json=body)

    assert response.status_code == 422
    [invalid] = response.json["invalid_params"]
    assert invalid["name"] == "mutual_only"
    assert "user_handle" in invalid["reason"] and "nobody's" in invalid["reason"]


def test_a_profiles_answer_says_it_did_not_ask_for_mutual_matches_only(tmp_path):
    tables = people_tables()
    artifacts, store = SpaceArtifacts(), MemoryStore()
    publish_space(store, artifacts, MODELS["interests"].space(tables, UserIndex.of(tables)))
    app = create_app(store, Settings(artifact_cache_dir=tmp_path), artifacts=artifacts)
    body = {"profile": {"interests": ["python"]}, "mutual_only": False}

    answer = app.test_client().post("/similar-users", json=body).json

    assert answer["request_data"]["mutual_only"] is False
    assert answer["data"]["similar_users"]  # a newcomer's matches are found, not stored
    assert all("mutual" not in u for u in answer["data"]["similar_users"])


def test_explanations_explain_the_mutual_matches_kept(tmp_path):
    tables = people_tables()
    artifacts, store = SpaceArtifacts(), MemoryStore()
    # Lists of two, so that some matches are cut from the other user's list.
    publish_space(store, artifacts, MODELS["hybrid"].space(tables, UserIndex.of(tables)), top_n=2)
    client = create_app(
        store, Settings(artifact_cache_dir=tmp_path), artifacts=artifacts
    ).test_client()

    def explained(user: int, mutual_only: bool) -> list[dict[str, Any]]:
        body = {"user_handle": user, "explain": True, "mutual_only": mutual_only}
        return client.post("/similar-users", json={**body, "model_handle": "hybrid"}).json["data"][
            "similar_users"
        ]

    kept_some = cut_some = False
    for user in range(1, 9):
        everyone, kept = explained(user, False), explained(user, True)
        assert kept == [u for u in everyone if u["mutual"]]
        assert all(u["shared"] for u in kept)
        kept_some |= bool(kept)
        cut_some |= len(kept) < len(everyone)
    assert kept_some and cut_some


@pytest.fixture(scope="module")
def generated() -> tuple[MemoryStore, list[str]]:
    """Every model people_tables can build, generated and published as the job does."""
    store = MemoryStore()
    results = pipeline.run(people_tables(), store, top_n_stored=3)
    return store, [r.model_handle for r in results]


def test_every_models_answers_mark_exactly_the_matches_that_go_both_ways(generated):
    store, models = generated
    client = make_client(store)
    assert len(models) >= 6

    for model in models:
        answers = {}
        for user in range(1, 9):
            response = client.get(f"/similar-users/{user}?model_handle={model}&top_n=1000")
            if response.status_code == 200:
                answers[user] = response.json["data"]["similar_users"]
        listed = {(user, u["user_handle"]) for user, found in answers.items() for u in found}
        assert listed, model
        for user, found in answers.items():
            for u in found:
                assert u["mutual"] is ((u["user_handle"], user) in listed), (model, user, u)
            kept = client.get(
                f"/similar-users/{user}?model_handle={model}&top_n=1000&mutual_only=true"
            ).json["data"]["similar_users"]
            assert kept == [u for u in found if u["mutual"]], (model, user)


# -- the run pointer and its cache -----------------------------------------------------------


def test_a_newly_published_run_is_served_once_the_cache_expires(store):
    client = make_client(store, pointer_cache_seconds=0)
    client.get("/similar-users/110")

    newer = publish_lists(store, {110: [(42, 0.9)]})

    answer = client.get("/similar-users/110").json
    assert answer["data"]["run_id"] == newer.run_id
    assert similar(answer) == [(42, 0.9)]


def test_a_cached_pointer_is_kept_for_its_period_then_read_again(store):
    clock = Clock()
    client = make_client(store, clock, pointer_cache_seconds=60)
    first = client.get("/similar-users/110").json["data"]["run_id"]
    newer = publish_lists(store, {110: [(42, 0.9)]})

    clock.now += 59
    within = client.get("/similar-users/110").json
    clock.now += 1
    after = client.get("/similar-users/110").json

    assert within["data"]["run_id"] == first
    assert after["data"]["run_id"] == newer.run_id
    assert similar(after) == [(42, 0.9)]


def test_a_run_that_is_still_being_written_is_never_served(client, store):
    served = store.current_run("interests")
    half = Run("interests", new_run_id(), "2026-11-24T10:00:00Z", top_n=3, shards=4)
    store.begin_run(half)
    store.write_lists(half, [NeighbourList(110, (Neighbour(42, 0.9),))])

    answer = client.get("/similar-users/110").json

    assert answer["data"]["run_id"] == served.run_id
    assert similar(answer) == INTERESTS[110]


def test_the_run_pointer_is_read_once_per_cache_period():
    store = CountingStore()
    publish_lists(store, INTERESTS)
    client = make_client(store, pointer_cache_seconds=60)

    for _ in range(5):
        assert client.get("/similar-users/110").status_code == 200

    assert store.pointer_reads == 1


def test_a_cached_run_that_cleanup_deleted_is_replaced_by_the_current_one():
    store = CountingStore()
    first = publish_lists(store, INTERESTS)
    clock = Clock()
    client = make_client(store, clock, pointer_cache_seconds=60)
    client.get("/similar-users/110")  # caches the first run, and 110's list in it
    publish_lists(store, INTERESTS)
    third = publish_lists(store, {110: [(42, 0.9)], 7: [(42, 0.5)]})
    store.delete_run(first)
    clock.now += 1  # a pointer is read again at most once a second

    cached = client.get("/similar-users/110").json
    not_cached = client.get("/similar-users/7").json  # not found in the deleted run: re-read
    after = client.get("/similar-users/110").json

    # A list already cached is an exact copy of the published run it names (runs never change),
    # and is answered until the pointer is read again, as the cached pointer itself would be.
    assert cached["data"]["run_id"] == first.run_id
    assert similar(cached) == [(5182, 0.4331), (7, 0.2), (9, 0.2)]
    assert not_cached["data"]["run_id"] == after["data"]["run_id"] == third.run_id
    assert similar(not_cached) == [(42, 0.5)]
    assert similar(after) == [(42, 0.9)]


# -- errors ----------------------------------------------------------------------------------


@dataclass
class Call:
    """One request to the test client."""

    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def send(self, client: FlaskClient) -> Any:
        return client.open(self.path, method=self.method, **self.kwargs)

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.kwargs}"[:80]


def post(body: Any) -> Call:
    return Call("POST", "/similar-users", {"json": body})


def post_raw(data: bytes | str, content_type: str | None = "application/json") -> Call:
    kwargs: dict[str, Any] = {"data": data}
    if content_type is not None:
        kwargs["content_type"] = content_type
    return Call("POST", "/similar-users", kwargs)


MALFORMED = [
    post_raw(b'{"user_handle": '),
    post_raw(b'{"user_handle": 110,}'),
    post_raw(b'{"user_handle": NaN}'),
    post_raw(b'{"user_handle": Infinity}'),
    post_raw(b'{"user_handle": 110}\xff'),
    post_raw(b""),
    post_raw(b"[" * 2000 + b"]" * 2000),
]
WRONG_CONTENT_TYPE = [
    post_raw(b'{"user_handle": 110}', "text/plain"),
    post_raw(b'{"user_handle": 110}', None),
    Call("POST", "/similar-users", {"data": {"user_handle": "110"}}),  # a form
]
INVALID = [  # (request, the fields the problem must name)
    (post({}), ["user_handle", "profile"]),
    (post({"user_handle": "110"}), ["user_handle"]),
    (post({"user_handle": True}), ["user_handle"]),
    (post({"user_handle": 110.5}), ["user_handle"]),
    (post({"user_handle": None}), ["user_handle"]),
    (post({"user_handle": -1}), ["user_handle"]),
    (post({"user_handle": 2**63}), ["user_handle"]),
    (post({"user_handle": 1e300}), ["user_handle"]),
    (post({"user_handle": 110, "model_handle": 5}), ["model_handle"]),
    (post({"user_handle": 110, "model_handle": "Interests"}), ["model_handle"]),
    (post({"user_handle": 110, "model_handle": ""}), ["model_handle"]),
    (post({"user_handle": 110, "model_handle": "interests\n"}), ["model_handle"]),
    (post({"user_handle": 110, "model_handle": "a" * 65}), ["model_handle"]),
    (post({"user_handle": 110, "model_handle": None}), ["model_handle"]),
    (post({"user_handle": 110, "top_n": 0}), ["top_n"]),
    (post({"user_handle": 110, "top_n": 1001}), ["top_n"]),
    (post({"user_handle": 110, "top_n": "5"}), ["top_n"]),
    (post({"user_handle": 110, "userHandle": 110}), ["userHandle"]),
    (post({"top_n": 0, "model_handle": "?"}), ["user_handle", "profile", "top_n", "model_handle"]),
    (post([110]), ["body"]),
    (post(110), ["body"]),
    (Call("GET", "/similar-users/abc"), ["user_handle"]),
    (Call("GET", "/similar-users/-1"), ["user_handle"]),
    (Call("GET", "/similar-users/1.5"), ["user_handle"]),
    (Call("GET", "/similar-users/" + "9" * 5000), ["user_handle"]),
    (Call("GET", "/similar-users/110?top_n=x"), ["top_n"]),
    (Call("GET", "/similar-users/110?top_n=0"), ["top_n"]),
    (Call("GET", "/similar-users/110?model_handle="), ["model_handle"]),
    (Call("GET", "/similar-users/110?top_n=1&top_n=2"), ["top_n"]),
    (Call("GET", "/similar-users/110?topn=2"), ["topn"]),
    (Call("GET", "/similar-users/110?user_handle=7"), ["user_handle"]),
]
UNKNOWN_USER = [
    post({"user_handle": 999}),
    Call("GET", "/similar-users/999"),
    post({"user_handle": 5182, "model_handle": "course_views"}),  # in interests only
]
UNKNOWN_MODEL = [
    post({"user_handle": 110, "model_handle": "nope"}),
    Call("GET", "/similar-users/110?model_handle=nope"),
]
NOT_ALLOWED = [  # (request, methods the Allow header must name)
    (Call("PUT", "/similar-users"), {"POST"}),
    (Call("GET", "/similar-users"), {"POST"}),
    (Call("POST", "/similar-users/110"), {"GET"}),
    (Call("DELETE", "/models"), {"GET"}),
    (Call("POST", "/healthz"), {"GET"}),
    (Call("PATCH", "/openapi.json"), {"GET"}),
]
NOT_FOUND = [Call("GET", "/nope"), Call("GET", "/similar-users/110/more"), Call("GET", "/static/x")]
BODY_LIMIT = Settings().max_body_bytes
TOO_LARGE = [post_raw(b'{"user_handle": 110, "pad": "' + b"x" * BODY_LIMIT + b'"}')]
STORE_READS = [
    post({"user_handle": 110}),
    Call("GET", "/similar-users/110"),
    Call("GET", "/models"),
]


@pytest.mark.parametrize("call", MALFORMED, ids=str)
def test_a_body_that_is_not_json_is_400(client, call):
    response = call.send(client)

    assert response.status_code == 400
    assert response.json["title"] == "Malformed JSON"


@pytest.mark.parametrize("call", WRONG_CONTENT_TYPE, ids=str)
def test_a_body_not_declared_as_json_is_415(client, call):
    assert call.send(client).status_code == 415


@pytest.mark.parametrize(("call", "fields"), INVALID, ids=str)
def test_invalid_or_missing_fields_are_422_naming_each_field(client, call, fields):
    response = call.send(client)

    assert response.status_code == 422
    assert sorted(p["name"] for p in response.json["invalid_params"]) == sorted(fields)
    assert all(p["reason"] for p in response.json["invalid_params"])


@pytest.mark.parametrize("call", UNKNOWN_USER, ids=str)
def test_a_user_not_in_the_run_is_404_unknown_user(client, call):
    response = call.send(client)

    assert response.status_code == 404
    assert response.json["title"] == "Unknown user"


@pytest.mark.parametrize("call", UNKNOWN_MODEL, ids=str)
def test_a_model_without_a_published_run_is_404_listing_the_available_ones(client, call):
    response = call.send(client)

    assert response.status_code == 404
    assert response.json["title"] == "Unknown model"
    assert response.json["available_models"] == ["course_views", "interests"]
    assert "course_views, interests" in response.json["detail"]


@pytest.mark.parametrize(("call", "allowed"), NOT_ALLOWED, ids=str)
def test_a_method_a_route_does_not_support_is_405_with_allow(client, call, allowed):
    response = call.send(client)

    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("call", NOT_FOUND, ids=str)
def test_an_unknown_path_is_404(client, call):
    response = call.send(client)

    assert response.status_code == 404
    assert response.json["title"] == "Not found"


@pytest.mark.parametrize("call", TOO_LARGE, ids=str)
def test_a_body_over_the_limit_is_413(client, call):
    assert call.send(client).status_code == 413


@pytest.mark.parametrize(("size", "status"), [(BODY_LIMIT - 100, 200), (BODY_LIMIT + 1000, 413)])
def test_a_chunked_body_without_a_length_is_held_to_the_limit_too(client, size, status):
    body = b'{"user_handle": 110' + b" " * (size - 20) + b"}"
    response = client.post(
        "/similar-users",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says for chunked bodies
    )

    assert response.request.content_length is None
    assert response.status_code == status


def test_the_body_limit_is_a_setting(store):
    client = make_client(store, max_body_bytes=64)
    body = {"user_handle": 110, "model_handle": "interests", "top_n": 5, "x": "y" * 40}

    assert client.post("/similar-users", json=body).status_code == 413


@pytest.mark.parametrize("call", [*STORE_READS, Call("GET", "/readyz")], ids=str)
def test_an_unreachable_store_is_503_with_retry_after(call):
    client = make_client(DownStore(), retry_after_seconds=7)

    response = call.send(client)

    assert response.status_code == 503
    assert response.json["title"] == "Store unavailable"
    assert response.headers["Retry-After"] == "7"


def cached_then_down(
    pointer_cache_seconds: float, clock: Clock | None = None, **settings: Any
) -> FlaskClient:
    """Return a client that has answered user 110 once, its store now down."""
    return warmed_then_down(pointer_cache_seconds, clock, **settings)[0]


def warmed_then_down(
    pointer_cache_seconds: float, clock: Clock | None = None, **settings: Any
) -> tuple[FlaskClient, DownStore]:
    """Return a client that has answered user 110 once, and its store, now down."""
    flaky = DownStore()
    publish_lists(flaky, INTERESTS)
    client = make_client(flaky, clock, pointer_cache_seconds=pointer_cache_seconds, **settings)
    flaky.up = True
    assert client.get("/similar-users/110").status_code == 200
    flaky.up = False
    return client, flaky


def test_a_store_that_goes_down_after_the_pointer_was_cached_is_503():
    client = cached_then_down(pointer_cache_seconds=60)

    assert client.get("/similar-users/7").status_code == 503
    # A list already in the cache needs no store: it is still answered, unchanged.
    answer = client.get("/similar-users/110")
    assert answer.status_code == 200
    assert similar(answer.json) == [(5182, 0.4331), (7, 0.2), (9, 0.2)]


@pytest.mark.parametrize("query", ["", "?model_handle=interests"], ids=["default", "named"])
def test_once_the_cached_pointer_expires_a_down_store_still_answers_cached_lists(query):
    # Stale-if-error: the run last read answers what is cached from it; the rest needs the store.
    clock = Clock()
    client = cached_then_down(pointer_cache_seconds=5, clock=clock, retry_after_seconds=7)
    clock.now += 60

    cached = client.get(f"/similar-users/110{query}")
    not_cached = client.get(f"/similar-users/7{query}")
    ready = client.get("/readyz")

    assert cached.status_code == 200
    assert similar(cached.json) == INTERESTS[110]
    assert not_cached.status_code == 503
    assert not_cached.headers["Retry-After"] == "7"
    assert ready.status_code == 503  # readiness is the store's own answer, never a cached one


def test_a_down_store_answers_cached_lists_for_stale_if_error_seconds_after_its_last_read():
    clock = Clock()
    client = cached_then_down(pointer_cache_seconds=5, clock=clock, stale_if_error_seconds=600)

    clock.now += 599
    within = client.get("/similar-users/110").status_code
    clock.now += 1
    after = client.get("/similar-users/110").status_code

    assert (within, after) == (200, 503)


def test_with_no_stale_if_error_a_down_store_is_503_once_the_pointer_expires():
    clock = Clock()
    client = cached_then_down(pointer_cache_seconds=60, clock=clock, stale_if_error_seconds=0)
    clock.now += 60

    assert client.get("/similar-users/110").status_code == 503


def test_a_store_back_after_an_outage_is_read_again_without_a_restart():
    clock = Clock()
    client, store = warmed_then_down(pointer_cache_seconds=5, clock=clock)
    clock.now += 60
    assert client.get("/similar-users/110").status_code == 200  # stale
    assert client.get("/similar-users/7").status_code == 503

    store.up = True
    newer = publish_lists(store, {110: [(42, 0.9)], 7: [(42, 0.5)]})
    clock.now += 1  # the store is asked again at most once a second while it fails
    after = [client.get(f"/similar-users/{user}") for user in (110, 7)]

    assert [a.status_code for a in after] == [200, 200]
    assert {a.json["data"]["run_id"] for a in after} == {newer.run_id}
    assert [similar(a.json) for a in after] == [[(42, 0.9)], [(42, 0.5)]]
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("call", STORE_READS, ids=str)
def test_an_unexpected_error_is_500_without_leaking_it(call, caplog):
    client = make_client(BrokenStore())

    with caplog.at_level(logging.ERROR):
        response = call.send(client)

    assert response.status_code == 500
    assert response.json["title"] == "Internal server error"
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert "secret" in caplog.text  # the traceback stays in the server's log


ERROR_CALLS = [
    *MALFORMED,
    *WRONG_CONTENT_TYPE,
    *(call for call, _ in INVALID),
    *UNKNOWN_USER,
    *UNKNOWN_MODEL,
    *(call for call, _ in NOT_ALLOWED),
    *NOT_FOUND,
    *TOO_LARGE,
]


def assert_problem(response: Any) -> None:
    assert response.status_code >= 400
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | OPTIONAL_PROBLEM_KEYS
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:similar-users:problem:")
    assert body["title"] and body["detail"]


def test_every_error_is_one_problem_shape(client):
    clients = [
        (client, ERROR_CALLS),
        (make_client(DownStore()), [*STORE_READS, Call("GET", "/readyz")]),
        (make_client(BrokenStore()), STORE_READS),
        (make_client(MemoryStore()), [Call("GET", "/readyz")]),
    ]
    seen = set()
    for each, calls in clients:
        for call in calls:
            response = call.send(each)
            assert_problem(response)
            seen.add(response.status_code)

    assert seen == {400, 404, 405, 413, 415, 422, 500, 503}


def test_each_kind_of_problem_has_its_own_title(client):
    unknown_user = UNKNOWN_USER[0].send(client).json
    unknown_model = UNKNOWN_MODEL[0].send(client).json

    assert unknown_user["title"] != unknown_model["title"]
    assert unknown_user["type"] != unknown_model["type"]


@pytest.mark.parametrize(
    "settings",
    [
        {"default_model": "Not A Handle"},
        {"default_top_n": 0},
        {"default_top_n": 1001},
        {"pointer_cache_seconds": -1},
        {"pointer_cache_seconds": float("nan")},
        {"readiness_cache_seconds": -1},
        {"stale_if_error_seconds": -1},
        {"stale_if_error_seconds": float("inf")},
        {"max_body_bytes": 10},
        {"retry_after_seconds": 0},
    ],
)
def test_settings_refuse_values_that_make_no_sense(settings):
    with pytest.raises(ValueError):
        Settings(**settings)
