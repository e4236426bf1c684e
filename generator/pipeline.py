"""The whole generator job: tables → features → models → neighbours → a published run per model."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from generator.features import UserIndex
from generator.models import MODELS, Model
from generator.neighbours import Neighbours, top_n
from generator.progress import Progress
from generator.tables import Tables
from store import (
    DEFAULT_SHARDS,
    SCORE_DECIMALS,
    Neighbour,
    NeighbourList,
    NeighbourStore,
    Run,
    new_run_id,
    runs_to_delete,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelResult:
    """What one model's run produced and how long each stage took (seconds)."""

    model_handle: str
    run_id: str
    users: int
    lists: int
    features_seconds: float
    neighbours_seconds: float
    publish_seconds: float
    runs_deleted: int


def neighbour_lists(
    found: Neighbours, index: UserIndex, has_evidence: np.ndarray
) -> Iterator[NeighbourList]:
    """Yield a list per user with evidence in the model (possibly empty), in handles, best first."""
    handles = index.handles
    for row in np.flatnonzero(has_evidence):
        kept = found.rows[row] >= 0
        neighbours = tuple(
            Neighbour(int(h), round(float(s), SCORE_DECIMALS))
            for h, s in zip(handles[found.rows[row][kept]], found.scores[row][kept], strict=True)
        )
        yield NeighbourList(int(handles[row]), neighbours)


def choose_models(tables: Tables, handles: Sequence[str] | None = None) -> list[Model]:
    """Return the requested models (default all) whose tables were loaded; log the others."""
    wanted = list(handles) if handles else list(MODELS)
    unknown = [h for h in wanted if h not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
    chosen = []
    for handle in wanted:
        model = MODELS[handle]
        if model.available(tables):
            chosen.append(model)
        else:
            log.warning("skipping model %s: %s", handle, model.unavailable(tables))
    return chosen


def publish_model(
    model: Model,
    tables: Tables,
    index: UserIndex,
    store: NeighbourStore,
    n: int,
    threads: int | None = None,
    shards: int = DEFAULT_SHARDS,
) -> ModelResult:
    """Compute one model's neighbours and publish them as a new run, then delete stale runs."""
    started = time.monotonic()
    matrix = model.matrix(tables, index)
    has_evidence = np.diff(matrix.indptr) > 0
    users = int(has_evidence.sum())
    features_done = time.monotonic()
    log.info(
        "%s: %s users with evidence, %s features, %s non-zeros",
        model.handle,
        f"{users:,}",
        f"{matrix.shape[1]:,}",
        f"{matrix.nnz:,}",
    )

    found = top_n(
        matrix, n, threads=threads, progress=Progress(f"{model.handle} neighbours", len(index))
    )
    neighbours_done = time.monotonic()

    now = datetime.now(UTC)
    run = Run(
        model_handle=model.handle,
        run_id=new_run_id(now),
        generated_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        top_n=n,
        shards=shards,
        user_count=users,
        settings=model.settings,
    )
    store.begin_run(run)
    progress = Progress(f"{model.handle} publish", users, unit="lists")

    def reported(lists: Iterator[NeighbourList]) -> Iterator[NeighbourList]:
        for done, neighbour_list in enumerate(lists, start=1):
            if done % 1000 == 0 or done == users:
                progress(done)
            yield neighbour_list

    written = store.write_lists(run, reported(neighbour_lists(found, index, has_evidence)))
    published = store.publish(run, expected_users=users)
    stale = runs_to_delete(store.runs(model.handle), published.run_id)
    for old in stale:
        store.delete_run(old)
    finished = time.monotonic()
    log.info("%s: published run %s (%s lists)", model.handle, run.run_id, f"{written:,}")
    return ModelResult(
        model_handle=model.handle,
        run_id=run.run_id,
        users=users,
        lists=written,
        features_seconds=features_done - started,
        neighbours_seconds=neighbours_done - features_done,
        publish_seconds=finished - neighbours_done,
        runs_deleted=len(stale),
    )


def run(
    tables: Tables,
    store: NeighbourStore,
    model_handles: Sequence[str] | None = None,
    n: int = 50,
    threads: int | None = None,
) -> list[ModelResult]:
    """Publish a new run of every chosen model whose tables are present; return what each did."""
    models = choose_models(tables, model_handles)
    if not models:
        raise ValueError("no model can be built from the tables that were loaded")
    index = UserIndex.from_tables(tables.interests, tables.course_views, tables.assessments)
    log.info(
        "%s users in %s model(s): %s", f"{len(index):,}", len(models), [m.handle for m in models]
    )
    return [publish_model(m, tables, index, store, n, threads) for m in models]
