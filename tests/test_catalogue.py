"""GET /catalogue: the names a model knows, for autocomplete — prefixes, then substrings, then
typos — as plain JSON strings."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from server import Settings, create_app
from similarity.features import UserIndex
from similarity.models import MODELS
from store.memory import MemoryStore
from tests.builders import SCRIPT_TAG, make_tables, people_tables
from tests.fakes import Clock, SpaceArtifacts, publish_space

# Who follows what: python by 4, pytest by 2, pyramid by 1, data-science by 3, numpy by 1.
TAGS = {
    1: ["python", "pytest", "data-science"],
    2: ["python", "pytest", "numpy"],
    3: ["python", "pyramid", "data-science"],
    4: ["python", "data-science", "happy-python-coding"],
}


@pytest.fixture(scope="module")
def published() -> tuple[MemoryStore, SpaceArtifacts]:
    tables = make_tables(interests=[(u, t) for u, tags in TAGS.items() for t in tags])
    people = people_tables()
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    publish_space(store, artifacts, MODELS["interests"].space(tables, UserIndex.of(tables)))
    publish_space(store, artifacts, MODELS["hybrid"].space(people, UserIndex.of(people)))
    return store, artifacts


def make_client(store: Any, artifacts: Any, tmp_path: Any, **settings: Any) -> FlaskClient:
    settings = {"pointer_cache_seconds": 0, "artifact_cache_dir": tmp_path, **settings}
    return create_app(store, Settings(**settings), clock=Clock(), artifacts=artifacts).test_client()


@pytest.fixture
def client(published, tmp_path) -> FlaskClient:
    return make_client(*published, tmp_path, default_model="interests")


def names(client: FlaskClient, query: str) -> list[str]:
    response = client.get(f"/catalogue?{query}")
    assert response.status_code == 200, response.json
    found = response.json["data"]["names"]
    assert all(isinstance(name, str) for name in found)
    return list(found)


def test_names_starting_with_the_text_come_first_most_followed_first(client):
    assert names(client, "kind=interests&q=py") == [
        "python",  # 4 users
        "pytest",  # 2
        "pyramid",  # 1
        "happy-python-coding",  # then those holding it, as many users, by name
        "numpy",
    ]


def test_then_names_holding_the_text_then_names_a_typo_away(client):
    # prefix: python; substring: happy-python-coding; a typo away: pytest is not (2 edits)
    assert names(client, "kind=interests&q=python") == ["python", "happy-python-coding"]
    assert names(client, "kind=interests&q=pytset") == ["pytest"]  # a swap: fuzzy only


def test_the_text_is_normalised_like_a_profiles_names(client):
    assert names(client, "kind=interests&q=Data%20Sci") == ["data-science"]


def test_without_text_the_most_followed_names_come(client):
    assert names(client, "kind=interests&limit=2") == ["python", "data-science"]


def test_the_limit_cuts_the_list(client):
    assert names(client, "kind=interests&q=p&limit=1") == ["python"]


def test_the_answer_says_what_was_asked_and_which_run_answered(client, published):
    store, _ = published
    answer = client.get("/catalogue?kind=interests&q=py").json

    assert answer["request_data"] == {
        "kind": "interests",
        "q": "py",
        "limit": 10,
        "model_handle": "interests",
    }
    assert answer["data"]["run_id"] == store.current_run("interests").run_id
    assert answer["data"]["model_handle"] == "interests"


def test_a_model_handle_chooses_the_model_and_auto_resolves(published, tmp_path):
    client = make_client(*published, tmp_path)  # DEFAULT_MODEL=auto: hybrid, with nothing measured

    assert names(client, "kind=courses&q=python") == ["python-beyond-basics"]
    assert names(client, "kind=courses&q=python&model_handle=hybrid") == ["python-beyond-basics"]
    assert client.get("/catalogue?kind=courses").json["request_data"]["model_handle"] == "hybrid"


def test_a_kind_the_model_does_not_read_has_no_names(client):
    assert names(client, "kind=courses&q=python") == []


def test_non_ascii_and_hostile_names_come_back_as_plain_json_strings(published, tmp_path):
    client = make_client(*published, tmp_path, default_model="hybrid")

    response = client.get("/catalogue?kind=interests&q=%3Cscript")

    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.json["data"]["names"] == [SCRIPT_TAG]
    assert names(client, "kind=interests&q=f%C3%BCr") == ["c++ für anfänger"]
    assert names(client, "kind=interests&q=%E6%97%A5%E6%9C%AC") == ["日本語"]


def test_an_unknown_model_is_404(client):
    response = client.get("/catalogue?kind=interests&model_handle=nope")

    assert response.status_code == 404
    assert response.json["title"] == "Unknown model"


INVALID = [  # (query string, the parameter named)
    ("", "kind"),
    ("kind=skills", "kind"),
    ("kind=Interests", "kind"),
    ("kind=interests&limit=0", "limit"),
    ("kind=interests&limit=101", "limit"),
    ("kind=interests&limit=ten", "limit"),
    ("kind=interests&limit=1.5", "limit"),
    ("kind=interests&q=" + "x" * 201, "q"),
    ("kind=interests&q=py%00", "q"),
    ("kind=interests&q=a%0Ab", "q"),
    ("kind=interests&model_handle=Not-A-Model", "model_handle"),
    ("kind=interests&sort=name", "sort"),
    ("kind=interests&kind=courses", "kind"),
    ("kind=interests&q=a&q=b", "q"),
]


@pytest.mark.parametrize(("query", "field"), INVALID, ids=[q for q, _ in INVALID])
def test_a_bad_parameter_is_422_naming_it(client, query, field):
    response = client.get(f"/catalogue?{query}")

    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert [p["name"] for p in response.json["invalid_params"]] == [field]


def test_without_the_artifact_the_catalogue_is_503_naming_the_run(tmp_path):
    tables = make_tables(interests=[(1, "python"), (2, "python")])
    store = MemoryStore()
    space = MODELS["interests"].space(tables, UserIndex.of(tables))
    run = publish_space(store, None, space, with_artifact=False)
    client = make_client(store, SpaceArtifacts(), tmp_path)

    response = client.get("/catalogue?kind=interests&q=py")

    assert response.status_code == 503
    assert run.run_id in response.json["detail"]
    assert response.headers["Retry-After"]
