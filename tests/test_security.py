"""Security of the API: an optional API key, CORS only when configured, hardened answers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

import run_server
from server import Settings, create_app, security
from server.security import API_KEY_HEADER, SECURITY_HEADERS
from store.memory import MemoryStore
from tests.fakes import BrokenStore, DownStore, publish_lists

KEY = "k3y-for-tests-0123456789abcdef"
PROTECTED = [
    ("POST", "/similar-users", {"json": {"user_handle": 110}}),
    ("GET", "/similar-users/110", {}),
    ("GET", "/models", {}),
]
PUBLIC = ["/healthz", "/readyz", "/openapi.json"]


def published_store() -> MemoryStore:
    store = MemoryStore()
    publish_lists(store, {110: [(7, 0.5)], 7: []})
    return store


def client_with(store: Any = None, **settings: Any) -> FlaskClient:
    settings.setdefault("pointer_cache_seconds", 0)
    return create_app(store or published_store(), Settings(**settings)).test_client()


# -- API key ------------------------------------------------------------------------------------


def test_without_a_configured_key_no_key_is_asked_for():
    client = client_with()

    for method, path, kwargs in PROTECTED:
        assert client.open(path, method=method, **kwargs).status_code == 200


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, {API_KEY_HEADER: ""}, {API_KEY_HEADER: KEY[:-1]}, {API_KEY_HEADER: KEY + "x"}],
    ids=["missing", "empty", "shorter", "longer"],
)
def test_with_a_configured_key_a_request_without_it_is_401(method, path, kwargs, headers):
    client = client_with(api_key=KEY)

    response = client.open(path, method=method, headers=headers, **kwargs)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["title"] == "Unauthorized"
    assert API_KEY_HEADER in response.json["detail"]
    assert API_KEY_HEADER in response.headers["WWW-Authenticate"]
    assert KEY not in response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED)
def test_with_a_configured_key_a_request_with_it_is_answered(method, path, kwargs):
    client = client_with(api_key=KEY)

    response = client.open(path, method=method, headers={API_KEY_HEADER: KEY}, **kwargs)

    assert response.status_code == 200


@pytest.mark.parametrize("path", PUBLIC)
def test_health_readiness_and_the_document_need_no_key(path):
    assert client_with(api_key=KEY).get(path).status_code == 200


def test_the_key_is_not_a_query_parameter_or_another_header():
    client = client_with(api_key=KEY)

    assert client.get(f"/similar-users/110?api_key={KEY}").status_code == 401
    assert client.get("/similar-users/110", headers={"Authorization": KEY}).status_code == 401


@pytest.mark.parametrize("value", ["ключ-ключ-ключ-ключ", "\x00" * 20, "k" * 10_000])
def test_any_key_header_is_a_401_never_an_error(value):
    response = client_with(api_key=KEY).get("/similar-users/110", headers={API_KEY_HEADER: value})

    assert response.status_code == 401


def test_the_key_is_compared_in_constant_time(monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    client = client_with(api_key=KEY)

    client.get("/models", headers={API_KEY_HEADER: "x"})
    client.get("/models", headers={API_KEY_HEADER: KEY})

    # Digests of equal length: how long the comparison takes says nothing about the key.
    assert [(len(a), len(b)) for a, b in compared] == [(32, 32), (32, 32)]
    assert compared[1][0] == compared[1][1] == hashlib.sha256(KEY.encode()).digest()


def test_the_document_declares_the_key_only_when_one_is_configured():
    without = client_with().get("/openapi.json").json
    with_key = client_with(api_key=KEY).get("/openapi.json").json

    assert "securitySchemes" not in without["components"]
    assert with_key["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
    }
    for path, item in with_key["paths"].items():
        for operation in item.values():
            if path in PUBLIC:
                assert "security" not in operation and "401" not in operation["responses"]
            else:
                assert operation["security"] == [{"ApiKey": []}]
                assert "401" in operation["responses"]
    assert KEY not in json.dumps(with_key)


@pytest.mark.parametrize("key", ["short", "has space in the middle!", "ключ" * 8])
def test_a_weak_or_unsendable_key_is_refused_without_repeating_it(key):
    with pytest.raises(ValueError) as refused:
        Settings(api_key=key)

    assert key not in str(refused.value)


def test_the_key_never_shows_in_the_settings_repr():
    assert KEY not in repr(Settings(api_key=KEY))


# -- CORS ---------------------------------------------------------------------------------------

ORIGIN = "https://app.example.com"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}


def test_cors_is_off_unless_configured():
    client = client_with()

    simple = client.get("/models", headers={"Origin": ORIGIN})
    preflight = client.options("/similar-users", headers=PREFLIGHT)

    for response in (simple, preflight):
        assert not any(h.startswith("Access-Control-") for h, _ in response.headers.items())


def test_a_configured_origin_may_read_answers():
    client = client_with(cors_origins=(ORIGIN,))

    response = client.get("/models", headers={"Origin": ORIGIN})

    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]


def test_another_origin_may_not():
    client = client_with(cors_origins=(ORIGIN,))

    response = client.get("/models", headers={"Origin": "https://evil.example.net"})

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_a_preflight_from_a_configured_origin_is_answered_without_the_key():
    client = client_with(cors_origins=(ORIGIN,), api_key=KEY)

    response = client.options("/similar-users", headers=PREFLIGHT)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST"}
    assert API_KEY_HEADER in response.headers["Access-Control-Allow-Headers"]


def test_a_wildcard_lets_any_origin_read():
    response = client_with(cors_origins=("*",)).get("/models", headers={"Origin": ORIGIN})

    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/", "HTTPS://A.B"])
def test_an_origin_that_is_not_one_is_refused(origin):
    with pytest.raises(ValueError, match="origin"):
        Settings(cors_origins=(origin,))


# -- hardened answers ---------------------------------------------------------------------------

EVERY_KIND_OF_ANSWER = [  # (store, settings, method, path, request kwargs, expected status)
    ("ok", {}, "POST", "/similar-users", {"json": {"user_handle": 110}}, 200),
    ("ok", {}, "GET", "/openapi.json", {}, 200),
    ("ok", {}, "GET", "/healthz", {}, 200),
    ("ok", {}, "POST", "/similar-users", {"data": b"{", "content_type": "application/json"}, 400),
    ("ok", {"api_key": KEY}, "GET", "/models", {}, 401),
    ("ok", {}, "GET", "/similar-users/999", {}, 404),
    ("ok", {}, "GET", "/nowhere", {}, 404),
    ("ok", {}, "DELETE", "/models", {}, 405),
    ("ok", {}, "POST", "/similar-users", {"json": {"user_handle": 1, "x": "y" * 70_000}}, 413),
    ("ok", {}, "POST", "/similar-users", {"data": b"{}", "content_type": "text/plain"}, 415),
    ("ok", {}, "POST", "/similar-users", {"json": {"user_handle": -1}}, 422),
    ("broken", {}, "GET", "/similar-users/110", {}, 500),
    ("down", {}, "GET", "/readyz", {}, 503),
    ("empty", {}, "GET", "/readyz", {}, 503),
]


@pytest.mark.parametrize(
    ("store", "settings", "method", "path", "kwargs", "status"), EVERY_KIND_OF_ANSWER, ids=str
)
def test_every_answer_carries_the_security_headers(store, settings, method, path, kwargs, status):
    stores = {
        "ok": published_store(),
        "broken": BrokenStore(),
        "down": DownStore(),
        "empty": MemoryStore(),
    }
    client = client_with(stores[store], **settings)

    response = client.open(path, method=method, **kwargs)

    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


# Words that would tell a client how the server is built, and what the fake stores' errors say.
INTERNALS = [
    "secret internals",
    "connect timeout",
    "Traceback",
    'File "',
    ".py",
    "botocore",
    "boto3",
    "dynamo",
    "similar_users_runs",
    "10.0.0.7",
    "KeyError",
    "RuntimeError",
    "Exception",
    "werkzeug",
    "flask",
    "sys.",
]
BAD_REQUESTS = [
    ("broken", "GET", "/similar-users/110", {}),
    ("broken", "GET", "/models", {}),
    ("down", "GET", "/similar-users/110", {}),
    ("down", "GET", "/models", {}),
    ("ok", "POST", "/similar-users", {"data": b"\xff\xfe{", "content_type": "application/json"}),
    ("ok", "POST", "/similar-users", {"data": b"[" * 50_000, "content_type": "application/json"}),
    (
        "ok",
        "POST",
        "/similar-users",
        {"data": b'{"user_handle": NaN}', "content_type": "application/json"},
    ),
    ("ok", "POST", "/similar-users", {"json": {"user_handle": {"$gt": 1}, "top_n": [1]}}),
    ("ok", "POST", "/similar-users", {"json": {"__class__": 1, "user_handle": 1}}),
    ("ok", "GET", "/similar-users/%00", {}),
    ("ok", "GET", "/similar-users/1?top_n=1e309", {}),
    ("ok", "GET", "/../../etc/passwd", {}),
    ("ok", "TRACE", "/similar-users", {}),
]


@pytest.mark.parametrize(("store", "method", "path", "kwargs"), BAD_REQUESTS, ids=str)
def test_no_error_says_how_the_server_is_built(store, method, path, kwargs):
    stores = {"ok": published_store(), "broken": BrokenStore(), "down": DownStore()}
    client = client_with(stores[store], max_body_bytes=100_000)

    response = client.open(path, method=method, **kwargs)

    assert response.status_code >= 400
    text = response.get_data(as_text=True)
    for word in INTERNALS:
        assert word.lower() not in text.lower(), f"{word!r} in {text}"


def test_a_number_too_long_for_python_is_refused_without_naming_python():
    body = b'{"user_handle": ' + b"9" * 5000 + b"}"
    response = client_with(max_body_bytes=100_000).post(
        "/similar-users", data=body, content_type="application/json"
    )

    assert response.status_code in (400, 422)
    assert "sys." not in response.get_data(as_text=True)


# -- configuration ------------------------------------------------------------------------------


def test_the_server_takes_the_key_and_the_origins_from_the_environment():
    config = run_server.config_from_env(
        {"API_KEY": f" {KEY} ", "CORS_ORIGINS": f"{ORIGIN}, http://localhost:3000 ,"}
    )

    assert config.settings.api_key == KEY
    assert config.settings.cors_origins == (ORIGIN, "http://localhost:3000")


def test_without_those_variables_there_is_no_key_and_no_cors():
    config = run_server.config_from_env({})

    assert config.settings.api_key is None
    assert config.settings.cors_origins == ()


def test_a_bad_key_in_the_environment_fails_at_start_without_printing_it():
    with pytest.raises(run_server.ConfigError) as refused:
        run_server.config_from_env({"API_KEY": "tooshort"})

    assert "tooshort" not in str(refused.value)
    assert KEY not in repr(run_server.config_from_env({"API_KEY": KEY}))
