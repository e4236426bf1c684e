"""The default model: set by DEFAULT_MODEL, or with `auto` the best measured run of one export."""

from __future__ import annotations

from typing import Any

import pytest

from server import Settings, create_app
from server.default_model import AUTO, choose
from store import Run
from store.memory import MemoryStore
from tests.fakes import publish_lists

EXPORT_A = {"id": "a" * 16, "files": {"user_course_views.csv": {"bytes": 1, "sha256": "aa"}}}
EXPORT_B = {"id": "b" * 16, "files": {"user_course_views.csv": {"bytes": 2, "sha256": "bb"}}}


def measured(recall: float, ndcg: float = 0.1) -> dict[str, Any]:
    return {"k": 10, "recall": recall, "ndcg": ndcg, "users_evaluated": 100}


def run(handle: str, run_id: str, quality: dict[str, Any] | None, export: Any = EXPORT_A) -> Run:
    return Run(handle, run_id, "2026-12-01T10:00:00Z", quality=quality, export=export)


def test_a_model_set_by_default_model_wins_whatever_was_measured():
    current = {"interests": run("interests", "1", measured(0.9))}
    assert choose("course_views", current) == ("course_views", "set by DEFAULT_MODEL")


def test_auto_serves_the_best_recall_of_the_current_runs():
    current = {
        "interests": run("interests", "1", measured(0.20)),
        "course_views": run("course_views", "2", measured(0.31)),
        "hybrid": run("hybrid", "3", measured(0.29)),
    }
    assert choose(AUTO, current) == ("course_views", "best recall@10 of the current runs")


def test_auto_compares_only_runs_of_the_newest_measured_runs_export():
    current = {
        "interests": run("interests", "1", measured(0.90), export=EXPORT_A),  # another population
        "course_views": run("course_views", "3", measured(0.20), export=EXPORT_B),
        "course_tags": run("course_tags", "2", measured(0.25), export=EXPORT_B),
    }
    assert choose(AUTO, current)[0] == "course_tags"


@pytest.mark.parametrize(
    ("handles", "expected"),
    [
        (["hybrid", "course_tags", "course_views"], "course_views"),  # a signal, then the registry
        (["hybrid", "course_tags"], "course_tags"),  # a single signal before a combination
    ],
)
def test_ties_go_to_the_simpler_model(handles, expected):
    current = {h: run(h, str(i), measured(0.3, 0.2)) for i, h in enumerate(handles)}
    assert choose(AUTO, current)[0] == expected


def test_a_better_ndcg_breaks_a_tie_of_recall():
    current = {
        "course_views": run("course_views", "1", measured(0.3, 0.10)),
        "hybrid": run("hybrid", "2", measured(0.3, 0.12)),
    }
    assert choose(AUTO, current)[0] == "hybrid"


@pytest.mark.parametrize(
    ("handles", "expected"),
    [
        (["course_views", "hybrid", "interests"], "hybrid"),
        (["course_tags", "course_views"], "course_views"),
        ([], None),
    ],
)
def test_with_nothing_measured_auto_falls_back_to_the_stated_model(handles, expected):
    current = {h: run(h, str(i), None) for i, h in enumerate(handles)}
    chosen, reason = choose(AUTO, current)
    assert chosen == expected
    assert reason.startswith("no current run is measured")


# -- through the API --------------------------------------------------------------------------


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    lists = {
        "interests": {110: [(5182, 0.9)], 5182: [(110, 0.9)]},
        "course_views": {110: [(7, 0.8)], 7: [(110, 0.8)]},
    }
    for handle, recall in [("interests", 0.10), ("course_views", 0.30)]:
        publish_lists(store, lists[handle], handle, quality=measured(recall), export=dict(EXPORT_A))
    return store


def test_models_names_the_default_and_why_and_shows_each_runs_quality_and_export(store):
    client = create_app(store, Settings(pointer_cache_seconds=0)).test_client()

    answer = client.get("/models").json

    assert answer["default_model"] == "course_views"
    assert answer["default_reason"] == "best recall@10 of the current runs"
    assert {m["model_handle"]: m["quality"]["recall"] for m in answer["models"]} == {
        "course_views": 0.30,
        "interests": 0.10,
    }
    assert {m["export"]["id"] for m in answer["models"]} == {EXPORT_A["id"]}


def test_a_request_naming_no_model_is_answered_by_the_best_measured_one(store):
    client = create_app(store, Settings(pointer_cache_seconds=0)).test_client()

    answer = client.post("/similar-users", json={"user_handle": 110}).json

    assert answer["request_data"]["model_handle"] == "course_views"
    assert answer["data"]["model_handle"] == "course_views"
    assert answer["data"]["similar_users"] == [{"user_handle": 7, "score": 0.8, "mutual": False}]


def test_an_explicit_default_model_is_said_to_be_set(store):
    client = create_app(
        store, Settings(pointer_cache_seconds=0, default_model="interests")
    ).test_client()

    answer = client.get("/models").json

    assert (answer["default_model"], answer["default_reason"]) == (
        "interests",
        "set by DEFAULT_MODEL",
    )
    assert client.get("/similar-users/110").json["data"]["model_handle"] == "interests"


def test_with_no_run_at_all_a_request_naming_no_model_is_an_unknown_model():
    client = create_app(MemoryStore(), Settings(pointer_cache_seconds=0)).test_client()

    answer = client.get("/similar-users/110")

    assert answer.status_code == 404
    assert client.get("/models").json["default_model"] is None
