"""A model's space: a run's users as unit rows, and what places a newcomer's profile among them.

Each model's matrix is made of blocks, one per signal (a hybrid has several, side by side). A
`Block` keeps what its signal learned from the export: the names a profile may use (interest tags,
course ids, assessment tags), the weighting's statistics (IDF, BM25's average length), each
assessment tag's mean and spread, each course's tags, the item factors. `ModelSpace.encode` turns a
profile into a row the way the generator turned every user's evidence into theirs, so a profile
holding a user's own evidence lands on that user's row; cosine with anyone is then a dot product.

A space is written as plain numpy arrays and one JSON file (never pickles) and loaded with the
arrays memory-mapped, so processes reading the same files share their pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from similarity import factors
from similarity.clusters import Clusters, Hashing
from similarity.survey import Scales, Traits, standardised
from similarity.weighting import Statistics, unit_rows, weigh

FORMAT = 1
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
# What a profile holds, by kind, and what one column of a block is (its label).
KINDS = ("interests", "courses", "assessments")
# What a survey block reads: answers by question id (a mapping, not a list of names).
ANSWERS = "answers"
SPACE_FILE = "space.json"


def _packed(names: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return names as their UTF-8 bytes end to end and where each ends (no fixed width, so one
    long name does not make every name as long)."""
    encoded = [str(name).encode() for name in names]
    ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def _unpacked(text: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Return the names `_packed` packed (an object array of str)."""
    raw = bytes(np.asarray(text, dtype=np.uint8))
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    names = [raw[a:b].decode() for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    unpacked = np.empty(len(names), dtype=object)
    unpacked[:] = names
    return unpacked


@dataclass(frozen=True)
class Profile:
    """A newcomer's evidence in the export's own names (already matched to a vocabulary).

    interests: tags followed (a tag twice counts twice); courses: course id → seconds viewed, or
    None for the course's typical time; assessments: tag → score (on the export's scale);
    answers: question id → answer (on the question's scale).
    """

    interests: Sequence[str] = ()
    courses: Mapping[str, float | None] = field(default_factory=dict)
    assessments: Mapping[str, float] = field(default_factory=dict)
    answers: Mapping[str, float] = field(default_factory=dict)  # question id → answer


@dataclass(frozen=True)
class Block:
    """One signal's part of a model's space, and how a profile becomes its part of a row.

    handle: the signal model; kind: the part of a profile it reads; label: what each of its
    columns is (interest, course, assessment, course_tag or factor); settings: its weighting and
    factorization; weight: its weight in a hybrid (1 alone); offset: its first column.
    inputs: the names a profile may use, in order. arrays: what it learned, by name: ``df``
    (users with evidence per weighed column), ``mean``/``spread`` (per assessment tag),
    ``typical`` (seconds per course), ``shares`` (courses × tags, as CSR parts), ``items``
    (item factors). features: its columns' names (inputs, tags, or factor numbers).
    """

    handle: str
    kind: str
    label: str
    settings: dict[str, Any]
    inputs: np.ndarray
    features: np.ndarray
    users: int
    average_length: float = 1.0
    weight: float = 1.0
    offset: int = 0
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)  # what a run records of its fit

    @cached_property
    def position(self) -> dict[str, int]:
        """Return each input name's position."""
        return {str(name): i for i, name in enumerate(self.inputs.tolist())}

    @cached_property
    def gram(self) -> np.ndarray | None:
        """Return YᵀY of the block's item factors (None without), kept for every fold-in."""
        if "items" not in self.arrays:
            return None
        items = np.asarray(self.arrays["items"], dtype=np.float64)
        gram: np.ndarray = items.T @ items
        return gram

    @property
    def width(self) -> int:
        """Return the block's number of columns."""
        return len(self.features)

    def evidence(self, profile: Profile) -> sp.csr_matrix:
        """Return the profile's raw evidence over the block's inputs (1 × inputs)."""
        amounts: dict[int, float] = {}
        if self.kind == "interests":
            for name in profile.interests:
                if name in self.position:
                    amounts[self.position[name]] = amounts.get(self.position[name], 0.0) + 1.0
        elif self.kind == "courses":
            typical = self.arrays["typical"]
            for name, seconds in profile.courses.items():
                if name in self.position:
                    at = self.position[name]
                    amounts[at] = float(typical[at]) if seconds is None else float(seconds)
        else:
            mean, spread = self.arrays["mean"], self.arrays["spread"]
            for name, score in profile.assessments.items():
                if name in self.position:
                    at = self.position[name]
                    if spread[at] > 0:
                        amounts[at] = (float(score) - float(mean[at])) / float(spread[at])
        columns = np.fromiter(amounts, dtype=np.int64, count=len(amounts))
        values = np.fromiter(amounts.values(), dtype=np.float64, count=len(amounts))
        return sp.csr_matrix(
            (values, (np.zeros(len(columns), dtype=np.int64), columns)),
            shape=(1, len(self.inputs)),
        )

    def has_evidence(self, name: str, value: float | None = None) -> bool:
        """Tell whether an input name (with its seconds or score, if any) adds anything to a
        profile's row: a course nobody watched any time of, a course without tags (course_tags),
        an assessment tag whose scores do not vary or a score at or below the tag's average
        (where only positive evidence counts) add nothing."""
        at = self.position.get(name)
        if at is None:
            return False
        if self.kind == ANSWERS:
            return bool(self.arrays["spread"][at] > 0)
        if self.kind == "courses":
            seconds = float(self.arrays["typical"][at]) if value is None else float(value)
            if seconds <= 0:
                return False
            if "shares.indptr" in self.arrays:
                indptr = self.arrays["shares.indptr"]
                return bool(indptr[at + 1] > indptr[at])
            return True
        if self.kind == "assessments":
            spread = float(self.arrays["spread"][at])
            if spread <= 0:
                return False
            z = (float(value or 0.0) - float(self.arrays["mean"][at])) / spread
            return z > 0 if self.settings.get("positive") else z != 0
        return True

    def encode(self, profiles: Sequence[Profile]) -> sp.csr_matrix:
        """Return the block's rows for profiles (profiles × width, weighted, not unit length).

        Every step works row by row, so a batch gives each profile the row it would get alone.
        """
        if self.kind == ANSWERS:
            return sp.csr_matrix(self.traits(profiles))
        raw = sp.csr_matrix(sp.vstack([self.evidence(profile) for profile in profiles]))
        if "shares.data" in self.arrays:
            raw = sp.csr_matrix(raw @ self.shares)
        weighting = {k: v for k, v in self.settings.items() if k not in factors.SETTINGS}
        learned = Statistics(self.users, self.arrays["df"], self.average_length)
        weighted = weigh(raw, **weighting, learned=learned)
        if "items" in self.arrays:
            fitting = {k: v for k, v in self.settings.items() if k in factors.SETTINGS}
            folded = factors.fold_in(weighted, self.arrays["items"], gram=self.gram, **fitting)
            return sp.csr_matrix(folded)
        return weighted

    def traits(self, profiles: Sequence[Profile]) -> np.ndarray:
        """Return a survey block's trait scores for profiles' answers (profiles × traits; zeros
        for a profile that answered fewer than the block's `min_answered` share)."""
        questions = len(self.inputs)
        z = np.zeros((len(profiles), questions))
        answered = np.zeros((len(profiles), questions), dtype=bool)
        for row, profile in enumerate(profiles):
            for name, value in profile.answers.items():
                at = self.position.get(name)
                if at is not None:
                    z[row, at], answered[row, at] = float(value), True
        scales = Scales(self.arrays["low"], self.arrays["high"], self.arrays["reverse"])
        shares = scales.shares(z, np.arange(questions))
        z = standardised(shares, answered, self.arrays["mean"], self.arrays["spread"])
        fitted = Traits(
            self.arrays["components"], self.arrays["noise_variance"], self.arrays["fit_mean"]
        )
        scores = fitted.scores(z)
        enough = answered.sum(axis=1) >= self.settings.get("min_answered", 0.0) * questions
        scores[~enough] = 0.0
        return scores

    @property
    def shares(self) -> sp.csr_matrix:
        """Return each course's tags (courses × tags) of a course_tags block."""
        return sp.csr_matrix(
            (
                self.arrays["shares.data"],
                self.arrays["shares.indices"],
                self.arrays["shares.indptr"],
            ),
            shape=(len(self.inputs), self.width),
        )


def _encode_blocks(blocks: Sequence[Block], profiles: Sequence[Profile]) -> sp.csr_matrix:
    """Return profiles' unit rows in a space of blocks, combined as `weighting.combine` does."""
    parts = [
        unit_rows(block.encode(profiles)) * np.float32(np.sqrt(block.weight)) for block in blocks
    ]
    return unit_rows(sp.hstack(parts, format="csr"))


@dataclass(frozen=True)
class Match:
    """One user found for a query: their handle and cosine (rounded as stored lists are)."""

    user_handle: int
    score: float


@dataclass(frozen=True)
class Evidence:
    """One feature two rows share and what it adds to their cosine."""

    label: str
    name: str
    contribution: float


@dataclass(frozen=True)
class ModelSpace:
    """A run's users as unit rows (`handles[i]` is row i), the blocks that built them, and, for a
    run searched approximately, the clusters its users were filed under."""

    model_handle: str
    settings: dict[str, Any]
    handles: np.ndarray  # int64, sorted
    matrix: sp.csr_matrix  # users × features, float32, unit rows
    blocks: tuple[Block, ...]
    clusters: Clusters | None = None
    columns: sp.csc_matrix | None = None  # the matrix by column (built when absent)

    @property
    def users(self) -> int:
        """Return the number of rows (users of the run, with or without evidence)."""
        return len(self.handles)

    def vocabulary(self, kind: str) -> list[str]:
        """Return every name a profile may use for a kind in this model, sorted."""
        names: set[str] = set()
        for block in self.blocks:
            if block.kind == kind:
                names.update(block.position)
        return sorted(names)

    @cached_property
    def _by_column(self) -> sp.csc_matrix:
        return self.columns if self.columns is not None else sp.csc_matrix(self.matrix)

    def encode(self, profile: Profile) -> sp.csr_matrix:
        """Return a profile's unit row in this space (all zeros if nothing of it is usable)."""
        return _encode_blocks(self.blocks, [profile])

    def encode_many(self, profiles: Sequence[Profile]) -> sp.csr_matrix:
        """Return profiles' unit rows (profiles × features), each what `encode` makes of it."""
        if not profiles:
            return sp.csr_matrix((0, self.matrix.shape[1]), dtype=np.float32)
        return _encode_blocks(self.blocks, profiles)

    def has_evidence(self, kind: str, name: str, value: float | None = None) -> bool:
        """Tell whether a name of a kind (with its seconds or score) adds to a profile's row in
        any block of the space (`Block.has_evidence`)."""
        return any(b.has_evidence(name, value) for b in self.blocks if b.kind == kind)

    def traits(self, profile: Profile) -> dict[str, float]:
        """Return a profile's trait scores in the space's survey blocks, by trait name."""
        found: dict[str, float] = {}
        for block in self.blocks:
            if block.kind == ANSWERS:
                scores = block.traits([profile])[0]
                found |= {str(n): float(v) for n, v in zip(block.features, scores, strict=True)}
        return found

    def summary(self) -> dict[str, Any]:
        """Return what the run records of its blocks' fits (e.g. a survey's traits), by block."""
        return {block.handle: dict(block.summary) for block in self.blocks if block.summary}

    def row_of(self, user_handle: int) -> int | None:
        """Return a user's row, or None if the run does not know them."""
        at = int(np.searchsorted(self.handles, user_handle))
        return at if at < len(self.handles) and int(self.handles[at]) == user_handle else None

    def row(self, at: int) -> sp.csr_matrix:
        """Return one user's unit row (1 × features)."""
        start, end = int(self.matrix.indptr[at]), int(self.matrix.indptr[at + 1])
        return sp.csr_matrix(
            (self.matrix.data[start:end], self.matrix.indices[start:end], [0, end - start]),
            shape=(1, self.matrix.shape[1]),
        )

    def scores(self, vector: sp.csr_matrix, exact_max_users: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the rows searched and their cosines with a unit row vector.

        Every row (through the matrix by column: work is the users sharing a feature with the
        vector, or by row when that is most of them) when the run has at most
        ``exact_max_users`` users or no clusters; else the rows filed under the clusters nearest
        to the vector.
        """
        if self.clusters is not None and self.users > exact_max_users:
            rows = self.clusters.candidates(vector)
            product = self.matrix[rows] @ vector.T
            return rows, np.asarray(product.toarray()).ravel()
        by_column = self._by_column
        cols, weights = vector.indices, vector.data
        starts, ends = by_column.indptr[cols], by_column.indptr[cols + 1]
        if (ends - starts).sum() > self.matrix.nnz // 4:
            # Most of the matrix is touched anyway (dense rows: factors): one pass over the rows
            # reads it in order, where gathering its columns would scatter.
            return np.arange(self.users), np.asarray(self.matrix @ vector.T.toarray()).ravel()
        spans = [np.arange(a, b) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        taken = np.concatenate(spans) if spans else np.empty(0, dtype=np.int64)
        values = by_column.data[taken] * np.repeat(weights, ends - starts)
        scores = np.bincount(by_column.indices[taken], values, minlength=self.users)
        return np.arange(self.users), scores

    def search(
        self,
        vector: sp.csr_matrix,
        n: int,
        exact_max_users: int,
        exclude: int | None = None,
        decimals: int = 6,
    ) -> list[Match]:
        """Return the n users most similar to a unit row vector, best first, ties by handle.

        Only positive cosines count; ``exclude`` is a row never returned (the asker's own).
        """
        rows, scores = self.scores(vector, exact_max_users)
        rounded = np.round(scores.astype(np.float64), decimals)
        keep = rounded > 0
        if exclude is not None:
            keep &= rows != exclude
        rows, rounded = rows[keep], rounded[keep]
        if len(rows) > n:
            cut = np.partition(rounded, len(rounded) - n)[len(rounded) - n]
            rows, rounded = rows[rounded >= cut], rounded[rounded >= cut]
        handles = self.handles[rows]
        order = np.lexsort((handles, -rounded))[:n]
        return [
            Match(int(h), float(s))
            for h, s in zip(handles[order].tolist(), rounded[order].tolist(), strict=True)
        ]

    def label_of(self, column: int) -> tuple[str, str]:
        """Return what a column is (its block's label) and its name."""
        offsets = [block.offset for block in self.blocks]
        block = self.blocks[int(np.searchsorted(offsets, column, side="right")) - 1]
        return block.label, str(block.features[column - block.offset])

    def shared(self, first: sp.csr_matrix, second: sp.csr_matrix) -> list[Evidence]:
        """Return every feature two unit rows both have, with its product, largest first.

        The products add up to the rows' cosine; a feature only one of them has adds nothing
        and is never listed.
        """
        common, at_first, at_second = np.intersect1d(
            first.indices, second.indices, assume_unique=True, return_indices=True
        )
        products = first.data[at_first].astype(np.float64) * second.data[at_second]
        order = np.lexsort((common, -products))
        return [
            Evidence(*self.label_of(int(common[i])), float(products[i])) for i in order.tolist()
        ]

    def write(self, folder: Path) -> None:
        """Write the space into a folder as numpy arrays and space.json (no pickles)."""
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "handles": np.asarray(self.handles, dtype=np.int64),
            "matrix.data": self.matrix.data,
            "matrix.indices": self.matrix.indices,
            "matrix.indptr": self.matrix.indptr,
        }
        by_column = self._by_column
        arrays |= {
            "columns.data": by_column.data,
            "columns.indices": by_column.indices,
            "columns.indptr": by_column.indptr,
        }
        blocks = []
        for number, block in enumerate(self.blocks):
            prefix = f"block{number}"
            for kind in ("inputs", "features"):
                text, offsets = _packed(getattr(block, kind))
                arrays[f"{prefix}.{kind}.utf8"] = text
                arrays[f"{prefix}.{kind}.offsets"] = offsets
            for name, values in block.arrays.items():
                arrays[f"{prefix}.{name}"] = np.asarray(values)
            blocks.append(
                {
                    "handle": block.handle,
                    "kind": block.kind,
                    "label": block.label,
                    "settings": block.settings,
                    "users": block.users,
                    "average_length": block.average_length,
                    "weight": block.weight,
                    "offset": block.offset,
                    "arrays": sorted(block.arrays),
                    "summary": dict(block.summary),
                }
            )
        clusters = None
        if self.clusters is not None:
            arrays |= {
                "clusters.centroids": self.clusters.centroids,
                "clusters.order": self.clusters.order,
                "clusters.bounds": self.clusters.bounds,
            }
            clusters = {"probes": self.clusters.probes, "hashed": None}
            if self.clusters.hashing is not None:
                arrays["clusters.signs"] = self.clusters.hashing.signs
                arrays["clusters.buckets"] = self.clusters.hashing.buckets
                clusters["hashed"] = self.clusters.hashing.dimensions
        for name, values in arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(values), allow_pickle=False)
        description = {
            "format": FORMAT,
            "model_handle": self.model_handle,
            "settings": self.settings,
            "shape": list(self.matrix.shape),
            "blocks": blocks,
            "clusters": clusters,
        }
        (folder / SPACE_FILE).write_text(json.dumps(description, sort_keys=True, indent=1))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> ModelSpace:
        """Read a space written by `write`, its arrays memory-mapped (read-only) when ``mmap``.

        Raises ValueError when the folder does not hold a space of this format.
        """
        description = json.loads((folder / SPACE_FILE).read_text())
        if description.get("format") != FORMAT:
            raise ValueError(f"{folder} holds a space of format {description.get('format')!r}")

        def array(name: str) -> np.ndarray:
            if not _ARRAY_NAME.fullmatch(name):  # names come from space.json: stay in the folder
                raise ValueError(f"{folder} names an array {name!r}")
            found: np.ndarray = np.load(
                folder / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False
            )
            return found

        users, features = description["shape"]
        matrix = sp.csr_matrix(
            (array("matrix.data"), array("matrix.indices"), array("matrix.indptr")),
            shape=(users, features),
        )
        columns = sp.csc_matrix(
            (array("columns.data"), array("columns.indices"), array("columns.indptr")),
            shape=(users, features),
        )
        blocks = tuple(
            Block(
                handle=b["handle"],
                kind=b["kind"],
                label=b["label"],
                settings=b["settings"],
                inputs=_unpacked(
                    array(f"block{number}.inputs.utf8"), array(f"block{number}.inputs.offsets")
                ),
                features=_unpacked(
                    array(f"block{number}.features.utf8"),
                    array(f"block{number}.features.offsets"),
                ),
                users=b["users"],
                average_length=b["average_length"],
                weight=b["weight"],
                offset=b["offset"],
                arrays={name: array(f"block{number}.{name}") for name in b["arrays"]},
                summary=b.get("summary", {}),
            )
            for number, b in enumerate(description["blocks"])
        )
        clusters = None
        if description["clusters"] is not None:
            hashed = description["clusters"]["hashed"]
            clusters = Clusters(
                centroids=array("clusters.centroids"),
                order=array("clusters.order"),
                bounds=array("clusters.bounds"),
                probes=description["clusters"]["probes"],
                hashing=None
                if hashed is None
                else Hashing(array("clusters.signs"), array("clusters.buckets"), hashed),
            )
        return cls(
            model_handle=description["model_handle"],
            settings=description["settings"],
            handles=array("handles"),
            matrix=matrix,
            blocks=blocks,
            clusters=clusters,
            columns=columns,
        )
