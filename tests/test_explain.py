"""Explanations: the features two users share, whose contributions add up to their score, and
nothing of a neighbour that the asker does not have."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from server import Settings, create_app
from server.explain import SHARED_MAX
from similarity.features import UserIndex
from similarity.models import MODELS
from store.memory import MemoryStore
from tests.builders import PLATFORM_MODELS, make_tables, people_spaces
from tests.fakes import Clock, SpaceArtifacts, publish_lists, publish_space

EVERY_MODEL = PLATFORM_MODELS
PROFILE = {
    "interests": ["python", "data-science", "react"],
    "courses": ["python-beyond-basics", "react-fundamentals"],
    "assessments": [{"tag": "python", "score": 240}, {"tag": "javascript", "score": 180}],
}


@pytest.fixture(scope="module")
def spaces() -> dict[str, Any]:
    return people_spaces()


@pytest.fixture(scope="module")
def published(spaces) -> tuple[MemoryStore, SpaceArtifacts]:
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    for handle in EVERY_MODEL:
        publish_space(store, artifacts, spaces[handle], top_n=7)
    return store, artifacts


@pytest.fixture
def client(published, tmp_path) -> FlaskClient:
    store, artifacts = published
    settings = Settings(pointer_cache_seconds=0, artifact_cache_dir=tmp_path)
    return create_app(store, settings, clock=Clock(), artifacts=artifacts).test_client()


def similar_users(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.json
    return list(response.json["data"]["similar_users"])


def assert_adds_up(neighbour: dict[str, Any]) -> None:
    """Assert the contributions shown plus the rest's are the neighbour's score."""
    shown = sum(feature["contribution"] for feature in neighbour["shared"])
    assert shown + neighbour["shared_rest"]["contribution"] == pytest.approx(
        neighbour["score"], abs=1e-5
    )
    for feature in neighbour["shared"]:  # share = contribution / score
        assert feature["share"] * neighbour["score"] == pytest.approx(
            feature["contribution"],
            abs=1e-4,  # shares have 4 decimals
        )


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_a_users_explained_neighbours_contributions_add_up_to_each_score(client, model):
    for user in range(1, 9):
        neighbours = similar_users(
            client.get(f"/similar-users/{user}?model_handle={model}&top_n=7&explain=true")
        )
        for neighbour in neighbours:
            assert_adds_up(neighbour)


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_a_profiles_explained_neighbours_contributions_add_up_to_each_score(client, model):
    response = client.post(
        "/similar-users",
        json={"profile": PROFILE, "model_handle": model, "top_n": 7, "explain": True},
    )

    neighbours = similar_users(response)
    assert neighbours
    for neighbour in neighbours:
        assert_adds_up(neighbour)


def test_explaining_changes_neither_who_nor_their_scores(client):
    plain = similar_users(client.get("/similar-users/1?model_handle=hybrid&top_n=7"))
    explained = similar_users(
        client.get("/similar-users/1?model_handle=hybrid&top_n=7&explain=true")
    )

    assert [(u["user_handle"], u["score"]) for u in explained] == [
        (u["user_handle"], u["score"]) for u in plain
    ]
    assert [u["mutual"] for u in explained] == [u["mutual"] for u in plain]
    assert all(set(u) == {"user_handle", "score", "mutual"} for u in plain)
    assert all(
        set(u) == {"user_handle", "score", "mutual", "shared", "shared_rest"} for u in explained
    )


def test_post_explains_a_user_as_get_does(client):
    by_post = client.post(
        "/similar-users", json={"user_handle": 3, "model_handle": "hybrid", "explain": True}
    )
    by_get = client.get("/similar-users/3?model_handle=hybrid&explain=true")

    assert by_post.json == by_get.json
    assert by_post.json["request_data"]["explain"] is True


def test_only_evidence_both_users_have_is_shown(client):
    # User 3 follows javascript and react; user 8 follows those and css.
    neighbours = similar_users(client.get("/similar-users/3?model_handle=interests&explain=true"))

    (eight,) = [u for u in neighbours if u["user_handle"] == 8]
    assert {(f["kind"], f["name"]) for f in eight["shared"]} == {
        ("interest", "javascript"),
        ("interest", "react"),
    }
    assert eight["shared_rest"] == {"features": 0, "contribution": 0.0}


def test_only_evidence_a_profile_shares_with_a_neighbour_is_shown(client):
    response = client.post(
        "/similar-users",
        json={"profile": {"interests": ["react"]}, "model_handle": "interests", "explain": True},
    )

    for neighbour in similar_users(response):
        assert [f["name"] for f in neighbour["shared"]] == ["react"]
        assert neighbour["shared"][0]["share"] == pytest.approx(1.0)


def test_a_hybrid_explanation_names_each_kind_of_evidence(client):
    neighbours = similar_users(client.get("/similar-users/1?model_handle=hybrid&explain=true"))

    two = next(u for u in neighbours if u["user_handle"] == 2)
    assert {f["kind"] for f in two["shared"]} == {"interest", "course", "course_tag", "assessment"}
    assert ("interest", "python") in {(f["kind"], f["name"]) for f in two["shared"]}


def test_course_factors_are_explained_by_latent_factors(client):
    neighbours = similar_users(
        client.get("/similar-users/1?model_handle=course_factors&explain=true")
    )

    assert all(f["kind"] == "factor" for u in neighbours for f in u["shared"])
    assert all(f["name"].startswith("factor ") for u in neighbours for f in u["shared"])


def test_at_most_five_features_are_listed_and_the_rest_summed_up(tmp_path):
    tags = [f"tag-{i}" for i in range(8)]
    tables = make_tables(interests=[(u, t) for u in (1, 2) for t in tags] + [(3, "other")])
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    publish_space(store, artifacts, MODELS["interests"].space(tables, UserIndex.of(tables)))
    client = create_app(
        store, Settings(artifact_cache_dir=tmp_path), artifacts=artifacts
    ).test_client()

    (two,) = similar_users(client.get("/similar-users/1?model_handle=interests&explain=true"))

    assert len(two["shared"]) == SHARED_MAX == 5
    assert two["shared_rest"]["features"] == 3
    assert two["score"] == pytest.approx(1.0)
    assert_adds_up(two)
    contributions = [f["contribution"] for f in two["shared"]]
    assert contributions == sorted(contributions, reverse=True)


def test_explaining_without_the_artifact_is_503_while_plain_lookups_answer(spaces, tmp_path):
    store = MemoryStore()
    run = publish_space(store, None, spaces["interests"], with_artifact=False)
    client = create_app(
        store, Settings(artifact_cache_dir=tmp_path), artifacts=SpaceArtifacts()
    ).test_client()

    explained = client.get("/similar-users/1?model_handle=interests&explain=true")
    plain = client.get("/similar-users/1?model_handle=interests")

    assert explained.status_code == 503
    assert run.run_id in explained.json["detail"]
    assert plain.status_code == 200


def test_a_stored_user_the_artifact_does_not_hold_is_503_naming_the_run(spaces, tmp_path):
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    space = spaces["interests"]
    run_id = "20260101T000000000000Z-abcdef"
    artifact = artifacts.hold(space, run_id).describe()
    publish_lists(store, {999: [(1, 0.5)]}, artifact=artifact, run_id=run_id)
    client = create_app(
        store, Settings(artifact_cache_dir=tmp_path), artifacts=artifacts
    ).test_client()

    response = client.get("/similar-users/999?model_handle=interests&explain=true")

    assert response.status_code == 503
    assert run_id in response.json["detail"] and "999" in response.json["detail"]


@pytest.mark.parametrize("value", ["yes", "1", "True", ""])
def test_explain_in_the_query_string_is_true_or_false(client, value):
    response = client.get(f"/similar-users/1?model_handle=interests&explain={value}")

    assert response.status_code == 422
    assert [p["name"] for p in response.json["invalid_params"]] == ["explain"]


def test_explain_false_in_the_query_string_explains_nothing(client):
    neighbours = similar_users(client.get("/similar-users/1?model_handle=interests&explain=false"))

    assert neighbours and all("shared" not in u for u in neighbours)
