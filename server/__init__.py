"""The similar-users API: a Flask app that answers "who is most like this user?" from the store,
and the explorer page at `/` that calls it from a browser.

`create_app(store, settings, artifacts=...)` is the only entry point; the app reads nothing from
the environment and does no I/O until a request comes in (run_server.py wires it to DynamoDB, the
artifact store and gunicorn).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask

from server.api import blueprint
from server.cache import CurrentRuns
from server.errors import register_error_handlers
from server.openapi import document
from server.pages import blueprint as pages
from server.security import register_security
from server.settings import Settings
from server.spaces import Spaces
from store import NeighbourStore

if TYPE_CHECKING:
    from store.artifacts import ArtifactStore

__all__ = ["Settings", "create_app"]


def create_app(
    store: NeighbourStore,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.monotonic,
    artifacts: ArtifactStore | None = None,
) -> Flask:
    """Return the API answering from `store`, and from the runs' model artifacts in `artifacts`
    (None: profile queries, explanations and the catalogue answer 503); `clock` (seconds) times
    its caches."""
    settings = settings or Settings()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep request_data before data
    runs = CurrentRuns(
        store,
        settings.pointer_cache_seconds,
        clock=clock,
        cache_bytes=int(settings.result_cache_mb * 2**20),
        ready_ttl=settings.readiness_cache_seconds,
        max_stale=settings.stale_if_error_seconds,
    )
    spaces = Spaces(
        artifacts,
        settings.artifact_cache_dir,
        clock=clock,
        retry_seconds=settings.retry_after_seconds,
    )
    register_security(app, settings.api_key, settings.cors_origins)
    app.register_blueprint(blueprint(runs, spaces, settings, document(settings)))
    app.register_blueprint(pages())
    register_error_handlers(app, settings.retry_after_seconds)
    return app
