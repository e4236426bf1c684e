"""Every model's user rows on Spark, a block of users at a time, as the local engine builds them.

The users (every handle of the export, sorted: the local engine's `UserIndex`) are cut into
blocks of consecutive handles; an RDD of a model's rows holds one (block, CSR rows) pair per
block, block b in partition b, row i of a block for the block's i-th user. A weighed signal's
vocabulary and statistics (document frequencies, BM25's average length, assessment norms,
typical seconds) are found with Spark over all users, then each block is built, weighed and
normalised by `similarity`'s own functions, so a row is the local engine's row. A model with a
global fit (course_factors' ALS, survey's factor analysis) is fitted on the driver by its own
builder on the table Spark read; its rows are then cut into the same blocks. A hybrid joins its
signals' blocks (`combine`), which needs nothing but the block itself.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from generator.spark.read import LINE, SparkTables, local_frame
from generator.tables import LoadReport, Tables
from similarity import features
from similarity.features import UserIndex
from similarity.models import (
    SIGNALS,
    Model,
    assessment_arrays,
    course_tag_arrays,
    tag_seconds,
    weighed_block,
)
from similarity.neighbours import signed
from similarity.space import Block
from similarity.weighting import Counts, combine, counts, unit_rows, weigh

log = logging.getLogger(__name__)

# The most users of one block; more blocks are cut when the cores ask for more (README, Scaling).
# A task holds two blocks' rows, so no executor needs more than two blocks of any model.
MAX_BLOCK_USERS = 50_000
# Signals fitted on the driver by their own builder (a global fit), and the tables each reads.
DRIVER_FITTED = {
    "course_factors": ("user_course_views",),
    "survey": ("user_answers", "questions"),
}
_BLOCK = "_block"

RowsRDD = Any  # pyspark RDD of (block, csr_matrix)


@dataclass(frozen=True)
class Blocks:
    """The user index cut into blocks of consecutive handles: block b holds
    ``handles[starts[b]:starts[b + 1]]``."""

    handles: np.ndarray  # int64, every user, sorted
    starts: np.ndarray  # int64, one more than there are blocks

    @classmethod
    def cut(cls, handles: np.ndarray, count: int) -> Blocks:
        """Cut the index into `count` blocks of about equal users (at least one user each)."""
        if not len(handles):  # one empty block: every model then has no user, as locally
            return cls(np.empty(0, dtype=np.int64), np.zeros(2, dtype=np.int64))
        count = max(1, min(count, len(handles)))
        starts = np.unique(np.linspace(0, len(handles), count + 1).round().astype(np.int64))
        return cls(np.asarray(handles, dtype=np.int64), starts)

    @property
    def count(self) -> int:
        """Return how many blocks there are."""
        return len(self.starts) - 1

    def users(self, block: int) -> np.ndarray:
        """Return the handles of a block's users."""
        return self.handles[self.starts[block] : self.starts[block + 1]]

    def of(self, handles: np.ndarray) -> np.ndarray:
        """Return the block of each handle (each must be in the index)."""
        firsts = self.handles[self.starts[:-1]]
        found: np.ndarray = np.searchsorted(firsts, handles, side="right") - 1
        return found


def user_index(tables: SparkTables) -> UserIndex:
    """Return every user of the export, as the local engine's `UserIndex.of` finds them."""
    parts = [
        frame.select("user_handle").distinct().toPandas()["user_handle"].to_numpy(np.int64)
        for frame in (
            tables.user_interests,
            tables.user_course_views,
            tables.user_assessment_scores,
        )
        if frame is not None
    ]
    if tables.user_answers is not None:
        parts.append(tables.user_answers["user_handle"].to_numpy(dtype=np.int64))
    handles = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
    return UserIndex(handles)


@dataclass(frozen=True)
class ModelRows:
    """A model's rows on Spark and what places a profile in them (its space's blocks)."""

    rows: RowsRDD  # (block, csr unit rows), block b in partition b
    blocks: tuple[Block, ...]
    negative: bool  # the rows hold negative values (dense factors): searched as such


class RowBuilder:
    """Builds models' rows over one export's blocks, each signal once per settings."""

    def __init__(self, spark: Any, tables: SparkTables, blocks: Blocks) -> None:
        self.spark = spark
        self.sc = spark.sparkContext
        self.tables = tables
        self.blocks = blocks
        self.index = UserIndex(blocks.handles)
        self._handles = self.sc.broadcast(blocks.handles)
        self._starts = self.sc.broadcast(blocks.starts)
        self._signals: dict[tuple[str, str], ModelRows] = {}
        self._raw: dict[str, tuple[RowsRDD, pd.Index]] = {}
        self._cached: list[Any] = []  # other persisted RDDs and broadcasts, freed by `unpersist`
        self._norms_found: features.Norms | None = None

    # -- models ---------------------------------------------------------------------------

    def model(self, model: Model) -> ModelRows:
        """Return a model's rows: a signal's, or a hybrid's joined from its signals'."""
        if not model.blocks:
            return self.signal(model.handle, model.settings)
        weights: dict[str, float] = model.settings["weights"]
        parts = {
            handle: self.signal(handle, SIGNALS[handle].settings)
            for handle, weight in weights.items()
            if weight > 0 and SIGNALS[handle].available(self.tables)
        }
        order = list(parts)
        tagged = self.sc.union(
            [
                part.rows.mapValues(lambda rows, handle=handle: (handle, rows))
                for handle, part in parts.items()
            ]
        )

        def joined(items: Any) -> sp.csr_matrix:
            found = dict(items)
            # Normalised once more, as `Model.space` normalises what any builder gives: a row
            # normalised twice differs from one normalised once in its last bit.
            return unit_rows(combine({handle: found[handle] for handle in order}, weights))

        rows = self._by_block(tagged.groupByKey(self.blocks.count).mapValues(joined))
        blocks, offset = [], 0
        for handle, part in parts.items():
            (block,) = part.blocks
            blocks.append(dataclasses.replace(block, weight=float(weights[handle]), offset=offset))
            offset += block.width
        negative = any(part.negative for part in parts.values())
        self._cached.append(rows.persist())
        return ModelRows(rows, tuple(blocks), negative)

    def signal(self, handle: str, settings: dict[str, Any]) -> ModelRows:
        """Return a signal's rows under settings (built once per settings)."""
        key = (handle, repr(sorted(settings.items())))
        if key not in self._signals:
            if handle in DRIVER_FITTED:
                self._signals[key] = self._fitted_on_driver(handle, settings)
            else:
                self._signals[key] = self._weighed(handle, settings)
        return self._signals[key]

    def unpersist(self) -> None:
        """Let Spark drop every cached block and broadcast."""
        for part in self._signals.values():
            part.rows.unpersist()
        for raw, _ in self._raw.values():
            raw.unpersist()
        for cached in self._cached:
            if hasattr(cached, "unpersist") and not hasattr(cached, "destroy"):
                cached.unpersist()
            else:
                cached.destroy()
        for broadcast in (self._handles, self._starts):
            broadcast.destroy()
        self._signals, self._raw, self._cached = {}, {}, []

    # -- weighed signals, built per block -----------------------------------------------------

    def _weighed(self, handle: str, settings: dict[str, Any]) -> ModelRows:
        """Count a signal's statistics over the blocks, then weigh and normalise each block."""
        arrays: dict[str, np.ndarray]
        if handle == "interests":
            raw, names = self._raw_blocks("interests")
            inputs, evidence, arrays = names, raw, {}
        elif handle == "course_views":
            raw, names = self._raw_blocks("course_views")
            inputs, evidence, arrays = names, raw, {"typical": self._typical(raw, len(names))}
        elif handle == "assessments":
            raw, names = self._raw_blocks("assessments")
            inputs, evidence = names, raw
            arrays = assessment_arrays(names, self._norms())
        elif handle == "course_tags":
            raw, inputs = self._raw_blocks("course_views")
            shares = features.course_tag_shares(inputs, self.tables.course_tags)  # type: ignore[arg-type]
            spread = self.sc.broadcast(shares.values)
            self._cached.append(spread)
            evidence = raw.mapValues(lambda rows: tag_seconds(rows, spread.value))
            names = shares.features
            arrays = course_tag_arrays(self._typical(raw, len(inputs)), shares.values)
        else:
            raise ValueError(f"no Spark rows for signal {handle!r}")
        learned = (
            evidence.values().map(lambda rows: counts(rows, **settings)).reduce(Counts.__add__)
        )
        statistics = learned.total()
        rows = evidence.mapValues(
            lambda block: unit_rows(weigh(block, **settings, learned=statistics))
        ).persist()
        block = weighed_block(handle, settings, inputs, names, statistics, **arrays)
        log.info(
            "%s: %s features, statistics of %s users with evidence counted with Spark",
            handle,
            f"{len(names):,}",
            f"{learned.present:,}",
        )
        return ModelRows(rows, (block,), False)

    def _raw_blocks(self, kind: str) -> tuple[RowsRDD, pd.Index]:
        """Return each block's raw evidence of a kind (interests, course_views, assessments)
        in columns found over all users, and those columns' names."""
        if kind in self._raw:
            return self._raw[kind]
        table, column = {
            "interests": ("user_interests", "interest_tag"),
            "course_views": ("user_course_views", "course_id"),
            "assessments": ("user_assessment_scores", "assessment_tag"),
        }[kind]
        frame = getattr(self.tables, table)
        names = features.vocabulary(frame.select(column).distinct().toPandas()[column])
        norms = self._norms() if kind == "assessments" else None

        def build(block: pd.DataFrame, index: UserIndex) -> sp.csr_matrix:
            if kind == "interests":
                found = features.interest_counts(block, index, names)
            elif kind == "course_views":
                found = features.course_view_seconds(block, index, names)
            else:
                found = features.assessment_scores(block, index, names, norms)
            return found.values

        raw = self._per_block(frame, table, build, len(names)).persist()
        self._raw[kind] = (raw, names)
        return raw, names

    def _per_block(
        self,
        frame: Any,
        table: str,
        build: Callable[[pd.DataFrame, UserIndex], sp.csr_matrix],
        width: int,
    ) -> RowsRDD:
        """Group a table's rows by block and build each block's matrix with `build`; a block
        without rows gets empty rows."""
        from pyspark.sql import functions as F

        handles, starts = self._handles, self._starts

        @F.pandas_udf("int")  # type: ignore[attr-defined,untyped-decorator]
        def block_of(users: pd.Series) -> pd.Series:
            firsts = handles.value[starts.value[:-1]]
            return pd.Series(np.searchsorted(firsts, users.to_numpy(), side="right") - 1)

        def per_block(rows: pd.DataFrame) -> pd.DataFrame:
            block = int(rows[_BLOCK].to_numpy()[0])
            users = handles.value[starts.value[block] : starts.value[block + 1]]
            local = local_frame(rows.sort_values(LINE, kind="stable"), table)
            matrix = build(local.reset_index(drop=True), UserIndex(users))
            return pd.DataFrame({_BLOCK: [block], "payload": [_matrix_bytes(matrix)]})

        built = (
            frame.withColumn(_BLOCK, block_of("user_handle"))
            .groupBy(_BLOCK)
            .applyInPandas(per_block, f"{_BLOCK} int, payload binary")
            .rdd.map(lambda row: (int(row[_BLOCK]), _matrix_of(row["payload"])))
        )
        sizes = np.diff(self.blocks.starts)
        empty = self.sc.parallelize(
            [(b, None) for b in range(self.blocks.count)], self.blocks.count
        )

        def filled(pair: tuple[int, Any]) -> tuple[int, sp.csr_matrix]:
            block, matrix = pair
            if matrix is None:
                matrix = sp.csr_matrix((int(sizes[block]), width), dtype=np.float32)
            return block, matrix

        return self._by_block(
            empty.union(built).reduceByKey(
                lambda a, b: a if a is not None else b,
                self.blocks.count,
                partitionFunc=_identity,
            )
        ).map(filled, preservesPartitioning=True)

    def _by_block(self, rdd: RowsRDD) -> RowsRDD:
        """Return the pairs with block b in partition b (so blocks of two models line up)."""
        return rdd.partitionBy(self.blocks.count, _identity)

    def _typical(self, raw: RowsRDD, width: int) -> np.ndarray:
        """Return each course's median of its viewers' total seconds (0 if nobody saw it)."""

        def columns(rows: sp.csr_matrix) -> Iterator[tuple[int, np.ndarray]]:
            by_course = sp.csc_matrix(rows)
            for course in np.flatnonzero(np.diff(by_course.indptr)):
                yield (
                    int(course),
                    by_course.data[by_course.indptr[course] : by_course.indptr[course + 1]],
                )

        medians = (
            raw.values()
            .flatMap(columns)
            .groupByKey()
            .mapValues(lambda parts: float(np.median(np.concatenate(list(parts)))))
            .collect()
        )
        typical = np.zeros(width, dtype=np.float64)
        for course, median in medians:
            typical[course] = median
        return typical

    def _norms(self) -> features.Norms:
        """Return each assessment tag's mean and spread over users' latest scores.

        Each user's latest score per tag is found with Spark; each tag's norms are then found
        by `features.assessment_norms` itself over that tag's scores in the local engine's order
        (by date, then line), so they equal the local engine's to the last bit.
        """
        if self._norms_found is not None:
            return self._norms_found
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        frame = self.tables.user_assessment_scores
        latest = frame.withColumn(
            "_rank",
            F.row_number().over(
                Window.partitionBy("user_handle", "assessment_tag").orderBy(
                    F.desc("user_assessment_date"), F.desc(LINE)
                )
            ),
        ).filter("_rank = 1")

        def per_tag(scores: pd.DataFrame) -> pd.DataFrame:
            ordered = scores.sort_values(["user_assessment_date", LINE], kind="stable")
            tags, mean, spread = features.assessment_norms(ordered)
            return pd.DataFrame({"assessment_tag": tags, "mean": mean, "spread": spread})

        found = (
            latest.select("assessment_tag", "user_assessment_date", LINE, "user_assessment_score")
            .groupBy("assessment_tag")
            .applyInPandas(per_tag, "assessment_tag string, mean double, spread double")
            .toPandas()
            .sort_values("assessment_tag")
        )
        self._norms_found = (
            pd.Index(found["assessment_tag"].astype(str)),
            found["mean"].to_numpy(dtype=np.float64),
            found["spread"].to_numpy(dtype=np.float64),
        )
        return self._norms_found

    # -- signals with a global fit, fitted on the driver ---------------------------------------

    def _fitted_on_driver(self, handle: str, settings: dict[str, Any]) -> ModelRows:
        """Fit a signal by its own builder on the tables it reads; cut its rows into blocks."""
        tables = self.local_tables(DRIVER_FITTED[handle])
        fitted = SIGNALS[handle].build(tables, self.index, settings)
        matrix = unit_rows(fitted.values)
        parts = [
            (b, matrix[self.blocks.starts[b] : self.blocks.starts[b + 1]])
            for b in range(self.blocks.count)
        ]
        rows = self._by_block(self.sc.parallelize(parts, self.blocks.count)).persist()
        log.info("%s: fitted on the driver (%s users)", handle, f"{len(self.index):,}")
        return ModelRows(rows, fitted.blocks, signed(matrix))

    def local_tables(self, names: Sequence[str], users: np.ndarray | None = None) -> Tables:
        """Return the named tables as the local loader's DataFrames (the others None), in file
        order; with `users`, only those users' rows (chosen with Spark, before any collect)."""
        from pyspark.sql import functions as F

        chosen = None
        if users is not None:
            chosen = F.broadcast(
                self.spark.createDataFrame(pd.DataFrame({"user_handle": users.astype(np.int64)}))
            )
        frames: dict[str, pd.DataFrame | None] = {}
        for name in ("user_interests", "user_course_views", "user_assessment_scores"):
            frame = getattr(self.tables, name)
            if name not in names or frame is None:
                frames[name] = None
                continue
            if chosen is not None:
                frame = frame.join(chosen, "user_handle", "left_semi")
            collected = frame.toPandas().sort_values(LINE, kind="stable").reset_index(drop=True)
            frames[name] = local_frame(collected, name).drop(columns=LINE)
        answers = self.tables.user_answers if "user_answers" in names else None
        if answers is not None and users is not None:
            answers = answers[np.isin(answers["user_handle"].to_numpy(), users)]
            answers = answers.reset_index(drop=True)
        return Tables(
            user_interests=frames["user_interests"],
            user_course_views=frames["user_course_views"],
            user_assessment_scores=frames["user_assessment_scores"],
            course_tags=self.tables.course_tags if "course_tags" in names else None,
            report=LoadReport(),
            user_answers=answers,
            questions=self.tables.questions if "questions" in names else None,
        )


def _matrix_bytes(matrix: sp.csr_matrix) -> bytes:
    """Return a CSR matrix as .npz bytes (how a block's rows leave its Python worker)."""
    buffer = io.BytesIO()
    sp.save_npz(buffer, sp.csr_matrix(matrix), compressed=False)
    return buffer.getvalue()


def _matrix_of(payload: bytes) -> sp.csr_matrix:
    """Return the CSR matrix `_matrix_bytes` wrote."""
    return sp.csr_matrix(sp.load_npz(io.BytesIO(bytes(payload))))


def _identity(block: int) -> int:
    """Partition block b into partition b."""
    return block


__all__ = ["DRIVER_FITTED", "MAX_BLOCK_USERS", "Blocks", "ModelRows", "RowBuilder", "user_index"]
