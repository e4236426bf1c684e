"""The routes: similar users of a user or a profile, the catalogue of names, the published models,
health and readiness.

A request is parsed into a `Query` (server.query), answered from the model's current run read
through `CurrentRuns` (server.cache) — its stored lists for a user, its space (loaded from the run's
artifact through `Spaces`, server.spaces) for a profile, an explanation or the catalogue — and
rendered in the shape server.openapi describes. Errors are raised as the named errors of
server.errors, which turns them into the one problem shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, request

from server.cache import CurrentRuns
from server.default_model import AUTO, choose
from server.errors import (
    ArtifactUnavailable,
    InvalidParams,
    NotReady,
    UnknownModel,
    UnknownUser,
)
from server.explain import explanation
from server.profiles import match_profile, refuse_unusable
from server.query import (
    CatalogueQuery,
    Query,
    integer_or_text,
    json_body,
    parse_catalogue,
    parse_query,
    url_values,
)
from server.settings import PROFILE_EXACT_MAX_USERS, Settings
from server.spaces import Loaded, Spaces
from similarity.space import ModelSpace, Profile
from store import Run


def _resolve(model_handle: str, runs: CurrentRuns) -> tuple[str, Run, bool]:
    """Return the model that answers (`auto` resolved), its current run and whether that was just
    read; UnknownModel if it has none."""
    if model_handle == AUTO:
        chosen, _ = choose(AUTO, runs.all())
        model_handle = chosen or AUTO
    run, just_read = runs.run(model_handle)
    if run is None:
        raise UnknownModel(model_handle, sorted(runs.all()))
    return model_handle, run, just_read


def _loaded(
    model_handle: str, run: Run, just_read: bool, runs: CurrentRuns, spaces: Spaces
) -> tuple[Run, Loaded]:
    """Return the run whose space answers, and that space; ArtifactUnavailable naming the run."""
    try:
        return run, spaces.get(run)
    except ArtifactUnavailable:
        if just_read:
            raise
        # The cached run's artifact may have gone with the run after two quick publishes: re-read
        # the pointer (at most once a second per model) and try the current run's.
        newer, _ = runs.run(model_handle, fresh=True)
        if newer is None or newer.run_id == run.run_id:
            raise
        return newer, spaces.get(newer)


def _data(run: Run, similar_users: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model_handle": run.model_handle,
        "run_id": run.run_id,
        "generated_at": run.generated_at,
        "similar_users": similar_users,
    }


def lookup(
    query: Query,
    runs: CurrentRuns,
    spaces: Spaces | None = None,
    exact_max_users: int = PROFILE_EXACT_MAX_USERS,
) -> dict[str, Any]:
    """Return the answer to a query; raise UnknownModel, UnknownUser, InvalidParams (a profile
    with nothing usable) or ArtifactUnavailable (a profile or an explanation, without a space)."""
    spaces = spaces or Spaces(None)
    if query.profile is not None:
        return _profile_lookup(query, runs, spaces, exact_max_users)
    user_handle = query.user_handle
    assert user_handle is not None  # parse_query gives one of the two
    model_handle, run, just_read = _resolve(query.model_handle, runs)
    query = replace(query, model_handle=model_handle)
    found = runs.neighbour_list(run, user_handle)
    if found is None and not just_read:
        # The cached run may have been deleted by cleanup after two quick publishes: re-read
        # (at most once a second per model, however many unknown users are asked for).
        newer, _ = runs.run(query.model_handle, fresh=True)
        if newer is not None and newer.run_id != run.run_id:
            run, found = newer, runs.neighbour_list(newer, user_handle)
    if found is None:
        raise UnknownUser(user_handle, query.model_handle, run.run_id)
    similar_users = found.best(query.top_n, query.mutual_only)
    if query.explain:
        space = spaces.get(run).space  # the lists' own run: its scores are the space's cosines
        at = space.row_of(user_handle)
        if at is None:
            raise ArtifactUnavailable(
                run.model_handle, run.run_id, f"has a model artifact without user {user_handle}"
            )
        asker = space.row(at)
        for neighbour in similar_users:
            there = space.row_of(neighbour["user_handle"])
            if there is None:
                raise ArtifactUnavailable(
                    run.model_handle,
                    run.run_id,
                    f"has a model artifact without user {neighbour['user_handle']}",
                )
            neighbour.update(explanation(space, asker, space.row(there), neighbour["score"]))
    return {
        "request_data": {
            "user_handle": query.user_handle,
            "model_handle": query.model_handle,
            "top_n": query.top_n,
            "explain": query.explain,
            "mutual_only": query.mutual_only,
        },
        "data": _data(run, similar_users),
    }


def _profile_lookup(
    query: Query, runs: CurrentRuns, spaces: Spaces, exact_max_users: int
) -> dict[str, Any]:
    """Return the users most similar to the query's profile."""
    assert query.profile is not None
    model_handle, run, just_read = _resolve(query.model_handle, runs)
    run, loaded = _loaded(model_handle, run, just_read, runs, spaces)
    matched = match_profile(query.profile, loaded)
    space = loaded.space
    vector = space.encode(matched.profile)
    if vector.nnz == 0:
        refuse_unusable(matched, loaded)
    similar_users: list[dict[str, Any]] = []
    for found in space.search(vector, query.top_n, exact_max_users):
        neighbour: dict[str, Any] = {"user_handle": found.user_handle, "score": found.score}
        if query.explain:
            there = space.row_of(found.user_handle)
            assert there is not None  # search returns the space's own users
            neighbour.update(explanation(space, vector, space.row(there), found.score))
        similar_users.append(neighbour)
    return {
        "request_data": {
            "profile": query.profile.echo(),
            "model_handle": model_handle,
            "top_n": query.top_n,
            "explain": query.explain,
            "mutual_only": query.mutual_only,
            "matched": matched.matched,
            "unmatched": matched.unmatched,
            # A survey's member: where their answers put them (trait scores, rounded).
            **({"traits": traits} if (traits := _traits(space, matched.profile)) else {}),
        },
        "data": _data(run, similar_users),
    }


def _traits(space: ModelSpace, profile: Profile) -> dict[str, float]:
    """Return a profile's trait scores in the model's survey, rounded (empty without one)."""
    return {name: round(score, 4) for name, score in space.traits(profile).items()}


def catalogue(query: CatalogueQuery, runs: CurrentRuns, spaces: Spaces) -> dict[str, Any]:
    """Return the names of a kind in a model's current run that are most like the query's text."""
    model_handle, run, just_read = _resolve(query.model_handle, runs)
    run, loaded = _loaded(model_handle, run, just_read, runs, spaces)
    names = loaded.vocabularies[query.kind].suggest(query.q, query.limit)
    return {
        "request_data": {
            "kind": query.kind,
            "q": query.q,
            "limit": query.limit,
            "model_handle": model_handle,
        },
        "data": {
            "model_handle": run.model_handle,
            "run_id": run.run_id,
            "generated_at": run.generated_at,
            "names": names,
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


def blueprint(
    runs: CurrentRuns, spaces: Spaces, settings: Settings, openapi: dict[str, Any]
) -> Blueprint:
    """Return the API's routes, answering from `runs` and, for profiles, from `spaces`."""
    api = Blueprint("api", __name__)

    @api.post("/similar-users")
    def similar_users_post() -> Response:
        query = parse_query(json_body(), settings)
        return jsonify(lookup(query, runs, spaces, settings.profile_exact_max_users))

    @api.get("/similar-users/<user_handle>")
    def similar_users_get(user_handle: str) -> Response:
        values = url_values(
            request.args.to_dict(flat=False), ("top_n",), ("explain", "mutual_only")
        )
        if "user_handle" in values or "profile" in values:
            name = "user_handle" if "user_handle" in values else "profile"
            reason = "is in the path" if name == "user_handle" else "is only taken by POST"
            raise InvalidParams([{"name": name, "reason": reason}])
        values["user_handle"] = integer_or_text(user_handle)
        query = parse_query(values, settings)
        return jsonify(lookup(query, runs, spaces, settings.profile_exact_max_users))

    @api.get("/catalogue")
    def catalogue_get() -> Response:
        values = url_values(request.args.to_dict(flat=False), ("limit",))
        return jsonify(catalogue(parse_catalogue(values, settings), runs, spaces))

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
