"""Request parsing: the rules every request field obeys, and the `Query` a valid request becomes.

One set of rules serves the JSON body, the path and the query string, and the OpenAPI document is
built from the same constants, so what the document promises is what the server checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from server.errors import InvalidParams, MalformedJson, UnsupportedMediaType

USER_HANDLE_MAX = 2**63 - 1
MODEL_HANDLE_PATTERN = "^[a-z0-9_]{1,64}$"
TOP_N_MAX = 1000
FIELDS = ("user_handle", "model_handle", "top_n")
_MODEL_HANDLE = re.compile(r"[a-z0-9_]{1,64}")  # used with fullmatch: "$" would allow a "\n"
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Query:
    """One resolved request: whose neighbours, under which model, how many."""

    user_handle: int
    model_handle: str
    top_n: int


class Defaults(Protocol):
    """What fills in the fields a request leaves out (the server's `Settings`)."""

    @property
    def default_model(self) -> str: ...

    @property
    def default_top_n(self) -> int: ...


def is_model_handle(text: str) -> bool:
    """Return whether text is a well-formed model handle (lower-case letters, digits, _)."""
    return _MODEL_HANDLE.fullmatch(text) is not None


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


def parse_query(values: Mapping[str, object], defaults: Defaults) -> Query:
    """Validate request fields (JSON values) and fill in defaults; raise InvalidParams."""
    invalid: list[dict[str, str]] = []
    user_handle, reason = _integer_field(values, "user_handle", 0, USER_HANDLE_MAX, None)
    if reason:
        invalid.append({"name": "user_handle", "reason": reason})
    top_n, reason = _integer_field(values, "top_n", 1, TOP_N_MAX, defaults.default_top_n)
    if reason:
        invalid.append({"name": "top_n", "reason": reason})
    model_handle = values.get("model_handle", defaults.default_model)
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


def _bounded_int(digits: str) -> int:
    """Return the integer that digits spell, or one out of every field's range if it is huge."""
    # Python refuses over-long digit strings with an error naming its own internals; any such
    # number is out of range for every field anyway.
    return int(digits) if len(digits) <= 40 else USER_HANDLE_MAX + 1


def integer_or_text(text: str) -> int | str:
    """Return text of a URL that spells an integer as that integer, else the text unchanged."""
    return _bounded_int(text) if _INTEGER_TEXT.fullmatch(text) else text


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

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(raw, parse_constant=refuse_constant, parse_int=_bounded_int)
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
