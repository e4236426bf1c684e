"""/openapi.json describes what the server really does: routes, answers, errors, request rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from server import Settings, create_app
from server.security import PAGE_BLUEPRINT
from similarity.features import UserIndex
from similarity.models import MODELS
from store.memory import MemoryStore
from tests.builders import people_tables
from tests.fakes import DownStore, SpaceArtifacts, publish_lists, publish_space

# Global answers that no single operation lists (see the document's description).
ANY_ROUTE = {404, 405, 500}


@pytest.fixture
def app() -> Flask:
    store = MemoryStore()
    publish_lists(store, {110: [(5182, 0.4331), (7, 1.0)], 9: []}, top_n=3)
    return create_app(store, Settings(pointer_cache_seconds=0))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json)


def validator(document: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    """Return a validator for a schema of the document, with the document's components in reach."""
    return OAS31Validator(
        {**schema, "components": document["components"]},
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )


def operation_of(document: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    """Return the documented path template and operation that a concrete request path matches."""
    for template, item in document["paths"].items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path.split("?")[0]) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


def test_the_document_is_valid_openapi_3(document):
    validate_spec(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_of_the_app_is_documented_and_nothing_else(app, document):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(f"{PAGE_BLUEPRINT}."):
            continue  # the explorer page and its files are for a browser, not the API
        template = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((template, method.lower()))

    documented = {(path, method) for path, item in document["paths"].items() for method in item}

    assert served == documented


def test_the_documented_defaults_are_the_settings():
    app = create_app(MemoryStore(), Settings(default_model="course_views", default_top_n=3))
    document = app.test_client().get("/openapi.json").json
    request = document["components"]["schemas"]["SimilarUsersRequest"]["properties"]

    assert request["model_handle"]["default"] == "course_views"
    assert request["top_n"]["default"] == 3


def test_the_document_says_what_mutual_and_mutual_only_mean(document):
    schemas = document["components"]["schemas"]
    get = document["paths"]["/similar-users/{user_handle}"]["get"]

    assert schemas["SimilarUser"]["properties"]["mutual"]["type"] == "boolean"
    assert "stored list" in schemas["SimilarUser"]["properties"]["mutual"]["description"]
    mutual_only = schemas["SimilarUsersRequest"]["properties"]["mutual_only"]
    assert mutual_only["type"] == "boolean" and mutual_only["default"] is False
    assert "then cut to `top_n`" in mutual_only["description"]
    assert {"name": "mutual_only", "in": "query", "schema": mutual_only} in get["parameters"]
    request_data = schemas["SimilarUsers"]["properties"]["request_data"]
    assert "mutual_only" in request_data["required"]


def test_every_neighbour_of_a_users_answer_carries_the_mutual_flag(client):
    answer = client.get("/similar-users/110").json

    assert all(isinstance(u["mutual"], bool) for u in answer["data"]["similar_users"])


def space_client(cache: Any) -> FlaskClient:
    """Return a client of a store whose hybrid run has its artifact."""
    tables = people_tables()
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    publish_space(store, artifacts, MODELS["hybrid"].space(tables, UserIndex.of(tables)))
    settings = Settings(artifact_cache_dir=cache)
    return create_app(store, settings, artifacts=artifacts).test_client()


PROFILE = {
    "interests": ["pythn", "cobol"],
    "courses": ["Python Beyond Basics"],
    "assessments": [{"tag": "python", "score": 200}],
}
ANSWERS = [  # (client kind, method, path, request kwargs): success and every error
    ("ok", "POST", "/similar-users", {"json": {"user_handle": 110}}),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": 9, "top_n": 1000}}),
    ("ok", "GET", "/similar-users/110?model_handle=interests&top_n=1", {}),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": 110, "mutual_only": True}}),
    ("ok", "GET", "/similar-users/110?mutual_only=true", {}),
    ("ok", "GET", "/similar-users/110?mutual_only=yes", {}),
    ("ok", "POST", "/similar-users", {"json": {"profile": PROFILE, "mutual_only": True}}),
    ("ok", "GET", "/models", {}),
    ("ok", "GET", "/healthz", {}),
    ("ok", "GET", "/readyz", {}),
    ("ok", "GET", "/openapi.json", {}),
    ("ok", "POST", "/similar-users", {"data": b"{", "content_type": "application/json"}),
    ("ok", "POST", "/similar-users", {"data": b"{}", "content_type": "text/plain"}),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": "x", "top_n": 0}}),
    ("ok", "POST", "/similar-users", {"json": [1]}),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": 999}}),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": 110, "model_handle": "nope"}}),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": 110, "pad": "x" * 5000}}),
    ("ok", "GET", "/similar-users/abc", {}),
    ("ok", "GET", "/similar-users/999", {}),
    ("ok", "GET", "/similar-users/110?model_handle=nope", {}),
    ("down", "POST", "/similar-users", {"json": {"user_handle": 110}}),
    ("down", "GET", "/similar-users/110", {}),
    ("down", "GET", "/models", {}),
    ("down", "GET", "/readyz", {}),
    ("empty", "GET", "/readyz", {}),
    ("space", "POST", "/similar-users", {"json": {"profile": PROFILE}}),
    ("space", "POST", "/similar-users", {"json": {"profile": PROFILE, "explain": True}}),
    ("space", "POST", "/similar-users", {"json": {"user_handle": 1, "explain": True}}),
    ("space", "GET", "/similar-users/1?explain=true", {}),
    ("space", "GET", "/similar-users/1?explain=true&mutual_only=true", {}),
    ("space", "POST", "/similar-users", {"json": {"profile": PROFILE, "mutual_only": False}}),
    ("space", "GET", "/similar-users/1?explain=maybe", {}),
    ("space", "POST", "/similar-users", {"json": {"profile": {"interests": ["cobol"]}}}),
    ("space", "POST", "/similar-users", {"json": {"profile": {"interests": [""]}}}),
    ("space", "POST", "/similar-users", {"json": {"profile": PROFILE, "model_handle": "nope"}}),
    ("space", "GET", "/catalogue?kind=interests&q=py", {}),
    ("space", "GET", "/catalogue?kind=courses", {}),
    ("space", "GET", "/catalogue?kind=skills", {}),
    ("space", "GET", "/catalogue?kind=interests&model_handle=nope", {}),
    ("ok", "POST", "/similar-users", {"json": {"profile": PROFILE}}),
    ("ok", "GET", "/similar-users/110?explain=true", {}),
    ("ok", "GET", "/catalogue?kind=interests", {}),
    ("down", "GET", "/catalogue?kind=interests", {}),
]


@pytest.mark.parametrize(("kind", "method", "path", "kwargs"), ANSWERS, ids=str)
def test_every_answer_is_documented_and_matches_its_schema(
    document, client, tmp_path, kind, method, path, kwargs
):
    store = {"down": DownStore(), "empty": MemoryStore()}.get(kind)
    if store is not None:
        client = create_app(store, Settings()).test_client()
    elif kind == "space":
        client = space_client(tmp_path)
    _, operation = operation_of(document, method, path)

    response = client.open(path, method=method, **kwargs)

    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{response.status_code} is not documented"
    assert response.mimetype in documented["content"]
    schema = documented["content"][response.mimetype]["schema"]
    validator(document, schema).validate(response.json)
    for header in documented.get("headers", {}):
        assert header in response.headers


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/similar-users"), ("GET", "/nowhere"), ("DELETE", "/models")]
)
def test_answers_of_any_route_are_problems_in_the_documented_shape(document, client, method, path):
    response = client.open(path, method=method)

    assert response.status_code in ANY_ROUTE
    validator(document, {"$ref": "#/components/schemas/Problem"}).validate(response.json)


BODIES = [
    {"user_handle": 110},
    {"user_handle": 110.0},
    {"user_handle": 0, "model_handle": "interests", "top_n": 1000},
    {"user_handle": 2**63 - 1, "model_handle": "a" * 64},
    {"user_handle": 2**63},
    {"user_handle": -1},
    {"user_handle": 110.5},
    {"user_handle": True},
    {"user_handle": "110"},
    {"user_handle": None},
    {"model_handle": "interests"},
    {"user_handle": 110, "model_handle": "Interests"},
    {"user_handle": 110, "model_handle": "a" * 65},
    {"user_handle": 110, "model_handle": None},
    {"user_handle": 110, "top_n": 0},
    {"user_handle": 110, "top_n": 1001},
    {"user_handle": 110, "top_n": 2.0},
    {"user_handle": 110, "extra": 1},
    [110],
    {"user_handle": 110, "explain": True},
    {"user_handle": 110, "explain": "true"},
    {"user_handle": 110, "mutual_only": True},
    {"user_handle": 110, "mutual_only": False, "explain": True},
    {"user_handle": 110, "mutual_only": "true"},
    {"user_handle": 110, "mutual_only": None},
    {"profile": {"interests": ["python"]}, "mutual_only": True},
    {"profile": {"interests": ["python"]}, "mutual_only": False},
    {"user_handle": 110, "profile": {"interests": ["python"]}, "mutual_only": True},
    {"user_handle": 110, "profile": {"interests": ["python"]}},
    {"profile": {"interests": ["python"]}},
    {"profile": {"interests": ["python"]}, "explain": False, "top_n": 3},
    {"profile": {"courses": ["python-beyond-basics"], "interests": []}},
    {"profile": {"assessments": [{"tag": "python", "score": 0}], "interests": ["python"]}},
    {"profile": {"assessments": [{"tag": "python", "score": 10_000.0}]}},
    {"profile": {"assessments": [{"tag": "python", "score": 10_001}]}},
    {"profile": {"assessments": [{"tag": "python", "score": -1}]}},
    {"profile": {"assessments": [{"tag": "python", "score": "1"}]}},
    {"profile": {"assessments": [{"tag": "python", "score": True}]}},
    {"profile": {"assessments": [{"tag": "python"}]}},
    {"profile": {"assessments": [{"tag": "python", "score": 1, "at": 2}]}},
    {"profile": {"interests": ["python"], "skills": []}},
    {"profile": {"interests": []}},
    {"profile": {}},
    {"profile": None},
    {"profile": {"interests": ["python", "x" * 200]}},
    {"profile": {"interests": ["python", "x" * 201]}},
    {"profile": {"interests": ["python"] * 100}},
    {"profile": {"interests": ["python"] * 101}},
    {"profile": {"interests": [""]}},
    {"profile": {"interests": ["  "]}},
    {"profile": {"interests": ["a\nb"]}},
    {"profile": {"interests": ["a\x9fb"]}},
    {"profile": {"interests": ["日本語", "c++ für anfänger"]}},
    {"profile": {"interests": [5]}},
]


@pytest.mark.parametrize("body", BODIES, ids=str)
def test_the_server_accepts_exactly_the_bodies_the_document_allows(document, tmp_path, body):
    schema = {"$ref": "#/components/schemas/SimilarUsersRequest"}
    allowed = validator(document, schema).is_valid(body)

    # Each allowed profile names something the model knows, so none is refused as unusable (which
    # no schema can foresee: see the 422's description).
    response = space_client(tmp_path).post("/similar-users", json=body)

    assert (response.status_code != 422) == allowed, response.json
