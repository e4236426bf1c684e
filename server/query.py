"""Request parsing: the rules every request field obeys, and the `Query` a valid request becomes.

One set of rules serves the JSON body, the path and the query string, and the OpenAPI document is
built from the same constants, so what the document promises is what the server checks.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from server.errors import InvalidParams, MalformedJson, UnsupportedMediaType
from similarity.space import ANSWERS, KINDS

USER_HANDLE_MAX = 2**63 - 1
MODEL_HANDLE_PATTERN = "^[a-z0-9_]{1,64}$"
TOP_N_MAX = 1000
FIELDS = ("user_handle", "profile", "model_handle", "top_n", "explain", "mutual_only")
# A profile: at most NAMES_MAX names per kind, each of 1 to NAME_MAX_CHARS characters (Unicode
# code points) with something besides spaces and no control characters; an assessment's score is
# a number from SCORE_MIN to SCORE_MAX (the export's scale).
NAMES_MAX = 100
NAME_MAX_CHARS = 200
SCORE_MIN = 0
SCORE_MAX = 10_000
# What a name may hold, as the OpenAPI document says it: no C0 or C1 control character, and at
# least one character that is neither a space nor a control character.
NAME_PATTERN = (
    r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
)
TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"  # a catalogue query: may be empty
CATALOGUE_FIELDS = ("kind", "q", "limit", "model_handle")
# Why `mutual_only` cannot go with a profile.
MUTUAL_ONLY_WITH_PROFILE = (
    "is only taken with user_handle: a match is mutual when each user is in the other's stored "
    "list, and a profile's newcomer is in nobody's"
)
# What a profile may hold: names of each kind, and survey answers by question id.
PROFILE_KINDS = (*KINDS, ANSWERS)
ANSWERS_MAX = 200  # answers in one profile
ANSWER_MAX = 1e12  # the largest answer, either sign (as the loader takes them)
CATALOGUE_LIMIT_DEFAULT = 10
CATALOGUE_LIMIT_MAX = 100
_MODEL_HANDLE = re.compile(r"[a-z0-9_]{1,64}")  # used with fullmatch: "$" would allow a "\n"
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class ProfileQuery:
    """A newcomer's profile as sent, checked but not yet matched to any model's names."""

    interests: tuple[str, ...] = ()
    courses: tuple[str, ...] = ()
    assessments: tuple[tuple[str, float], ...] = ()  # (tag, score), in the order given
    answers: tuple[tuple[str, float], ...] = ()  # (question id, answer), in the order given

    def names(self, kind: str) -> tuple[str, ...]:
        """Return the names given for a kind (an assessment's is its tag, an answer's its
        question), in order."""
        if kind == "assessments":
            return tuple(tag for tag, _ in self.assessments)
        if kind == ANSWERS:
            return tuple(question for question, _ in self.answers)
        return self.interests if kind == "interests" else self.courses

    def echo(self) -> dict[str, Any]:
        """Return the profile as the answer echoes it, every kind present."""
        return {
            "interests": list(self.interests),
            "courses": list(self.courses),
            "assessments": [{"tag": tag, "score": score} for tag, score in self.assessments],
            ANSWERS: dict(self.answers),
        }


@dataclass(frozen=True)
class Query:
    """One resolved request: whose neighbours (a user's, or a profile's), under which model, how
    many, whether to explain each, and whether only mutual matches are wanted (users only)."""

    user_handle: int | None
    model_handle: str
    top_n: int
    profile: ProfileQuery | None = None
    explain: bool = False
    mutual_only: bool = False


@dataclass(frozen=True)
class CatalogueQuery:
    """One resolved catalogue request: names of a kind in a model, like `q`, at most `limit`."""

    kind: str
    q: str
    limit: int
    model_handle: str


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


def _model_field(
    values: Mapping[str, object], defaults: Defaults, invalid: list[dict[str, str]]
) -> str | None:
    model_handle = values.get("model_handle", defaults.default_model)
    if not isinstance(model_handle, str) or not is_model_handle(model_handle):
        invalid.append(
            {"name": "model_handle", "reason": f"must be a string matching {MODEL_HANDLE_PATTERN}"}
        )
        return None
    return model_handle


def _unknown_fields(
    values: Mapping[str, object], known: tuple[str, ...], invalid: list[dict[str, str]]
) -> None:
    for name in values:
        if name not in known:
            invalid.append(
                {"name": name[:64], "reason": f"is not a known field (known: {', '.join(known)})"}
            )


def shown(text: str, limit: int = 60) -> str:
    """Return a name as an error message quotes it: repr, cut to `limit` characters."""
    return repr(text[:limit] + "…") if len(text) > limit else repr(text)


def text_problem(value: object) -> str | None:
    """Return why a value cannot be text a person typed (a name, a query), or None."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > NAME_MAX_CHARS:
        return f"must be at most {NAME_MAX_CHARS} characters long"
    for character in value:
        category = unicodedata.category(character)
        if category == "Cc":
            return f"must not hold control characters (it holds U+{ord(character):04X})"
        if category == "Cs":
            return "must not hold lone surrogates (it is not valid Unicode text)"
    return None


def name_problem(value: object) -> str | None:
    """Return why a value cannot be a name (of an interest, course or tag), or None."""
    reason = text_problem(value)
    if reason is None and not str(value).strip():
        return "must not be empty"
    return reason


def _score_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not (math.isfinite(value) and SCORE_MIN <= value <= SCORE_MAX):
        return f"must be a number from {SCORE_MIN} to {SCORE_MAX}"
    return None


def _names(value: object, field: str, invalid: list[dict[str, str]]) -> tuple[str, ...]:
    """Return a list of names, adding what is wrong with it or any of them to `invalid`."""
    if not isinstance(value, list):
        invalid.append({"name": field, "reason": "must be an array of names"})
        return ()
    if len(value) > NAMES_MAX:
        invalid.append({"name": field, "reason": f"must hold at most {NAMES_MAX} names"})
        return ()
    names = []
    for at, name in enumerate(value):
        reason = name_problem(name)
        if reason:
            invalid.append({"name": f"{field}[{at}]", "reason": reason})
        else:
            names.append(str(name))
    return tuple(names)


def _assessments(
    value: object, field: str, invalid: list[dict[str, str]]
) -> tuple[tuple[str, float], ...]:
    """Return a list of {tag, score} as pairs, adding what is wrong to `invalid`."""
    if not isinstance(value, list):
        invalid.append({"name": field, "reason": "must be an array of {tag, score} objects"})
        return ()
    if len(value) > NAMES_MAX:
        invalid.append({"name": field, "reason": f"must hold at most {NAMES_MAX} assessments"})
        return ()
    pairs = []
    for at, entry in enumerate(value):
        here = f"{field}[{at}]"
        if not isinstance(entry, dict):
            invalid.append({"name": here, "reason": "must be an object with a tag and a score"})
            continue
        problems = []
        for key in ("tag", "score"):
            if key not in entry:
                problems.append({"name": f"{here}.{key}", "reason": "is required"})
        for key in entry:
            if key not in ("tag", "score"):
                problems.append({"name": f"{here}.{key[:64]}", "reason": "is not a known field"})
        if "tag" in entry and (reason := name_problem(entry["tag"])):
            problems.append({"name": f"{here}.tag", "reason": reason})
        if "score" in entry and (reason := _score_problem(entry["score"])):
            problems.append({"name": f"{here}.score", "reason": reason})
        if problems:
            invalid += problems
        else:
            pairs.append((str(entry["tag"]), entry["score"]))
    return tuple(pairs)


def _answers(
    value: object, field: str, invalid: list[dict[str, str]]
) -> tuple[tuple[str, float], ...]:
    """Return survey answers {question id: number} as pairs, adding what is wrong to `invalid`."""
    if not isinstance(value, dict):
        invalid.append({"name": field, "reason": "must be an object of question id: answer"})
        return ()
    if len(value) > ANSWERS_MAX:
        invalid.append({"name": field, "reason": f"must hold at most {ANSWERS_MAX} answers"})
        return ()
    pairs = []
    for question, answer in value.items():
        here = f"{field}.{question[:64]}"
        if reason := name_problem(question):
            invalid.append({"name": here, "reason": f"the question id {reason}"})
        elif isinstance(answer, bool) or not isinstance(answer, int | float):
            invalid.append({"name": here, "reason": "must be a number"})
        elif not (math.isfinite(answer) and -ANSWER_MAX <= answer <= ANSWER_MAX):
            invalid.append(
                {"name": here, "reason": f"must be a number from -{ANSWER_MAX:g} to {ANSWER_MAX:g}"}
            )
        else:
            pairs.append((question, float(answer)))
    return tuple(pairs)


def _profile(value: object, invalid: list[dict[str, str]]) -> ProfileQuery | None:
    """Return the profile a request holds, adding what is wrong with it to `invalid`."""
    if not isinstance(value, dict):
        invalid.append(
            {"name": "profile", "reason": f"must be an object of {', '.join(PROFILE_KINDS)}"}
        )
        return None
    before = len(invalid)
    for key in value:
        if key not in PROFILE_KINDS:
            invalid.append(
                {
                    "name": f"profile.{key[:64]}",
                    "reason": f"is not a known field (known: {', '.join(PROFILE_KINDS)})",
                }
            )
    profile = ProfileQuery(
        interests=_names(value.get("interests", []), "profile.interests", invalid),
        courses=_names(value.get("courses", []), "profile.courses", invalid),
        assessments=_assessments(value.get("assessments", []), "profile.assessments", invalid),
        answers=_answers(value.get(ANSWERS, {}), f"profile.{ANSWERS}", invalid),
    )
    if len(invalid) > before:
        return None
    if not any(profile.names(kind) for kind in PROFILE_KINDS):
        invalid.append(
            {
                "name": "profile",
                "reason": "names nothing: give interests, courses, assessments or answers",
            }
        )
        return None
    return profile


def parse_query(values: Mapping[str, object], defaults: Defaults) -> Query:
    """Validate request fields (JSON values) and fill in defaults; raise InvalidParams."""
    invalid: list[dict[str, str]] = []
    reason: str | None
    user_handle, profile = None, None
    if ("user_handle" in values) == ("profile" in values):
        reason = "give exactly one of user_handle and profile"
        invalid += [
            {"name": "user_handle", "reason": reason},
            {"name": "profile", "reason": reason},
        ]
    elif "user_handle" in values:
        user_handle, reason = _integer_field(values, "user_handle", 0, USER_HANDLE_MAX, None)
        if reason:
            invalid.append({"name": "user_handle", "reason": reason})
    else:
        profile = _profile(values["profile"], invalid)
    top_n, reason = _integer_field(values, "top_n", 1, TOP_N_MAX, defaults.default_top_n)
    if reason:
        invalid.append({"name": "top_n", "reason": reason})
    model_handle = _model_field(values, defaults, invalid)
    explain = values.get("explain", False)
    if not isinstance(explain, bool):
        invalid.append({"name": "explain", "reason": "must be true or false"})
    mutual_only = values.get("mutual_only", False)
    if not isinstance(mutual_only, bool):
        invalid.append({"name": "mutual_only", "reason": "must be true or false"})
    elif mutual_only and "profile" in values and "user_handle" not in values:
        invalid.append({"name": "mutual_only", "reason": MUTUAL_ONLY_WITH_PROFILE})
    _unknown_fields(values, FIELDS, invalid)
    if (
        invalid
        or top_n is None
        or model_handle is None
        or not isinstance(explain, bool)
        or not isinstance(mutual_only, bool)
    ):
        raise InvalidParams(invalid)
    return Query(
        user_handle=user_handle,
        model_handle=model_handle,
        top_n=top_n,
        profile=profile,
        explain=explain,
        mutual_only=mutual_only,
    )


def parse_catalogue(values: Mapping[str, object], defaults: Defaults) -> CatalogueQuery:
    """Validate a catalogue request's fields and fill in defaults; raise InvalidParams."""
    invalid: list[dict[str, str]] = []
    reason: str | None
    kind = values.get("kind")
    if kind not in PROFILE_KINDS:
        reason = "is required" if kind is None else f"must be one of {', '.join(PROFILE_KINDS)}"
        invalid.append({"name": "kind", "reason": reason})
    q = values.get("q", "")
    if reason := text_problem(q):
        invalid.append({"name": "q", "reason": reason})
    limit, reason = _integer_field(values, "limit", 1, CATALOGUE_LIMIT_MAX, CATALOGUE_LIMIT_DEFAULT)
    if reason:
        invalid.append({"name": "limit", "reason": reason})
    model_handle = _model_field(values, defaults, invalid)
    _unknown_fields(values, CATALOGUE_FIELDS, invalid)
    if (
        invalid
        or not isinstance(kind, str)
        or not isinstance(q, str)
        or limit is None
        or model_handle is None
    ):
        raise InvalidParams(invalid)
    return CatalogueQuery(kind=kind, q=q, limit=limit, model_handle=model_handle)


def _bounded_int(digits: str) -> int:
    """Return the integer that digits spell, or one out of every field's range if it is huge."""
    # Python refuses over-long digit strings with an error naming its own internals; any such
    # number is out of range for every field anyway.
    return int(digits) if len(digits) <= 40 else USER_HANDLE_MAX + 1


def integer_or_text(text: str) -> int | str:
    """Return text of a URL that spells an integer as that integer, else the text unchanged."""
    return _bounded_int(text) if _INTEGER_TEXT.fullmatch(text) else text


def loads(raw: bytes | str) -> object:
    """Return the JSON value of text, or raise MalformedJson saying what is wrong with it."""

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(raw, parse_constant=refuse_constant, parse_int=_bounded_int)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise MalformedJson(
            f"The request body is not valid JSON: {error.msg} at {where}."
        ) from None
    except RecursionError:
        raise MalformedJson("The request body is not valid JSON: nested too deeply.") from None
    except ValueError as error:  # bad UTF-8, NaN or Infinity, an over-long number
        raise MalformedJson(f"The request body is not valid JSON: {str(error)[:200]}.") from None


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
    body = loads(raw)
    if not isinstance(body, dict):
        raise InvalidParams([{"name": "body", "reason": "must be a JSON object"}])
    return body


def url_values(
    args: Mapping[str, list[str]], integers: tuple[str, ...], booleans: tuple[str, ...] = ()
) -> dict[str, object]:
    """Return query-string parameters as request fields: integers as numbers, `true`/`false` as
    booleans, the rest as text; InvalidParams for a parameter given more than once."""
    values: dict[str, object] = {}
    invalid = []
    for name, given in args.items():
        if len(given) > 1:
            invalid.append({"name": name[:64], "reason": "is given more than once"})
        elif name in integers:
            values[name] = integer_or_text(given[0])
        elif name in booleans:
            values[name] = {"true": True, "false": False}.get(given[0], given[0])
        else:
            values[name] = given[0]
    if invalid:
        raise InvalidParams(invalid)
    return values
