"""A newcomer's profile placed in a model's space: names matched, evidence encoded, users found.

Every name a profile gives is either matched (and the answer says to what, and how) or listed as
unmatched with the reason: no name of that kind of the model is close enough, or the model does
not read that kind at all (e.g. courses, for the `interests` model). A profile of which nothing
is usable is refused (422), naming each of its names and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from server.errors import InvalidParams
from server.query import PROFILE_KINDS, ProfileQuery, shown
from server.spaces import Loaded
from similarity.space import ANSWERS, Profile

SINGULAR = {
    "interests": "interest",
    "courses": "course",
    "assessments": "assessment tag",
    ANSWERS: "survey question",
}


@dataclass(frozen=True)
class Matched:
    """A profile matched to a model: what the space reads, and what each name became."""

    profile: Profile
    matched: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]
    invalid: list[dict[str, str]]  # each unmatched name as a 422 would name it


def _field(kind: str, at: int, name: str) -> str:
    if kind == ANSWERS:
        return f"profile.{ANSWERS}.{name[:64]}"
    return f"profile.{kind}[{at}]" + (".tag" if kind == "assessments" else "")


def match_profile(query: ProfileQuery, loaded: Loaded) -> Matched:
    """Match every name of a profile to the model's names of its kind."""
    model = loaded.space.model_handle
    matched: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    invalid: list[dict[str, str]] = []
    names: dict[str, list[str]] = {kind: [] for kind in PROFILE_KINDS}
    for kind in PROFILE_KINDS:
        vocabulary = loaded.vocabularies[kind]
        for at, text in enumerate(query.names(kind)):
            found = vocabulary.match(text, fuzzy=kind != ANSWERS) if len(vocabulary) else None
            if found is None:
                if len(vocabulary):
                    reason = f"matches no {SINGULAR[kind]} of model {model!r}"
                else:
                    reason = f"is not used: model {model!r} does not read {kind}"
                unmatched.append({"kind": kind, "input": text, "reason": reason})
                invalid.append(
                    {"name": _field(kind, at, text), "reason": f"{shown(text)} {reason}"}
                )
                names[kind].append("")
                continue
            entry: dict[str, Any] = {
                "kind": kind,
                "input": text,
                "name": found.name,
                "how": found.how,
            }
            if found.score is not None:
                entry["score"] = found.score
            value = (
                query.assessments[at][1]
                if kind == "assessments"
                else query.answers[at][1]
                if kind == ANSWERS
                else None
            )
            if not loaded.space.has_evidence(kind, found.name, value):
                # Matched, but it adds nothing: a score at or below the tag's average, a course
                # without tags under course_tags. Said, so that it is never silently dropped.
                entry["evidence"] = False
            matched.append(entry)
            names[kind].append(found.name)
    # Each name counts once, whichever inputs it was matched from; an assessment tag given twice
    # counts with the last score given.
    scores = [score for _, score in query.assessments]
    given = [answer for _, answer in query.answers]
    profile = Profile(
        interests=list(dict.fromkeys(name for name in names["interests"] if name)),
        courses={name: None for name in names["courses"] if name},
        assessments={
            name: float(score)
            for name, score in zip(names["assessments"], scores, strict=True)
            if name
        },
        answers={
            name: float(answer) for name, answer in zip(names[ANSWERS], given, strict=True) if name
        },
    )
    return Matched(profile, matched, unmatched, invalid)


def too_few_answers(matched: Matched, loaded: Loaded) -> dict[str, str] | None:
    """Return why a profile's answers place nobody in the model's survey (fewer answered than
    the survey's `min_answered` share of its questions), or None."""
    for block in loaded.space.blocks:
        if block.kind != ANSWERS:
            continue
        questions = len(block.inputs)
        needed = math.ceil(float(block.settings.get("min_answered", 0.0)) * questions)
        given = sum(1 for name in matched.profile.answers if name in block.position)
        if matched.profile.answers and given < needed:
            return {
                "name": f"profile.{ANSWERS}",
                "reason": f"answers {given} of the {questions} questions of model "
                f"{loaded.space.model_handle!r}'s survey; at least {needed} are needed",
            }
    return None


def refuse_unusable(matched: Matched, loaded: Loaded) -> None:
    """Raise InvalidParams naming each unmatched name of a profile that gives the model no
    evidence at all (and, for a survey, how many more answers it needs)."""
    model_handle = loaded.space.model_handle
    short = too_few_answers(matched, loaded)
    invalid = [*matched.invalid, *([short] if short else [])] or [
        {
            "name": "profile",
            "reason": f"gives model {model_handle!r} no evidence to compare users by (e.g. "
            "assessment scores only count above the tag's average)",
        }
    ]
    raise InvalidParams(invalid)
