"""Fuzz the API from its own OpenAPI description (schemathesis), plus hostile requests by hand.

Whatever a client sends, the answer is never a 5xx, and every error is the one problem shape.
The fuzzing is derandomised and bounded, so the same examples run every time in a few seconds.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from openapi_schema_validator import OAS31Validator
from schemathesis.checks import positive_data_acceptance

from server import Settings, create_app
from server.security import PUBLIC_PATHS
from similarity.features import UserIndex
from similarity.models import MODELS
from store.memory import MemoryStore
from tests.builders import make_tables
from tests.fakes import SpaceArtifacts, publish_space

KEY = "fuzz-key-0123456789abcdef"
PROBLEM_KEYS = {"type", "title", "status", "detail"}


# Where the artifact is written when first fetched; removed after the module's tests.
CACHE = Path(tempfile.gettempdir()) / f"similar-users-fuzz-{uuid.uuid4().hex[:12]}"
TAGS = ["python", "java", "javascript", "data-science", "react", "c++ für anfänger", "日本語"]


def published_store() -> tuple[MemoryStore, SpaceArtifacts]:
    """Return a store whose interests run knows users 0..99 (so fuzzing also finds 200s), with
    its artifact (so profiles, explanations and the catalogue are fuzzed too)."""
    tables = make_tables(
        interests=[(u, TAGS[u % 7]) for u in range(100)] + [(u, TAGS[u % 3]) for u in range(100)]
    )
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    space = MODELS["interests"].space(tables, UserIndex.of(tables))
    publish_space(store, artifacts, space, top_n=3)
    return store, artifacts


def make_app(**configured: Any) -> Flask:
    store, artifacts = published_store()
    return create_app(
        store,
        Settings(pointer_cache_seconds=60, artifact_cache_dir=CACHE, **configured),
        artifacts=artifacts,
    )


@pytest.fixture(scope="module", autouse=True)
def remove_the_cache() -> Iterator[None]:
    yield
    shutil.rmtree(CACHE, ignore_errors=True)


# Built when the module is imported: schemathesis parametrises tests from a loaded schema (its
# pytest fixture loader, from_fixture, fails under pytest 9). Building the app does no I/O.
OPEN = schemathesis.openapi.from_wsgi("/openapi.json", make_app())
KEYED = schemathesis.openapi.from_wsgi("/openapi.json", make_app(api_key=KEY))
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def assert_problem(status: int, content_type: str, body: bytes) -> None:
    """Assert an error answer is the one problem shape."""
    assert content_type == "application/problem+json", (status, content_type, body[:200])
    problem = json.loads(body)
    assert set(problem) >= PROBLEM_KEYS, problem
    assert problem["status"] == status
    assert problem["type"].startswith("urn:similar-users:problem:")


UNUSABLE = ("matches no ", "is not used: ", "no evidence")


def unusable_profile(status: int, body: bytes) -> bool:
    """Tell whether an answer refuses a well-formed profile because none of its names is one the
    model knows (a 422 the document describes but no schema can foresee)."""
    if status != 422:
        return False
    invalid = json.loads(body).get("invalid_params", [])
    return all(any(part in p["reason"] for part in UNUSABLE) for p in invalid)


def call_and_check(case: Any, headers: dict[str, str]) -> int:
    """Send a generated request, check its answer against the document and our rules; the status."""
    response = case.call(headers=headers)
    # no 5xx; status, headers, body documented; well-formed requests accepted unless unusable
    excluded = (
        [positive_data_acceptance]
        if unusable_profile(response.status_code, response.content)
        else []
    )
    case.validate_response(response, headers=headers, excluded_checks=excluded)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]  # lower-case names, lists
        assert_problem(response.status_code, content_type, response.content)
    return int(response.status_code)


@OPEN.parametrize()
@FUZZ
def test_fuzzed_requests_are_answered_as_documented(case: Any) -> None:
    call_and_check(case, {})


@KEYED.parametrize()
@FUZZ
def test_fuzzed_requests_with_the_key_are_answered_as_documented(case: Any) -> None:
    call_and_check(case, {"X-API-Key": KEY})


@KEYED.parametrize()
@FUZZ
def test_fuzzed_requests_without_the_key_are_refused_unless_public(case: Any) -> None:
    status = call_and_check(case, {})
    # OPTIONS only lists the allowed methods, which the document says anyway.
    if case.path not in PUBLIC_PATHS and case.method.upper() != "OPTIONS":
        assert status == 401


# -- by hand ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return make_app(max_body_bytes=4096).test_client()


@pytest.fixture(scope="module")
def problem_schema() -> OAS31Validator:
    document = make_app().test_client().get("/openapi.json").json
    return OAS31Validator({"$ref": "#/components/schemas/Problem", **document})


HOSTILE_BODIES: list[tuple[str, Any, int]] = [  # (what, body, status)
    ("huge handle", {"user_handle": 2**63}, 422),
    ("huger handle", {"user_handle": 10**40}, 422),
    ("negative handle", {"user_handle": -1}, 422),
    ("min int64", {"user_handle": -(2**63)}, 422),
    ("float handle", {"user_handle": 110.5}, 422),
    ("tiny float", {"user_handle": 1e-300}, 422),
    ("huge float", {"user_handle": 1e308}, 422),
    ("float as integer", {"user_handle": 1.0}, 200),
    ("string handle", {"user_handle": "110"}, 422),
    ("bool handle", {"user_handle": True}, 422),
    ("null handle", {"user_handle": None}, 422),
    ("nested object", {"user_handle": {"user_handle": 1}}, 422),
    ("nested array", {"user_handle": [[[[1]]]]}, 422),
    ("deep nesting", json.loads("[" * 500 + "]" * 500), 422),
    ("array body", [1, 2, 3], 422),
    ("string body", "user_handle", 422),
    ("number body", 110, 422),
    ("null body", None, 422),
    ("unicode model", {"user_handle": 1, "model_handle": "ıntérests"}, 422),
    ("emoji model", {"user_handle": 1, "model_handle": "\U0001f600"}, 422),
    ("newline in model", {"user_handle": 1, "model_handle": "interests\n"}, 422),
    ("unicode field name", {"user_handle": 1, "ユーザー": 1}, 422),
    ("long field name", {"user_handle": 1, "x" * 2000: 1}, 422),
    ("many fields", {f"f{i}": i for i in range(300)}, 422),
    ("top_n zero", {"user_handle": 1, "top_n": 0}, 422),
    ("top_n negative", {"user_handle": 1, "top_n": -5}, 422),
    ("top_n huge", {"user_handle": 1, "top_n": 2**64}, 422),
    ("unknown model", {"user_handle": 1, "model_handle": "nope"}, 404),
    ("unknown user", {"user_handle": 2**63 - 1}, 404),
    ("oversized body", {"user_handle": 1, "pad": "x" * 5000}, 413),
    ("profile and handle", {"user_handle": 1, "profile": {"interests": ["python"]}}, 422),
    ("profile", {"profile": {"interests": ["pythn", "Data Science"]}, "explain": True}, 200),
    ("unusable profile", {"profile": {"interests": ["cobol"], "courses": ["x"]}}, 422),
    ("script name", {"profile": {"interests": ["<script>alert(1)</script>"]}}, 422),
    ("unicode names", {"profile": {"interests": ["日本語", "C++ Für Anfänger"]}}, 200),
    ("bidi override name", {"profile": {"interests": ["\u202epython"]}}, 200),
    ("zero width name", {"profile": {"interests": ["py\u200bthon"]}}, 200),
    ("emoji name", {"profile": {"interests": ["\U0001f40d", "python"]}}, 200),
    ("nul name", {"profile": {"interests": ["py\x00"]}}, 422),
    ("many names", {"profile": {"interests": ["python"] * 101}}, 422),
    ("deep profile", {"profile": {"interests": [[[["python"]]]]}}, 422),
    ("score object", {"profile": {"assessments": [{"tag": "python", "score": {}}]}}, 422),
    ("explain number", {"user_handle": 1, "explain": 1}, 422),
    ("explain handle", {"user_handle": 1, "explain": True}, 200),
]


@pytest.mark.parametrize(
    ("what", "body", "status"), HOSTILE_BODIES, ids=[h[0] for h in HOSTILE_BODIES]
)
def test_a_hostile_body_is_a_precise_answer(client, problem_schema, what, body, status):
    response = client.post("/similar-users", data=json.dumps(body), content_type="application/json")

    assert response.status_code == status, response.json
    if status >= 400:
        assert_problem(status, response.content_type, response.data)
        problem_schema.validate(response.json)


RAW_BODIES: list[tuple[str, bytes, str, int]] = [  # (what, bytes, content type, status)
    ("empty body", b"", "application/json", 400),
    ("not json", b"user_handle=1", "application/json", 400),
    ("truncated", b'{"user_handle": 1', "application/json", 400),
    ("trailing garbage", b'{"user_handle": 1} x', "application/json", 400),
    ("NaN", b'{"user_handle": NaN}', "application/json", 400),
    ("Infinity", b'{"user_handle": Infinity}', "application/json", 400),
    ("latin-1 bytes", b'{"user_handle": 1, "model_handle": "\xe9"}', "application/json", 400),
    ("utf-16", '{"user_handle": 1}'.encode("utf-16"), "application/json", 200),
    ("lone surrogate", b'{"user_handle": 1, "model_handle": "\\udc00"}', "application/json", 422),
    ("nul byte", b'{"user_handle": 1\x00}', "application/json", 400),
    ("too deep", b"[" * 100_000, "application/json", 400),
    ("form", b"user_handle=1", "application/x-www-form-urlencoded", 415),
    ("no content type", b'{"user_handle": 1}', "", 415),
    ("xml", b"<user_handle>1</user_handle>", "application/xml", 415),
    ("duplicate keys", b'{"user_handle": 1, "user_handle": 2}', "application/json", 200),
]


@pytest.mark.parametrize(
    ("what", "raw", "content_type", "status"), RAW_BODIES, ids=[r[0] for r in RAW_BODIES]
)
def test_a_malformed_body_is_a_precise_answer(client, what, raw, content_type, status):
    app = make_app(max_body_bytes=200_000)
    response = app.test_client().post("/similar-users", data=raw, content_type=content_type)

    assert response.status_code == status, response.json
    if status >= 400:
        assert_problem(status, response.content_type, response.data)


PATHS: list[tuple[str, str, int]] = [  # (what, path, status)
    ("huge handle", f"/similar-users/{2**63}", 422),
    ("very long number", "/similar-users/" + "9" * 5000, 422),
    ("negative handle", "/similar-users/-1", 422),
    ("float handle", "/similar-users/1.5", 422),
    ("text handle", "/similar-users/abc", 422),
    ("unicode digits", "/similar-users/١٢٣", 422),
    ("percent-encoded nul", "/similar-users/%00", 422),
    ("bad percent-encoding", "/similar-users/%zz", 422),
    ("top_n twice", "/similar-users/1?top_n=1&top_n=2", 422),
    ("unknown parameter", "/similar-users/1?debug=1", 422),
    ("top_n float", "/similar-users/1?top_n=1.5", 422),
    ("top_n huge", "/similar-users/1?top_n=" + "9" * 100, 422),
    ("model unicode", "/similar-users/1?model_handle=%C4%B1nterests", 422),
    ("long path", "/similar-users/" + "a" * 3000, 422),
    ("traversal", "/similar-users/..%2f..%2fetc%2fpasswd", 404),
    ("unknown route", "/admin", 404),
]


@pytest.mark.parametrize(("what", "path", "status"), PATHS, ids=[p[0] for p in PATHS])
def test_a_hostile_path_is_a_precise_answer(client, what, path, status):
    response = client.get(path)

    assert response.status_code == status, response.json
    assert_problem(status, response.content_type, response.data)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/similar-users"),
        ("DELETE", "/similar-users/1"),
        ("PATCH", "/models"),
        ("POST", "/healthz"),
        ("POST", "/openapi.json"),
        ("TRACE", "/similar-users"),
        ("GET", "/similar-users"),
    ],
)
def test_a_wrong_method_is_405_with_allow(client, method, path):
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"]
    assert_problem(405, response.content_type, response.data)
