"""Names a person types, matched to the names a model knows: exactly, normalised, then fuzzily.

A profile or a catalogue query names interests, courses and assessment tags as people write them
("Python Beyond Basics", "pythn"); a model knows them as the export spelt them
("python-beyond-basics", "python"). Each name is matched in three steps, and the answer says which:

- ``exact``: the name as given is in the model's vocabulary;
- ``normalised``: equal once both are normalised (`normalise`: Unicode NFKC, case folded, outer
  spaces dropped, each run of spaces, hyphens and underscores made one hyphen);
- ``fuzzy``: the normalised name is within `FUZZY_CUTOFF` of a normalised vocabulary name by
  rapidfuzz's OSA similarity (1 − edits / length of the longer, where an edit inserts, deletes or
  replaces a character or swaps two neighbours): at most one typo per five characters.

Ties (two names equal once normalised, or as close fuzzily) go to the name more users have, then
to the first in alphabetical order, so a name is always matched the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from similarity.space import ANSWERS, KINDS, ModelSpace

FUZZY_SCORER = "OSA normalized similarity (rapidfuzz.distance.OSA)"
FUZZY_CUTOFF = 0.8  # at most one edit per five characters of the longer name
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise(text: str) -> str:
    """Return the form names are compared in: NFKC, case folded, separators made one hyphen."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SEPARATORS.sub("-", folded).strip("-")


@dataclass(frozen=True)
class NameMatch:
    """What an input name became: a vocabulary name, how it was found, and (fuzzy) how close."""

    name: str
    how: str  # exact, normalised or fuzzy
    score: float | None = None  # fuzzy only: the similarity, FUZZY_CUTOFF ≤ score < 1


@dataclass(frozen=True)
class Vocabulary:
    """The names of one kind a model knows (sorted), how many users have each, and their
    normalised forms, so that matching an input costs one dictionary look-up unless it is
    fuzzy."""

    names: tuple[str, ...]
    popularity: tuple[int, ...]  # users with evidence per name (0 where the model cannot say)
    keys: tuple[str, ...] = field(init=False)
    _exact: dict[str, int] = field(init=False, repr=False)
    _by_key: dict[str, int] = field(init=False, repr=False)
    _longest: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        keys = tuple(normalise(name) for name in self.names)
        by_key: dict[str, int] = {}
        for at in self._by_rank(range(len(keys))):  # the best-ranked name keeps a shared key
            by_key.setdefault(keys[at], at)
        by_key.pop("", None)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "_exact", {name: at for at, name in enumerate(self.names)})
        object.__setattr__(self, "_by_key", by_key)
        object.__setattr__(self, "_longest", max(map(len, keys), default=0))

    def may_be_close(self, key: str) -> bool:
        """Tell whether a key is short enough to be within FUZZY_CUTOFF of some name: the
        similarity is at most the shorter length over the longer, so a key much longer than
        every name (as NFKC can make a short text: one character may become 18) is not fuzzily
        compared with all of them for nothing."""
        return len(key) * FUZZY_CUTOFF <= self._longest

    @classmethod
    def of(cls, names: Sequence[str], popularity: Sequence[int] | None = None) -> Vocabulary:
        """Return the vocabulary of names (any order), with the users who have each if known."""
        counts = dict(zip(names, popularity or [0] * len(names), strict=True))
        ordered = sorted(counts)
        return cls(tuple(ordered), tuple(int(counts[name]) for name in ordered))

    def __len__(self) -> int:
        return len(self.names)

    def _by_rank(self, positions: Sequence[int] | range) -> list[int]:
        """Return positions ordered by popularity (most first), then by name."""
        return sorted(positions, key=lambda at: (-self.popularity[at], at))

    def match(self, text: str, fuzzy: bool = True) -> NameMatch | None:
        """Return what a name matches in the vocabulary, or None if nothing is close enough
        (``fuzzy`` False: exactly or normalised only, as for question ids, where one character
        apart is another question)."""
        at = self._exact.get(text)
        if at is not None:
            return NameMatch(self.names[at], "exact")
        key = normalise(text)
        if not key:
            return None
        at = self._by_key.get(key)
        if at is not None:
            return NameMatch(self.names[at], "normalised")
        if not fuzzy or not self.may_be_close(key):
            return None
        found = process.extract(
            key, self.keys, scorer=OSA.normalized_similarity, score_cutoff=FUZZY_CUTOFF, limit=None
        )
        if not found:
            return None
        best = max(score for _, score, _ in found)
        at = self._by_rank([at for _, score, at in found if score == best])[0]
        return NameMatch(self.names[at], "fuzzy", round(float(best), 3))

    def suggest(self, text: str, limit: int) -> list[str]:
        """Return up to `limit` names for autocomplete: those whose normalised form starts with
        the normalised text, then those holding it, then fuzzy matches (closest first); within
        the first two, the names more users have come first. Empty text: the most popular."""
        key = normalise(text)
        if not key:
            return [self.names[at] for at in self._by_rank(range(len(self.names)))[:limit]]
        starting = [at for at, name in enumerate(self.keys) if name.startswith(key)]
        chosen = self._by_rank(starting)[:limit]
        if len(chosen) < limit:
            holding = [
                at for at, name in enumerate(self.keys) if key in name and not name.startswith(key)
            ]
            chosen += self._by_rank(holding)[: limit - len(chosen)]
        if len(chosen) < limit and self.may_be_close(key):
            taken = set(chosen)
            found = process.extract(
                key,
                self.keys,
                scorer=OSA.normalized_similarity,
                score_cutoff=FUZZY_CUTOFF,
                limit=None,
            )
            close = sorted(
                ((score, at) for _, score, at in found if at not in taken),
                key=lambda pair: (-pair[0], -self.popularity[pair[1]], pair[1]),
            )
            chosen += [at for _, at in close[: limit - len(chosen)]]
        return [self.names[at] for at in chosen]


def vocabularies(space: ModelSpace) -> dict[str, Vocabulary]:
    """Return the model's vocabulary of each kind of profile name (empty if it reads none)."""
    found: dict[str, Vocabulary] = {}
    for kind in (*KINDS, ANSWERS):
        counts: dict[str, int] = {}
        for block in space.blocks:
            if block.kind != kind:
                continue
            df = block.arrays.get("df")
            # Users per name where the block weighs its inputs themselves (not course_tags, whose
            # columns are tags).
            per_input = (
                df is not None
                and "shares.data" not in block.arrays
                and len(df) == len(block.inputs)
            )
            users = np.asarray(df).tolist() if per_input else [0] * len(block.inputs)
            for name, count in zip(block.inputs.tolist(), users, strict=True):
                counts[str(name)] = max(counts.get(str(name), 0), int(count))
        found[kind] = Vocabulary.of(list(counts), list(counts.values()))
    return found
