"""The OpenAPI 3.1 description of the API, served at /openapi.json.

Built from the constants the routes validate with and from the settings, so the document says what
the server really checks and answers (tests hold it to that).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from server.errors import PROBLEM_MIMETYPE, problem_type
from server.explain import SHARED_MAX
from server.matching import FUZZY_CUTOFF, FUZZY_SCORER
from server.query import (
    ANSWER_MAX,
    ANSWERS_MAX,
    CATALOGUE_LIMIT_DEFAULT,
    CATALOGUE_LIMIT_MAX,
    MODEL_HANDLE_PATTERN,
    NAME_MAX_CHARS,
    NAME_PATTERN,
    NAMES_MAX,
    PROFILE_KINDS,
    SCORE_MAX,
    SCORE_MIN,
    TEXT_PATTERN,
    TOP_N_MAX,
    USER_HANDLE_MAX,
)
from server.security import API_KEY_HEADER, PUBLIC_PATHS
from server.settings import Settings
from similarity.space import ANSWERS, KINDS

PROBLEM_SLUGS = [
    "malformed-json",
    "unsupported-media-type",
    "invalid-params",
    "unknown-user",
    "unknown-model",
    "not-found",
    "method-not-allowed",
    "content-too-large",
    "store-unavailable",
    "not-ready",
    "artifact-unavailable",
    "unauthorized",
    "internal-error",
    "http-error",
]


# What every answer from a run says of it, in its `data`.
RUN_FIELDS: dict[str, Any] = {
    "model_handle": {"type": "string"},
    "run_id": {"type": "string"},
    "generated_at": {"type": "string", "format": "date-time"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(
    description: str,
    schema: str = "Problem",
    retry_after: bool = False,
    www_authenticate: bool = False,
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MIMETYPE: {"schema": _ref(schema)}},
    }
    if retry_after:
        answer["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    if www_authenticate:
        answer["headers"] = {"WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"}}
    return answer


def _api_version() -> str:
    try:
        return version("similar-users")
    except PackageNotFoundError:
        return "0+unknown"


def document(settings: Settings) -> dict[str, Any]:
    """Return the OpenAPI document of the API as configured by `settings`."""
    described = _document(settings)
    if settings.api_key is not None:
        _require_api_key(described)
    return described


def _require_api_key(described: dict[str, Any]) -> None:
    """Add the API key security scheme, and its 401 answer, to every route that is not public."""
    described["components"]["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
    }
    unauthorized = _problem(
        f"No valid API key in the {API_KEY_HEADER} header.", www_authenticate=True
    )
    for path, item in described["paths"].items():
        if path in PUBLIC_PATHS:
            continue
        for operation in item.values():
            operation["security"] = [{"ApiKey": []}]
            operation["responses"]["401"] = unauthorized


def _document(settings: Settings) -> dict[str, Any]:
    user_handle = {"type": "integer", "minimum": 0, "maximum": USER_HANDLE_MAX}
    model_handle = {
        "type": "string",
        "pattern": MODEL_HANDLE_PATTERN,
        "default": settings.default_model,
        "description": "Similarity model to answer with; GET /models lists the published ones "
        "and says which one answers when none is named (`auto`: the best measured).",
    }
    top_n = {
        "type": "integer",
        "minimum": 1,
        "maximum": TOP_N_MAX,
        "default": settings.default_top_n,
        "description": "How many similar users to return at most. A run stores a fixed number "
        "per user (see `top_n` in GET /models); asking for more returns what was stored, and "
        "users with little in common with anyone may have fewer (possibly none).",
    }
    unavailable = _problem(
        "The store could not be reached in time, refused the read or answered something else "
        "than what was asked, or (readiness) has no published run yet.",
        retry_after=True,
    )
    unavailable_or_artifact = _problem(
        "The store could not be reached in time, refused the read or answered something else "
        "than what was asked (title `Store unavailable`); or (title `Model artifact "
        "unavailable`) the model artifact of the run that answers is missing, corrupt, "
        "unreadable or was never written, or no artifact store is configured, so a profile, an "
        "explanation or the catalogue cannot be answered: the detail names the run and the "
        "model. Lookups by `user_handle` without `explain` do not need the artifact.",
        retry_after=True,
    )
    internal = _problem("Unexpected server error; details are only in the server's log.")
    similar_errors = {
        "404": _problem(
            "Unknown user (title `Unknown user`): the user is not in the model's current run; "
            "or unknown model (title `Unknown model`, with `available_models`)."
        ),
        "422": _problem(
            "Invalid or missing fields, each named in `invalid_params` (e.g. "
            "`profile.interests[2]`). Also a profile of which nothing is usable by the model: "
            "`invalid_params` names each of its names that matched nothing (or whose kind the "
            "model does not read), which no schema can tell in advance.",
            "InvalidParamsProblem",
        ),
        "500": internal,
        "503": unavailable_or_artifact,
    }
    name = {
        "type": "string",
        "minLength": 1,
        "maxLength": NAME_MAX_CHARS,
        "pattern": NAME_PATTERN,
        "description": "A name as a person writes it: not only spaces, no control characters. "
        "Matched to the model's names exactly, then normalised (Unicode NFKC, case folded, "
        "each run of spaces, hyphens and underscores made one hyphen), then fuzzily: the "
        f"closest name by {FUZZY_SCORER} of at least {FUZZY_CUTOFF:g} on the normalised forms "
        "(at most one typo per five characters); ties go to the name more users have.",
    }
    explain = {
        "type": "boolean",
        "default": False,
        "description": f"Add to each similar user the (up to {SHARED_MAX}) features both share "
        "that add most to the score (`shared`) and the sum of the others (`shared_rest`): the "
        "contributions shown plus the rest's add up to the score. Needs the run's artifact.",
    }
    mutual_only = {
        "type": "boolean",
        "default": False,
        "description": "Only mutual matches (`mutual`: each user is in the other's stored "
        "list): the user's stored list is filtered, then cut to `top_n`, so fewer may come back "
        "(possibly none). Read from the same item, so it costs nothing more. Only with "
        "`user_handle`: a profile's newcomer is in nobody's stored list, so `mutual_only: true` "
        "with a `profile` is refused (422).",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "similar-users",
            "version": _api_version(),
            "description": "Who is most like this user, or this newcomer's profile? Ranked "
            "similar users with cosine scores, from the current published run of a similarity "
            "model: a user's are read from the run's stored lists; a profile's are found in the "
            "run's model artifact (its vocabulary and user×feature matrix), which explanations "
            "and the catalogue also need. While the "
            "store cannot be reached, a list a process has cached from a model's run last read "
            f"is still answered, for up to {settings.stale_if_error_seconds:g} s after that "
            "read; other lists are a 503.\n\n"
            "Every error is `application/problem+json` (RFC 9457) with `type`, `title`, "
            "`status` and `detail`. Besides the answers listed per operation, any route "
            "answers 405 (with `Allow`) to a method it does not support, an unknown path "
            "answers 404, and any error may be 500 (details only in the server's log).",
        },
        "paths": {
            "/similar-users": {
                "post": {
                    "operationId": "similarUsers",
                    "summary": "Rank the users most similar to a user or to a profile",
                    "requestBody": {
                        "required": True,
                        "description": f"At most {settings.max_body_bytes} bytes. Unknown "
                        "fields are refused (422) so that typos do not go unnoticed.",
                        "content": {"application/json": {"schema": _ref("SimilarUsersRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("SimilarUsers"), "Similar users, best first."),
                        "400": _problem("The body is not valid JSON."),
                        **similar_errors,
                        "413": _problem(f"The body is over {settings.max_body_bytes} bytes."),
                        "415": _problem("The body is not declared as `application/json`."),
                    },
                }
            },
            "/similar-users/{user_handle}": {
                "get": {
                    "operationId": "similarUsersOf",
                    "summary": "Rank the users most similar to a user (same answer as POST)",
                    "parameters": [
                        {
                            "name": "user_handle",
                            "in": "path",
                            "required": True,
                            "schema": user_handle,
                        },
                        {"name": "model_handle", "in": "query", "schema": model_handle},
                        {"name": "top_n", "in": "query", "schema": top_n},
                        {"name": "explain", "in": "query", "schema": explain},
                        {"name": "mutual_only", "in": "query", "schema": mutual_only},
                    ],
                    "description": "Other query parameters, or one given twice, are refused (422).",
                    "responses": {
                        "200": _json(_ref("SimilarUsers"), "Similar users, best first."),
                        **similar_errors,
                    },
                }
            },
            "/catalogue": {
                "get": {
                    "operationId": "catalogue",
                    "summary": "Suggest names of a kind that a model knows (autocomplete)",
                    "description": "Names whose normalised form starts with the normalised `q` "
                    "come first, then those that hold it, then fuzzy matches (closest first); "
                    "among the first two, names more users have come first. An empty `q` gives "
                    "the names most users have. A kind the model does not read has no names. "
                    "Other query parameters, or one given twice, are refused (422).",
                    "parameters": [
                        {
                            "name": "kind",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "enum": list(PROFILE_KINDS)},
                        },
                        {
                            "name": "q",
                            "in": "query",
                            "schema": {
                                "type": "string",
                                "maxLength": NAME_MAX_CHARS,
                                "pattern": TEXT_PATTERN,
                                "default": "",
                            },
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": CATALOGUE_LIMIT_MAX,
                                "default": CATALOGUE_LIMIT_DEFAULT,
                            },
                        },
                        {"name": "model_handle", "in": "query", "schema": model_handle},
                    ],
                    "responses": {
                        "200": _json(_ref("Catalogue"), "Names, best first."),
                        "404": _problem("Unknown model (with `available_models`)."),
                        "422": _problem(
                            "Invalid or missing parameters, each named in `invalid_params`.",
                            "InvalidParamsProblem",
                        ),
                        "500": internal,
                        "503": unavailable_or_artifact,
                    },
                }
            },
            "/models": {
                "get": {
                    "operationId": "models",
                    "summary": "List every published model with its current run",
                    "responses": {
                        "200": _json(_ref("Models"), "The published models."),
                        "500": internal,
                        "503": unavailable,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Say the process is alive (does not touch the store)",
                    "responses": {"200": _json(_ref("Health"), "Alive.")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Say whether the store answers and has a published run",
                    "description": f"Each process asks the store at most once per "
                    f"{settings.readiness_cache_seconds:g} s and answers every probe in between "
                    "with what it said, a 503 included.",
                    "responses": {
                        "200": _json(_ref("Ready"), "Ready to answer."),
                        "500": internal,
                        "503": unavailable,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                    },
                }
            },
        },
        "components": {
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "minimum": 1},
                },
                "WWWAuthenticate": {
                    "description": f"How to authenticate: the API key in the {API_KEY_HEADER} "
                    "header.",
                    "schema": {"type": "string"},
                },
            },
            "schemas": {
                "SimilarUsersRequest": {
                    "description": "Exactly one of `user_handle` (a user of the run: their "
                    "stored list) and `profile` (a newcomer: searched in the run's artifact).",
                    "type": "object",
                    "oneOf": [{"required": ["user_handle"]}, {"required": ["profile"]}],
                    "if": {"required": ["profile"]},
                    "then": {"properties": {"mutual_only": {"const": False}}},
                    "additionalProperties": False,
                    "properties": {
                        "user_handle": {
                            **user_handle,
                            "description": "A whole number; 110.0 counts as 110, "
                            'but not true, "110" or 110.5.',
                        },
                        "profile": _ref("Profile"),
                        "model_handle": model_handle,
                        "top_n": top_n,
                        "explain": explain,
                        "mutual_only": mutual_only,
                    },
                },
                "Profile": {
                    "description": "A newcomer's evidence, named as people write it: at least "
                    f"one name, at most {NAMES_MAX} per kind. Each course counts as viewed for "
                    "its typical time; a name given twice counts once (an assessment tag, with "
                    "the last score given). Kinds the model does not read are reported in "
                    "`unmatched`, not refused, unless nothing usable remains.",
                    "type": "object",
                    "additionalProperties": False,
                    "anyOf": [
                        *(
                            {"required": [kind], "properties": {kind: {"minItems": 1}}}
                            for kind in KINDS
                        ),
                        {"required": [ANSWERS], "properties": {ANSWERS: {"minProperties": 1}}},
                    ],
                    "properties": {
                        "interests": {
                            "type": "array",
                            "maxItems": NAMES_MAX,
                            "items": _ref("Name"),
                        },
                        "courses": {"type": "array", "maxItems": NAMES_MAX, "items": _ref("Name")},
                        "assessments": {
                            "type": "array",
                            "maxItems": NAMES_MAX,
                            "items": _ref("Assessment"),
                        },
                        ANSWERS: {
                            "description": "Survey answers by question id, on each question's "
                            "scale (the `survey` model and hybrids weighing it). Question ids are "
                            "matched exactly or normalised, never fuzzily. A member who answered "
                            "too few of the survey's questions is refused (422, saying how many "
                            "are needed).",
                            "type": "object",
                            "maxProperties": ANSWERS_MAX,
                            "propertyNames": _ref("Name"),
                            "additionalProperties": {
                                "type": "number",
                                "minimum": -ANSWER_MAX,
                                "maximum": ANSWER_MAX,
                            },
                        },
                    },
                },
                "Name": name,
                "Assessment": {
                    "type": "object",
                    "required": ["tag", "score"],
                    "additionalProperties": False,
                    "properties": {
                        "tag": _ref("Name"),
                        "score": {
                            "description": "On the export's scale; in the `assessments` model "
                            "only a score above the tag's average is evidence.",
                            "type": "number",
                            "minimum": SCORE_MIN,
                            "maximum": SCORE_MAX,
                        },
                    },
                },
                "SimilarUsers": {
                    "type": "object",
                    "required": ["request_data", "data"],
                    "additionalProperties": False,
                    "properties": {
                        "request_data": {
                            "description": "The request, with defaults filled in (`model_handle` "
                            "is the model that answered); for a profile, what each name was "
                            "matched to and what was not matched.",
                            "type": "object",
                            "required": ["model_handle", "top_n", "explain", "mutual_only"],
                            "oneOf": [
                                {"required": ["user_handle"]},
                                {"required": ["profile", "matched", "unmatched"]},
                            ],
                            "additionalProperties": False,
                            "properties": {
                                "user_handle": user_handle,
                                "profile": _ref("Profile"),
                                "model_handle": {"type": "string", "pattern": MODEL_HANDLE_PATTERN},
                                "top_n": {"type": "integer", "minimum": 1, "maximum": TOP_N_MAX},
                                "explain": {"type": "boolean"},
                                "mutual_only": {"type": "boolean"},
                                "matched": {"type": "array", "items": _ref("MatchedName")},
                                "unmatched": {"type": "array", "items": _ref("UnmatchedName")},
                                "traits": {
                                    "description": "A profile's survey answers as trait scores "
                                    "(factor scores; only for a model with a survey).",
                                    "type": "object",
                                    "additionalProperties": {"type": "number"},
                                },
                            },
                        },
                        "data": {
                            "type": "object",
                            "required": ["model_handle", "run_id", "generated_at", "similar_users"],
                            "additionalProperties": False,
                            "properties": {
                                **RUN_FIELDS,
                                "similar_users": {
                                    "description": "Best first; ties ordered by handle. At "
                                    "most `top_n`, and for a user never more than the run "
                                    "stored.",
                                    "type": "array",
                                    "maxItems": TOP_N_MAX,
                                    "items": _ref("SimilarUser"),
                                },
                            },
                        },
                    },
                },
                "MatchedName": {
                    "type": "object",
                    "required": ["kind", "input", "name", "how"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {"type": "string", "enum": list(PROFILE_KINDS)},
                        "input": {"type": "string"},
                        "name": {"type": "string", "description": "The model's own name."},
                        "how": {"type": "string", "enum": ["exact", "normalised", "fuzzy"]},
                        "evidence": {
                            "description": "Only when false: the name was matched but adds "
                            "nothing to the profile in this model (an assessment score at or "
                            "below the tag's average, a course without tags under course_tags).",
                            "type": "boolean",
                        },
                        "score": {
                            "description": f"Fuzzy only: the {FUZZY_SCORER} of the normalised "
                            "forms.",
                            "type": "number",
                            "minimum": FUZZY_CUTOFF,
                            "maximum": 1,
                        },
                    },
                },
                "UnmatchedName": {
                    "type": "object",
                    "required": ["kind", "input", "reason"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {"type": "string", "enum": list(PROFILE_KINDS)},
                        "input": {"type": "string"},
                        "reason": {
                            "description": "Nothing of the model is close enough, or the model "
                            "does not read this kind.",
                            "type": "string",
                        },
                    },
                },
                "SimilarUser": {
                    "type": "object",
                    "required": ["user_handle", "score"],
                    "additionalProperties": False,
                    "properties": {
                        "user_handle": user_handle,
                        "score": {
                            "description": "Cosine similarity, 0 < score ≤ 1.",
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": 1,
                        },
                        "mutual": {
                            "description": "For a user (always there): true when each of the "
                            "two users is in the other's stored list of the run, i.e. the user "
                            "asked about is also among this one's similar users. Marked by the "
                            "generator when it stores the lists. Absent for a profile.",
                            "type": "boolean",
                        },
                        "shared": {
                            "description": f"With `explain`: up to {SHARED_MAX} features both "
                            "users have, adding most to the score first. Only evidence both "
                            "have is ever listed.",
                            "type": "array",
                            "maxItems": SHARED_MAX,
                            "items": _ref("SharedFeature"),
                        },
                        "shared_rest": {
                            "description": "With `explain`: how many other shared features "
                            "there are and what they add; the contributions in `shared` plus "
                            "this one add up to the score.",
                            "type": "object",
                            "required": ["features", "contribution"],
                            "additionalProperties": False,
                            "properties": {
                                "features": {"type": "integer", "minimum": 0},
                                "contribution": {"type": "number"},
                            },
                        },
                    },
                },
                "SharedFeature": {
                    "type": "object",
                    "required": ["kind", "name", "contribution", "share"],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {
                            "description": "What the feature is: an interest tag, a course, an "
                            "assessment tag, a course's tag (`course_tags`), or a latent factor "
                            "of the courses viewed (`course_factors`; named `factor N`, its "
                            "contribution may be negative).",
                            "type": "string",
                            "enum": ["interest", "course", "assessment", "course_tag", "factor"],
                        },
                        "name": {"type": "string"},
                        "contribution": {
                            "description": "What the feature adds to the cosine: the product "
                            "of the two users' weights for it.",
                            "type": "number",
                        },
                        "share": {
                            "description": "contribution / score.",
                            "type": "number",
                        },
                    },
                },
                "Catalogue": {
                    "type": "object",
                    "required": ["request_data", "data"],
                    "additionalProperties": False,
                    "properties": {
                        "request_data": {
                            "type": "object",
                            "required": ["kind", "q", "limit", "model_handle"],
                            "additionalProperties": False,
                            "properties": {
                                "kind": {"type": "string", "enum": list(PROFILE_KINDS)},
                                "q": {"type": "string"},
                                "limit": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": CATALOGUE_LIMIT_MAX,
                                },
                                "model_handle": {"type": "string", "pattern": MODEL_HANDLE_PATTERN},
                            },
                        },
                        "data": {
                            "type": "object",
                            "required": ["model_handle", "run_id", "generated_at", "names"],
                            "additionalProperties": False,
                            "properties": {
                                **RUN_FIELDS,
                                "names": {
                                    "description": "The model's own names, as plain text.",
                                    "type": "array",
                                    "maxItems": CATALOGUE_LIMIT_MAX,
                                    "items": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Models": {
                    "type": "object",
                    "required": ["default_model", "default_reason", "models"],
                    "additionalProperties": False,
                    "properties": {
                        "default_model": {
                            "description": "The model that answers when a request names none "
                            "(null while no model has a run).",
                            "type": ["string", "null"],
                        },
                        "default_reason": {
                            "description": "Why: set by DEFAULT_MODEL, or the best measured.",
                            "type": "string",
                        },
                        "models": {"type": "array", "items": _ref("ModelRun")},
                    },
                },
                "ModelRun": {
                    "type": "object",
                    "required": ["model_handle", "run_id", "generated_at", "user_count", "top_n"],
                    "additionalProperties": False,
                    "properties": {
                        **RUN_FIELDS,
                        "user_count": {
                            "description": "Users with a neighbour list in the run.",
                            "type": "integer",
                            "minimum": 0,
                        },
                        "top_n": {
                            "description": "Similar users stored per user in the run.",
                            "type": "integer",
                            "minimum": 0,
                        },
                        "search": _ref("Search"),
                        "quality": _ref("Quality"),
                        "export": _ref("Export"),
                    },
                },
                "Search": {
                    "description": "How the run's neighbours were found: exactly, or "
                    "approximately with the recall@k reached against exact on a sample of "
                    "users, overall and per decile of activity (features per user).",
                    "type": "object",
                    "required": ["method"],
                    "properties": {
                        "method": {"type": "string", "enum": ["exact", "approximate"]},
                        "recall_sample": {"type": "number", "minimum": 0, "maximum": 1},
                        "recall_at": {"type": "integer", "minimum": 1},
                        "recall_sample_users": {"type": "integer", "minimum": 0},
                        "recall_by_activity": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "features": {"type": "array", "items": {"type": "integer"}},
                                    "users": {"type": "integer", "minimum": 0},
                                    "recall": {"type": "number", "minimum": 0, "maximum": 1},
                                },
                            },
                        },
                    },
                },
                "Quality": {
                    "description": "How well the run's model found the courses each user viewed "
                    "last, hidden from it, on its own export (absent: not measured).",
                    "type": "object",
                    "required": ["k", "recall", "ndcg", "users_evaluated"],
                    "properties": {
                        "k": {"type": "integer", "minimum": 1},
                        "recall": {"type": "number", "minimum": 0, "maximum": 1},
                        "ndcg": {"type": "number", "minimum": 0, "maximum": 1},
                        "coverage": {"type": "number", "minimum": 0, "maximum": 1},
                        "served": {"type": "number", "minimum": 0, "maximum": 1},
                        "users_evaluated": {"type": "integer", "minimum": 0},
                        "users_eligible": {"type": "integer", "minimum": 0},
                        "most_popular_recall": {"type": "number", "minimum": 0, "maximum": 1},
                        "random_neighbours_recall": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                },
                "Export": {
                    "description": "The export the run was made from: an id over its files, and "
                    "each file's size and SHA-256.",
                    "type": "object",
                    "required": ["id", "files"],
                    "properties": {
                        "id": {"type": "string"},
                        "files": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {
                                    "bytes": {"type": "integer", "minimum": 0},
                                    "sha256": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "additionalProperties": False,
                    "properties": {"status": {"const": "alive"}},
                },
                "Ready": {
                    "type": "object",
                    "required": ["status", "models"],
                    "additionalProperties": False,
                    "properties": {
                        "status": {"const": "ready"},
                        "models": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string"},
                        },
                    },
                },
                "Problem": {
                    "description": "RFC 9457 problem details, the shape of every error.",
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {
                            "type": "string",
                            "enum": [problem_type(slug) for slug in PROBLEM_SLUGS],
                        },
                        "title": {"type": "string"},
                        "status": {"type": "integer", "minimum": 400, "maximum": 599},
                        "detail": {"type": "string"},
                        "invalid_params": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "reason"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                        "available_models": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "InvalidParamsProblem": {
                    "allOf": [_ref("Problem"), {"required": ["invalid_params"]}],
                },
            },
        },
    }
