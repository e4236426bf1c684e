"""The similar-users API: a Flask app that answers "who is most like this user?" from the store.

`create_app(store, settings)` is the only entry point; the app reads nothing from the environment
and does no I/O until a request comes in (run_server.py wires it to DynamoDB and gunicorn).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from server import api
from server.errors import register_error_handlers
from server.openapi import document
from store import NeighbourStore

__all__ = ["Settings", "create_app"]


@dataclass(frozen=True)
class Settings:
    """How the API answers; every field has a safe default.

    default_model: model used when a request names none.
    default_top_n: similar users returned when a request does not say how many.
    pointer_cache_seconds: how long each process reuses a model's run pointer (and /models).
    max_body_bytes: larger request bodies are refused with 413.
    retry_after_seconds: the Retry-After of 503 answers.
    """

    default_model: str = "interests"
    default_top_n: int = 5
    pointer_cache_seconds: float = 5.0
    max_body_bytes: int = 4096
    retry_after_seconds: int = 5

    def __post_init__(self) -> None:
        if not api.is_model_handle(self.default_model):
            raise ValueError(
                f"default_model must match {api.MODEL_HANDLE_PATTERN}, not {self.default_model!r}"
            )
        if not 1 <= self.default_top_n <= api.TOP_N_MAX:
            raise ValueError(f"default_top_n must be between 1 and {api.TOP_N_MAX}")
        if self.pointer_cache_seconds < 0:
            raise ValueError("pointer_cache_seconds must not be negative")
        if self.max_body_bytes < 64:
            raise ValueError("max_body_bytes must be at least 64")
        if self.retry_after_seconds < 1:
            raise ValueError("retry_after_seconds must be at least 1")


def create_app(store: NeighbourStore, settings: Settings | None = None) -> Flask:
    """Return the API answering from `store`."""
    settings = settings or Settings()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep request_data before data
    runs = api.CurrentRuns(store, settings.pointer_cache_seconds)
    app.register_blueprint(api.blueprint(runs, settings, document(settings)))
    register_error_handlers(app, settings.retry_after_seconds)
    return app
