"""The generator's job on Spark: rows, neighbours, artifact and a published run per model.

The run protocol is the local engine's (`generator.pipeline`): the artifact is written, the run
begun, every list written, then the run published only if the store counts every list, and stale
runs cleaned up. What differs is who writes the lists: each block's executor writes its users'
lists with the store's batch writer under the same run id, and records its count under the
block's name (``part``). A task Spark retries writes the same items and sets the same count again,
so a retry never counts a list twice; a job that fails never publishes, and the run served before
stays current.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp

from generator.pipeline import (
    ModelResult,
    choose_models,
    clean_up,
    lists_of,
    measured,
    retire_unbuildable,
    run_record,
    tuned,
    write_artifact,
)
from generator.spark.read import SparkTables
from generator.spark.rows import MAX_BLOCK_USERS, Blocks, RowBuilder, user_index
from generator.spark.search import Lists, marked_mutual, neighbours, searched_rows
from generator.spark.session import cores
from generator.tables import TABLE_NAMES, Tables
from similarity.features import UserIndex
from similarity.space import ModelSpace
from store import (
    ABANDONED_AFTER,
    IncompleteWriteError,
    NeighbourList,
    NeighbourStore,
    Run,
    new_run_id,
)
from store.artifacts import ArtifactStore

log = logging.getLogger(__name__)

# Blocks of users per core by default: a model's search is blocks² tasks, so one block per core
# already gives each core as many tasks as there are cores; more, smaller blocks measured slower
# (bench.engines).
PARTITIONS_PER_CORE = 1
# Tuning and the quality measure run on the driver on at most this many users' tables (all of
# them below it, so a run's quality is the local engine's): `evaluate` samples 5,000 of them.
EVALUATION_MAX_USERS = 200_000
# How often a running Spark stage's progress is logged, in seconds.
PROGRESS_SECONDS = 10.0

# Called on an executor as a block's lists are written: (part, lists written so far, whether the
# part's count is recorded). Raising, or ending the process, fails the task: how tests reach a
# task that dies mid-publish.
Fault = Callable[[str, int, bool], None]


@dataclass(frozen=True)
class StoreSpec:
    """How an executor opens the store (sent to it, so it holds settings, never a client)."""

    table_prefix: str = "similar_users"
    region: str | None = None
    endpoint_url: str | None = None
    credentials: tuple[str, str, str | None] | None = None
    writers: int = 8

    def open(self) -> NeighbourStore:
        """Return a store on a new DynamoDB client."""
        from store.dynamo import DynamoStore

        return DynamoStore.connect(
            table_prefix=self.table_prefix,
            region=self.region,
            endpoint_url=self.endpoint_url,
            credentials=self.credentials,
            writers=self.writers,
        )


def block_count(users: int, task_slots: int, partitions_per_core: float) -> int:
    """Return how many blocks to cut the users into: `partitions_per_core` per core, and
    enough that no block holds more than MAX_BLOCK_USERS."""
    wanted = max(1, round(partitions_per_core * task_slots))
    return max(wanted, math.ceil(users / MAX_BLOCK_USERS), 1)


def part_name(block: int) -> str:
    """Return the name a block's lists are counted under in the run."""
    return f"block-{block:05d}"


def publish_lists(
    lists: Any, run: Run, open_store: Callable[[], NeighbourStore], fault: Fault | None = None
) -> int:
    """Write every block's lists from its executor; return how many lists were written."""

    def write(pair: tuple[int, Lists]) -> int:
        block, found = pair
        part = part_name(block)
        assert found.mutual is not None
        written = lists_of(found.users, found.near, found.scores, found.mutual)
        if fault is not None:
            written = _watched(written, part, fault)
        count = open_store().write_lists(run, written, part=part)
        if fault is not None:
            fault(part, count, True)
        return count

    return int(sum(lists.map(write).collect()))


def _watched(lists: Iterator[NeighbourList], part: str, fault: Fault) -> Iterator[NeighbourList]:
    """Pass the lists on, calling the fault seam before each one."""
    for done, neighbour_list in enumerate(lists):
        fault(part, done, False)
        yield neighbour_list


@contextmanager
def progress(spark: Any, label: str, every: float = PROGRESS_SECONDS) -> Iterator[None]:
    """Log the running stages' finished and total tasks every `every` seconds while inside."""
    tracker = spark.sparkContext.statusTracker()
    done = threading.Event()
    started = time.monotonic()

    def report() -> None:
        while not done.wait(every):
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            tasks = [(s.numCompletedTasks, s.numTasks) for s in stages if s is not None]
            finished = sum(t[0] for t in tasks)
            total = sum(t[1] for t in tasks)
            log.info(
                "%s: %d of %d tasks of the running stages done, %.0f s",
                label,
                finished,
                total,
                time.monotonic() - started,
            )

    watcher = threading.Thread(target=report, name=f"progress {label}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def evaluation_tables(builder: RowBuilder, seed: int = 0) -> Tables:
    """Return the export's tables on the driver for tuning and the quality measure: every
    user's when there are at most EVALUATION_MAX_USERS, else a random sample of that many."""
    users = builder.index.handles
    if len(users) <= EVALUATION_MAX_USERS:
        return builder.local_tables(TABLE_NAMES)
    chosen = np.sort(np.random.default_rng(seed).choice(users, EVALUATION_MAX_USERS, replace=False))
    log.warning(
        "tuning and quality use a random %s of the %s users (EVALUATION_MAX_USERS)",
        f"{EVALUATION_MAX_USERS:,}",
        f"{len(users):,}",
    )
    return builder.local_tables(TABLE_NAMES, users=chosen)


def run(
    spark: Any,
    tables: SparkTables,
    store: NeighbourStore,
    open_store: Callable[[], NeighbourStore],
    model_handles: Sequence[str] | None = None,
    top_n_stored: int = 50,
    *,
    abandoned_after: timedelta = ABANDONED_AFTER,
    evaluate: bool = False,
    tune: bool = False,
    export: Mapping[str, Any] | None = None,
    retire_unbuilt: bool = False,
    artifacts: ArtifactStore | None = None,
    partitions_per_core: float = PARTITIONS_PER_CORE,
    threads: int | None = None,
    fault: Fault | None = None,
) -> list[ModelResult]:
    """Publish a new run of every chosen model whose tables are present; return what each did.

    As `generator.pipeline.run`, with the work on Spark: ``store`` is the driver's (it begins,
    publishes and cleans up runs), ``open_store`` opens one on an executor (picklable, such as
    `StoreSpec.open`). ``threads``: the driver's, for tuning and the quality measure.
    ``fault``: see `Fault` (tests only).
    """
    models = choose_models(tables, model_handles)  # type: ignore[arg-type]
    if not models:
        raise ValueError("no model can be built from the tables that were loaded")
    index = user_index(tables)
    slots = cores(spark)
    blocks = Blocks.cut(index.handles, block_count(len(index), slots, partitions_per_core))
    builder = RowBuilder(spark, tables, blocks)
    if tune or evaluate:
        local = evaluation_tables(builder)
        if tune:
            models = tuned(local, models, top_n_stored, threads)
        quality = measured(local, models, top_n_stored, threads) if evaluate else {}
    else:
        quality = {}
    log.info(
        "%s users in %d blocks on %d cores, %d model(s): %s",
        f"{len(index):,}",
        blocks.count,
        slots,
        len(models),
        [m.handle for m in models],
    )
    engine = {
        "name": "spark",
        "master": spark.sparkContext.master,
        "blocks": blocks.count,
        "cores": slots,
    }
    results = []
    try:
        for model in models:
            results.append(
                _publish_model(
                    spark,
                    model,
                    builder,
                    index,
                    store,
                    open_store,
                    top_n_stored,
                    abandoned_after=abandoned_after,
                    quality=quality.get(model.handle),
                    export=export,
                    tuned=tune,
                    artifacts=artifacts,
                    engine=engine,
                    fault=fault,
                )
            )
    finally:
        builder.unpersist()
    if retire_unbuilt:
        retire_unbuildable(tables, store)  # type: ignore[arg-type]
    return results


def _publish_model(
    spark: Any,
    model: Any,
    builder: RowBuilder,
    index: UserIndex,
    store: NeighbourStore,
    open_store: Callable[[], NeighbourStore],
    top_n_stored: int,
    *,
    abandoned_after: timedelta,
    quality: Mapping[str, Any] | None,
    export: Mapping[str, Any] | None,
    tuned: bool,
    artifacts: ArtifactStore | None,
    engine: Mapping[str, Any],
    fault: Fault | None,
) -> ModelResult:
    """Build, search and publish one model on Spark (as `pipeline.publish_model` does locally)."""
    started = time.monotonic()
    blocks = builder.blocks
    with progress(spark, f"{model.handle} rows"):
        built = builder.model(model)
        searched = searched_rows(built.rows, blocks).persist()
        users = int(searched.map(lambda pair: len(pair[1][0])).sum())
    cached = [searched]  # unpersisted however the model ends
    try:
        features_done = time.monotonic()
        log.info(
            "%s: %s users with evidence, searched in %d × %d block pairs",
            model.handle,
            f"{users:,}",
            blocks.count,
            blocks.count,
        )
        with progress(spark, f"{model.handle} neighbours"):
            found = neighbours(searched, top_n_stored, built.negative, blocks.count).persist()
            lists = marked_mutual(found, blocks).persist()
            cached += [found, lists]
            lists.count()
        neighbours_done = time.monotonic()
        log.info(
            "%s: neighbours of %s users in %.1f s (%.0f users/s)",
            model.handle,
            f"{users:,}",
            neighbours_done - features_done,
            users / max(neighbours_done - features_done, 1e-9),
        )
        now = datetime.now(UTC)
        run_id = new_run_id(now)
        # The artifact holds every user's row: collected only when there is one to write.
        rows = [rows for _, rows in sorted(built.rows.collect())] if artifacts is not None else []
        space = ModelSpace(
            model_handle=model.handle,
            settings=dict(model.settings),
            handles=index.handles,
            matrix=sp.csr_matrix(sp.vstack(rows)) if rows else sp.csr_matrix((len(index), 0)),
            blocks=built.blocks,
        )
        artifact = None if artifacts is None else write_artifact(artifacts, space, run_id)
        artifact_done = time.monotonic()
        how = {"search": "exact", "engine": dict(engine)}
        run = run_record(
            space, run_id, now, top_n_stored, users, how, tuned, quality, export, artifact
        )
        store.begin_run(run)
        with progress(spark, f"{model.handle} publish"):
            written = publish_lists(lists, run, open_store, fault)
        if written != users:
            raise IncompleteWriteError(
                f"{model.handle}: the executors wrote {written} lists of run {run_id}, "
                f"expected {users}"
            )
        published = store.publish(run, expected_users=users)
        deleted = clean_up(store, model.handle, published.run_id, abandoned_after, artifacts)
        finished = time.monotonic()
        log.info(
            "%s: published run %s (%s lists written by the executors) in %.1f s",
            model.handle,
            run_id,
            f"{written:,}",
            finished - artifact_done,
        )
        return ModelResult(
            model_handle=model.handle,
            run_id=run_id,
            users=users,
            lists=written,
            features_seconds=features_done - started,
            neighbours_seconds=neighbours_done - features_done,
            publish_seconds=finished - neighbours_done,
            runs_deleted=deleted,
            search="exact",
            quality=run.quality,
            artifact_seconds=artifact_done - neighbours_done,
            artifact_bytes=0 if artifact is None else artifact.bytes,
        )
    finally:
        for rdd in cached:
            rdd.unpersist()


__all__ = [
    "EVALUATION_MAX_USERS",
    "PARTITIONS_PER_CORE",
    "Fault",
    "StoreSpec",
    "block_count",
    "evaluation_tables",
    "publish_lists",
    "run",
]
