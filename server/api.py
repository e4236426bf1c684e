"""The routes: similar users of one user, the published models, health and readiness.

A request is parsed into a `Query` (one set of rules for the JSON body, the path and the query
string), answered from the model's current run, and rendered as in DESIGN.md §7. The current runs
are read through `CurrentRuns`, a short per-process cache of the store's run pointers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from server.errors import (
    InvalidParams,
    MalformedJson,
    NotReady,
    UnknownModel,
    UnknownUser,
    UnsupportedMediaType,
)
from store import NeighbourList, NeighbourStore, Run

if TYPE_CHECKING:
    from server import Settings

USER_HANDLE_MAX = 2**63 - 1
MODEL_HANDLE_PATTERN = "^[a-z0-9_]{1,64}$"
TOP_N_MAX = 1000
FIELDS = ("user_handle", "model_handle", "top_n")
_MODEL_HANDLE = re.compile(r"[a-z0-9_]{1,64}")  # used with fullmatch: "$" would allow a "\n"
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_MAX_CACHED_MODELS = 256
# Memory each process gives to cached neighbour lists (a list of 50 neighbours holds 1.25 KB).
RESULT_CACHE_MB = 128


@dataclass(frozen=True)
class Query:
    """One resolved request: whose neighbours, under which model, how many."""

    user_handle: int
    model_handle: str
    top_n: int


def _as_integer(value: object) -> int | None:
    """Return a JSON value as an integer if it is one (110 or 110.0, never true), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _integer_field(
    values: Mapping[str, object], name: str, low: int, high: int, default: int | None
) -> tuple[int | None, str | None]:
    """Return a field's integer value (or the default) and why it is invalid, if it is."""
    if name not in values:
        return (default, None) if default is not None else (None, "is required")
    number = _as_integer(values[name])
    if number is None:
        return None, "must be an integer"
    if not low <= number <= high:
        return None, f"must be between {low} and {high}"
    return number, None


def parse_query(values: Mapping[str, object], settings: Settings) -> Query:
    """Validate request fields (JSON values) and fill in defaults; raise InvalidParams."""
    invalid: list[dict[str, str]] = []
    user_handle, reason = _integer_field(values, "user_handle", 0, USER_HANDLE_MAX, None)
    if reason:
        invalid.append({"name": "user_handle", "reason": reason})
    top_n, reason = _integer_field(values, "top_n", 1, TOP_N_MAX, settings.default_top_n)
    if reason:
        invalid.append({"name": "top_n", "reason": reason})
    model_handle = values.get("model_handle", settings.default_model)
    if not isinstance(model_handle, str) or not is_model_handle(model_handle):
        invalid.append(
            {"name": "model_handle", "reason": f"must be a string matching {MODEL_HANDLE_PATTERN}"}
        )
    for name in values:
        if name not in FIELDS:
            invalid.append(
                {"name": name[:64], "reason": f"is not a known field (known: {', '.join(FIELDS)})"}
            )
    if invalid or user_handle is None or top_n is None or not isinstance(model_handle, str):
        raise InvalidParams(invalid)
    return Query(user_handle=user_handle, model_handle=model_handle, top_n=top_n)


def is_model_handle(text: str) -> bool:
    """Return whether text is a well-formed model handle (lower-case letters, digits, _)."""
    return _MODEL_HANDLE.fullmatch(text) is not None


def integer_or_text(text: str) -> int | str:
    """Return text of a URL that spells an integer as that integer, else the text unchanged."""
    if _INTEGER_TEXT.fullmatch(text):
        # Python refuses to parse very long digit strings; any such number is out of range anyway.
        return int(text) if len(text) <= 40 else USER_HANDLE_MAX + 1
    return text


def json_body() -> dict[str, object]:
    """Return the request's JSON object, or raise the problem with the body."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"The request body must be JSON (Content-Type: application/json), "
            f"not {request.mimetype or 'undeclared'}."
        )
    raw = request.get_data(cache=False)  # raises RequestEntityTooLarge over MAX_CONTENT_LENGTH
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body is cut at the limit rather than refused: refuse it here.
        raise RequestEntityTooLarge()

    def bounded_int(text: str) -> int:
        # Python refuses over-long digit strings with an error naming its own internals; any such
        # number is out of range for every field anyway.
        return int(text) if len(text) <= 40 else USER_HANDLE_MAX + 1

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(raw, parse_constant=refuse_constant, parse_int=bounded_int)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise MalformedJson(
            f"The request body is not valid JSON: {error.msg} at {where}."
        ) from None
    except RecursionError:
        raise MalformedJson("The request body is not valid JSON: nested too deeply.") from None
    except ValueError as error:  # bad UTF-8, NaN or Infinity, an over-long number
        raise MalformedJson(f"The request body is not valid JSON: {str(error)[:200]}.") from None
    if not isinstance(body, dict):
        raise InvalidParams([{"name": "body", "reason": "must be a JSON object"}])
    return body


ResultKey = tuple[str, str, int]  # (model_handle, run_id, user_handle)


# What a cached list holds beyond its arrays' items: the arrays' and the list's own objects, its
# key and the cache's links (measured: 390-446 bytes for lists of 5, 50 and 500 neighbours).
CACHE_ENTRY_OVERHEAD_BYTES = 450


@dataclass(frozen=True, slots=True)
class Ranked:
    """A user's similar users, best first, as two compact arrays (1.25 KB cached, for 50)."""

    handles: array[int]
    scores: array[float]

    @property
    def nbytes(self) -> int:
        """About how much memory the list holds while it is cached."""
        return (
            CACHE_ENTRY_OVERHEAD_BYTES
            + len(self.handles) * self.handles.itemsize
            + len(self.scores) * self.scores.itemsize
        )

    @classmethod
    def of(cls, found: NeighbourList) -> Ranked:
        """Return the compact form of a neighbour list."""
        return cls(
            array("q", [n.user_handle for n in found.neighbours]),
            array("d", [n.score for n in found.neighbours]),
        )

    def best(self, top_n: int) -> list[dict[str, Any]]:
        """Return the top_n best as the API's JSON objects."""
        return [
            {"user_handle": h, "score": s}
            for h, s in zip(self.handles[:top_n], self.scores[:top_n], strict=True)
        ]


class ResultCache:
    """A segmented LRU of users' neighbour lists by (model, run, user), bounded in bytes.

    Always correct: a run's lists never change once written, and a new run has a new key. Absences
    are not kept: a read of a just-published item may miss it (DynamoDB reads are eventually
    consistent), and a run named by a cached pointer may have been deleted since.

    A list read from the store enters a probation segment (a fifth of the bytes); asked for again,
    it moves to the protected segment, whose least recently used lists drop back to probation when
    it is full. A stream of users asked for once only churns probation, so it never pushes out the
    users asked for again and again. Bounded by memory rather than by count, so runs with long
    lists (a large top_n) cannot make it outgrow its budget. Safe to share between threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._probation_max = self.max_bytes // 5
        self._protected_max = self.max_bytes - self._probation_max
        self._lock = threading.Lock()
        self._probation: OrderedDict[ResultKey, Ranked] = OrderedDict()
        self._protected: OrderedDict[ResultKey, Ranked] = OrderedDict()
        self._probation_bytes = 0
        self._protected_bytes = 0

    def get(self, key: ResultKey) -> Ranked | None:
        """Return the cached list of the key, or None."""
        with self._lock:
            found = self._protected.get(key)
            if found is not None:
                self._protected.move_to_end(key)
                return found
            found = self._probation.pop(key, None)
            if found is not None:
                self._probation_bytes -= found.nbytes
                self._protected[key] = found
                self._protected_bytes += found.nbytes
                while self._protected_bytes > self._protected_max:
                    dropped_key, dropped = self._protected.popitem(last=False)
                    self._protected_bytes -= dropped.nbytes
                    self._on_probation(dropped_key, dropped)
            return found

    def offer(self, key: ResultKey, found: Ranked) -> None:
        """Keep a list just read from the store, on probation."""
        if found.nbytes <= self._probation_max:  # else it would push out all probation for naught
            with self._lock:
                if key not in self._protected:  # another thread may have just read it too
                    self._on_probation(key, found)

    def __len__(self) -> int:
        with self._lock:
            return len(self._probation) + len(self._protected)

    @property
    def nbytes(self) -> int:
        """About how much memory the cached lists hold."""
        with self._lock:
            return self._probation_bytes + self._protected_bytes

    def _on_probation(self, key: ResultKey, found: Ranked) -> None:
        replaced = self._probation.pop(key, None)
        if replaced is not None:
            self._probation_bytes -= replaced.nbytes
        self._probation[key] = found
        self._probation_bytes += found.nbytes
        while self._probation_bytes > self._probation_max:
            _, dropped = self._probation.popitem(last=False)
            self._probation_bytes -= dropped.nbytes


class CurrentRuns:
    """Each model's published run, read from the store at most once per `ttl` seconds per model,
    and the neighbour lists read from those runs (a `ResultCache` of ``cache_bytes``).

    Safe to share between threads. A cached run may be a few seconds old; the generator keeps the
    previous run when it publishes a new one, so a run named by the cache still exists unless two
    runs of the model were published within `ttl` (see `lookup` for that case).
    """

    def __init__(
        self,
        store: NeighbourStore,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        cache_bytes: int = RESULT_CACHE_MB * 2**20,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.lists = ResultCache(cache_bytes)
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[float, Run | None]] = {}
        self._all: tuple[float, dict[str, Run]] | None = None

    def neighbour_list(self, run: Run, user_handle: int) -> Ranked | None:
        """Return the user's list in the run, from the cache or the store; None if absent."""
        key = (run.model_handle, run.run_id, user_handle)
        found = self.lists.get(key)
        if found is None:
            stored = self.store.get_list(run, user_handle)
            if stored is None:
                return None
            found = Ranked.of(stored)
            self.lists.offer(key, found)
        return found

    def run(self, model_handle: str, fresh: bool = False) -> tuple[Run | None, bool]:
        """Return the model's current run (None if none) and whether it was just read."""
        now = self.clock()
        if not fresh:
            with self._lock:
                cached = self._runs.get(model_handle)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1], False
        found = self.store.current_run(model_handle)
        with self._lock:
            if len(self._runs) >= _MAX_CACHED_MODELS:  # bounded: clients choose model handles
                self._runs.clear()
            self._runs[model_handle] = (now, found)
        return found, True

    def all(self, fresh: bool = False) -> dict[str, Run]:
        """Return every model's current run, by model handle."""
        now = self.clock()
        if not fresh:
            with self._lock:
                cached = self._all
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        found = self.store.current_runs()
        with self._lock:
            self._all = (now, found)
        return found


def lookup(query: Query, runs: CurrentRuns) -> dict[str, Any]:
    """Return the answer to a query; raise UnknownModel or UnknownUser."""
    run, just_read = runs.run(query.model_handle)
    if run is None:
        raise UnknownModel(query.model_handle, sorted(runs.all()))
    found = runs.neighbour_list(run, query.user_handle)
    if found is None and not just_read:
        # The cached run may have been deleted by cleanup after two quick publishes: re-read.
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
    """Return what /models says about a model's current run."""
    return {
        "model_handle": run.model_handle,
        "run_id": run.run_id,
        "generated_at": run.generated_at,
        "user_count": run.user_count,
        "top_n": run.top_n,
    }


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
        return jsonify(
            {
                "default_model": settings.default_model,
                "models": [describe_run(run) for _, run in sorted(current.items())],
            }
        )

    @api.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "alive"})

    @api.get("/readyz")
    def readyz() -> Response:
        current = runs.all(fresh=True)
        if not current:
            raise NotReady("The store answers but no model has a published run yet.")
        return jsonify({"status": "ready", "models": sorted(current)})

    @api.get("/openapi.json")
    def openapi_document() -> Response:
        return jsonify(openapi)

    return api
