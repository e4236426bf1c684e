"""Named errors of the API, and the one place that turns every error into a JSON problem.

Every error answer is ``application/problem+json`` (RFC 9457) with ``type``, ``title``, ``status``
and ``detail``; a 422 adds ``invalid_params`` naming each bad field, an unknown model adds
``available_models``. The ``type`` is a URN per kind of problem: stable, and never dereferenced.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from store import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:similar-users:problem:"


def problem_type(slug: str) -> str:
    """Return the problem ``type`` URI of a kind of problem."""
    return PROBLEM_TYPE_PREFIX + slug


class ApiError(Exception):
    """An error answered as a problem of a fixed kind (one subclass per kind)."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """Return the error as a JSON problem."""
        return problem_body(self.status, self.slug, self.title, self.detail, **self.extra)


class MalformedJson(ApiError):
    """The request body is not valid JSON (status 400)."""

    status = 400
    slug = "malformed-json"
    title = "Malformed JSON"


class UnsupportedMediaType(ApiError):
    """The request body is not declared as JSON (status 415)."""

    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class InvalidParams(ApiError):
    """Fields are missing, unknown, or of the wrong type or range (status 422)."""

    status = 422
    slug = "invalid-params"
    title = "Invalid request"

    def __init__(self, invalid_params: list[dict[str, str]]) -> None:
        names = ", ".join(p["name"] for p in invalid_params)
        super().__init__(f"Invalid field(s): {names}.", invalid_params=invalid_params)


class UnknownUser(ApiError):
    """The user has no neighbour list in the model's current run (status 404)."""

    status = 404
    slug = "unknown-user"
    title = "Unknown user"

    def __init__(self, user_handle: int, model_handle: str, run_id: str) -> None:
        super().__init__(f"User {user_handle} is not in run {run_id} of model {model_handle!r}.")


class UnknownModel(ApiError):
    """No run of the model has been published (status 404)."""

    status = 404
    slug = "unknown-model"
    title = "Unknown model"

    def __init__(self, model_handle: str, available_models: list[str]) -> None:
        listed = ", ".join(available_models) if available_models else "none yet"
        super().__init__(
            f"Model {model_handle!r} has no published run. Available models: {listed}.",
            available_models=available_models,
        )


class Unauthorized(ApiError):
    """The route needs the API key and the request did not carry it (status 401)."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})


class NotReady(ApiError):
    """The store answers but holds no published run yet (status 503)."""

    status = 503
    slug = "not-ready"
    title = "Not ready"


class ArtifactUnavailable(ApiError):
    """A run's model artifact cannot be used: profile queries, explanations and the catalogue of
    that run cannot be answered; lookups by handle still can (status 503)."""

    status = 503
    slug = "artifact-unavailable"
    title = "Model artifact unavailable"

    def __init__(self, model_handle: str, run_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"Run {run_id} of model {model_handle!r} {reason}, so profile queries, explanations "
            "and the catalogue of this model cannot be answered until a run with a sound artifact "
            "is published; lookups by user_handle without explain still work."
        )


STORE_UNAVAILABLE = (
    503,
    "store-unavailable",
    "Store unavailable",
    "The neighbour store could not be reached in time; try again shortly.",
)


def problem_body(status: int, slug: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """Return the JSON problem shared by every error."""
    return {"type": problem_type(slug), "title": title, "status": status, "detail": detail, **extra}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Return the problem+json response shared by every error."""
    body = problem_body(status, slug, title, detail, **extra)
    return Response(
        json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE, headers=headers or {}
    )


def register_error_handlers(app: Flask, retry_after_seconds: int) -> None:
    """Answer every error the app can raise with the one problem shape."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        headers = dict(error.headers)
        if error.status == 503:
            headers.setdefault("Retry-After", str(retry_after_seconds))
        return problem(error.status, error.slug, error.title, error.detail, headers, **error.extra)

    @app.errorhandler(StoreError)
    def store_error(error: StoreError) -> Response:
        # Every store failure is a 503: unreachable or slow, refusing a read (e.g. a role without
        # access), or answering something other than what was asked.
        if isinstance(error, StoreUnavailableError):
            log.warning("store unavailable: %s", error)
        else:
            log.error("store error: %s", error)
        return problem(*STORE_UNAVAILABLE, {"Retry-After": str(retry_after_seconds)})

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        if error.code is None or error.code < 400:
            return error  # redirects and the like are not errors
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        if error.code == 413:
            title, slug = "Content too large", "content-too-large"
            detail = f"The request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes."
        elif error.code == 404:
            title, slug = "Not found", "not-found"
            detail = "There is no such resource; see /openapi.json for the routes."
        elif error.code == 405:
            title, slug = "Method not allowed", "method-not-allowed"
            detail = f"Allowed methods: {headers.get('Allow', 'none')}."
        else:
            title, slug = str(error.name), "http-error"
            detail = str(error.description or error.name)
        return problem(error.code, slug, title, detail, headers)

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        # The traceback goes to the server's log, never to the client.
        log.exception("unhandled error", exc_info=error)
        return problem(
            500,
            "internal-error",
            "Internal server error",
            "The server could not answer this request; the error was logged.",
        )
