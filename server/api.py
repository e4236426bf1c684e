"""The routes: similar users of one user, the published models, health and readiness.

A request is parsed into a `Query` (server.query), answered from the model's current run read
through `CurrentRuns` (server.cache), and rendered in the shape server.openapi describes. Errors
are raised as the named errors of server.errors, which turns them into the one problem shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, request

from server.cache import CurrentRuns
from server.default_model import AUTO, choose
from server.errors import InvalidParams, NotReady, UnknownModel, UnknownUser
from server.query import Query, integer_or_text, json_body, parse_query
from server.settings import Settings
from store import Run


def lookup(query: Query, runs: CurrentRuns) -> dict[str, Any]:
    """Return the answer to a query; raise UnknownModel or UnknownUser."""
    if query.model_handle == AUTO:
        chosen, _ = choose(AUTO, runs.all())
        query = replace(query, model_handle=chosen or AUTO)
    run, just_read = runs.run(query.model_handle)
    if run is None:
        raise UnknownModel(query.model_handle, sorted(runs.all()))
    found = runs.neighbour_list(run, query.user_handle)
    if found is None and not just_read:
        # The cached run may have been deleted by cleanup after two quick publishes: re-read
        # (at most once a second per model, however many unknown users are asked for).
        newer, _ = runs.run(query.model_handle, fresh=True)
        if newer is not None and newer.run_id != run.run_id:
            run, found = newer, runs.neighbour_list(newer, query.user_handle)
    if found is None:
        raise UnknownUser(query.user_handle, query.model_handle, run.run_id)
    return {
        "request_data": {
            "user_handle": query.user_handle,
            "model_handle": query.model_handle,
            "top_n": query.top_n,
        },
        "data": {
            "model_handle": run.model_handle,
            "run_id": run.run_id,
            "generated_at": run.generated_at,
            "similar_users": found.best(query.top_n),
        },
    }


def describe_run(run: Run) -> dict[str, Any]:
    """Return what /models says about a model's current run (quality and export when known)."""
    described: dict[str, Any] = {
        "model_handle": run.model_handle,
        "run_id": run.run_id,
        "generated_at": run.generated_at,
        "user_count": run.user_count,
        "top_n": run.top_n,
    }
    method = run.settings.get("search")
    if isinstance(method, str):
        searched: dict[str, Any] = {"method": method}
        for name in ("recall_sample", "recall_at", "recall_sample_users", "recall_by_activity"):
            if name in run.settings:
                searched[name] = run.settings[name]
        described["search"] = searched
    if run.quality is not None:
        described["quality"] = run.quality
    if run.export is not None:
        described["export"] = run.export
    return described


def blueprint(runs: CurrentRuns, settings: Settings, openapi: dict[str, Any]) -> Blueprint:
    """Return the API's routes, answering from `runs`."""
    api = Blueprint("api", __name__)

    @api.post("/similar-users")
    def similar_users_post() -> Response:
        query = parse_query(json_body(), settings)
        return jsonify(lookup(query, runs))

    @api.get("/similar-users/<user_handle>")
    def similar_users_get(user_handle: str) -> Response:
        values: dict[str, object] = {"user_handle": integer_or_text(user_handle)}
        invalid = []
        for name in request.args:
            given = request.args.getlist(name)
            if name == "user_handle" or len(given) > 1:
                reason = "is in the path" if name == "user_handle" else "is given more than once"
                invalid.append({"name": name[:64], "reason": reason})
            else:
                values[name] = integer_or_text(given[0]) if name == "top_n" else given[0]
        if invalid:
            raise InvalidParams(invalid)
        return jsonify(lookup(parse_query(values, settings), runs))

    @api.get("/models")
    def models() -> Response:
        current = runs.all()
        default, reason = choose(settings.default_model, current)
        return jsonify(
            {
                "default_model": default,
                "default_reason": reason,
                "models": [describe_run(run) for _, run in sorted(current.items())],
            }
        )

    @api.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "alive"})

    @api.get("/readyz")
    def readyz() -> Response:
        current = runs.ready()
        if not current:
            raise NotReady("The store answers but no model has a published run yet.")
        return jsonify({"status": "ready", "models": sorted(current)})

    @api.get("/openapi.json")
    def openapi_document() -> Response:
        return jsonify(openapi)

    return api
