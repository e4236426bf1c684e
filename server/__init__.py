"""The similar-users API: a Flask app that answers "who is most like this user?" from the store.

`create_app(store, settings)` is the only entry point; the app reads nothing from the environment
and does no I/O until a request comes in (run_server.py wires it to DynamoDB and gunicorn).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field

from flask import Flask, Response, request

from server import api
from server.errors import Unauthorized, register_error_handlers
from server.openapi import API_KEY_HEADER, PUBLIC_PATHS, document
from store import NeighbourStore

__all__ = ["API_KEY_HEADER", "SECURITY_HEADERS", "Settings", "create_app", "is_origin"]

# Sent with every answer. The API serves JSON only, never a page: no framing, no sniffing, no
# scripts, no referrer, and nothing kept in a shared cache (answers are about people).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
API_KEY_MIN_LENGTH = 16
_API_KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a header value can carry unchanged
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|\*")
CORS_METHODS = "GET, POST"
CORS_MAX_AGE_SECONDS = 600


def is_origin(text: str) -> bool:
    """Return whether text is an origin as browsers send it (`https://host[:port]`), or `*`."""
    return _ORIGIN.fullmatch(text) is not None


@dataclass(frozen=True)
class Settings:
    """How the API answers; every field has a safe default.

    default_model: model used when a request names none.
    default_top_n: similar users returned when a request does not say how many.
    pointer_cache_seconds: how long each process reuses a model's run pointer (and /models).
    result_cache_mb: memory (MB) each process gives to cached neighbour lists (0: none); always
        correct, since a run's lists never change and a new run is a new cache key.
    max_body_bytes: larger request bodies are refused with 413.
    retry_after_seconds: the Retry-After of 503 answers.
    api_key: when set, every route but /healthz, /readyz and /openapi.json needs it in the
        X-API-Key header (401 otherwise); None means no key is asked for.
    cors_origins: origins whose browser pages may call the API (`*` for any); empty means none.
    """

    default_model: str = "interests"
    default_top_n: int = 5
    pointer_cache_seconds: float = 5.0
    result_cache_mb: float = api.RESULT_CACHE_MB
    max_body_bytes: int = 4096
    retry_after_seconds: int = 5
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not api.is_model_handle(self.default_model):
            raise ValueError(
                f"default_model must match {api.MODEL_HANDLE_PATTERN}, not {self.default_model!r}"
            )
        if not 1 <= self.default_top_n <= api.TOP_N_MAX:
            raise ValueError(f"default_top_n must be between 1 and {api.TOP_N_MAX}")
        if self.pointer_cache_seconds < 0:
            raise ValueError("pointer_cache_seconds must not be negative")
        if not 0 <= self.result_cache_mb < math.inf:  # nan too
            raise ValueError("result_cache_mb must be a finite number, not negative")
        if self.max_body_bytes < 64:
            raise ValueError("max_body_bytes must be at least 64")
        if self.retry_after_seconds < 1:
            raise ValueError("retry_after_seconds must be at least 1")
        if self.api_key is not None and (
            len(self.api_key) < API_KEY_MIN_LENGTH or not _API_KEY.fullmatch(self.api_key)
        ):
            # The key itself is never part of the message.
            raise ValueError(
                f"the API key must be at least {API_KEY_MIN_LENGTH} visible ASCII characters "
                "without spaces"
            )
        for origin in self.cors_origins:
            if not is_origin(origin):
                raise ValueError(
                    f"a CORS origin is scheme://host[:port] in lower case, or *, not {origin!r}"
                )


def create_app(store: NeighbourStore, settings: Settings | None = None) -> Flask:
    """Return the API answering from `store`."""
    settings = settings or Settings()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep request_data before data
    runs = api.CurrentRuns(
        store, settings.pointer_cache_seconds, cache_bytes=int(settings.result_cache_mb * 2**20)
    )
    register_security(app, settings)
    app.register_blueprint(api.blueprint(runs, settings, document(settings)))
    register_error_handlers(app, settings.retry_after_seconds)
    return app


def register_security(app: Flask, settings: Settings) -> None:
    """Ask for the API key when one is set, answer CORS as configured, add the security headers."""
    key = settings.api_key
    expected = hashlib.sha256(key.encode()).digest() if key is not None else None
    origins = frozenset(settings.cors_origins)

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not origins:
            return None
        return origin if origin in origins else ("*" if "*" in origins else None)

    @app.before_request
    def preflight_or_key() -> Response | None:
        if (
            request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
            and allowed_origin() is not None
        ):
            # A browser's preflight carries no credentials: answer it before asking for the key.
            return Response(status=204)
        if expected is None or request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            return None
        given = request.headers.get(API_KEY_HEADER, "").encode("utf-8", "surrogatepass")
        # Digests of equal length, compared in a time that does not depend on where they differ,
        # tell a client nothing about the key, not even its length.
        if not hmac.compare_digest(hashlib.sha256(given).digest(), expected):
            raise Unauthorized(f"This route needs a valid API key in the {API_KEY_HEADER} header.")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if origins:
            response.vary.add("Origin")
            origin = allowed_origin()
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
                if request.method == "OPTIONS":
                    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                    response.headers["Access-Control-Allow-Headers"] = (
                        f"Content-Type, {API_KEY_HEADER}"
                    )
                    response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)
        return response
