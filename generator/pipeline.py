"""The whole generator job: tables → features → models → neighbours → a published run per model."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from generator.approximate import Approximate, approximate_search, sample_recall
from generator.progress import Progress
from generator.tables import Tables
from similarity.clusters import Clusters
from similarity.features import UserIndex
from similarity.models import MODELS, Model
from similarity.neighbours import Neighbours, top_n
from similarity.space import ModelSpace
from store import (
    ABANDONED_AFTER,
    DEFAULT_SHARDS,
    SCORE_DECIMALS,
    Neighbour,
    NeighbourList,
    NeighbourStore,
    Run,
    StoreError,
    new_run_id,
    run_started,
    runs_to_delete,
)
from store.artifacts import Artifact, ArtifactStore

log = logging.getLogger(__name__)

# Above this many users with evidence in a model, `approximate=None` (auto) searches approximately:
# exact work grows with users² (README, "Benchmarks", has the times).
APPROXIMATE_ABOVE = 200_000
# Users whose approximate lists are checked against an exact search, and how deep.
RECALL_SAMPLE = 2000
RECALL_AT = 10
# The recall@10 an approximate run promises (below it, it searches more or is not published), and
# the longest that searching more may be expected to take, per model.
MIN_RECALL = 0.9
SEARCH_BUDGET_SECONDS = 1200.0


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
    search: str = "exact"
    recall: float | None = None  # of an approximate run against exact, on a sample of users
    recall_at: int | None = None  # ... of the best this many (10, or fewer when fewer are stored)
    # ... per decile of the sampled users' activity: {"features": [low, high], "users", "recall"}
    recall_by_activity: list[dict[str, Any]] | None = None
    quality: dict[str, Any] | None = None  # the run's evaluation on the export's hold-out
    artifact_seconds: float = 0.0  # writing the run's artifact (part of publish_seconds)
    artifact_bytes: int = 0


# Neighbour slots compared at once when marking mutual neighbours (users × n × n int32s, 1 MB):
# the neighbours' rows fetched then stay in a core's cache, which larger blocks lose (slower).
MUTUAL_BUDGET = 2**18


def mutual(rows: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Return whether each neighbour of the given users lists the user back: users × n, bool.

    ``rows`` is every user's neighbour rows (users × n, -1 padded, as `Neighbours.rows`);
    ``users`` the rows to mark. Each neighbour's own row is fetched and searched for the user, a
    few users at a time, so memory stays `MUTUAL_BUDGET` slots whatever the number of users.
    """
    near = rows[users]
    n = rows.shape[1]
    marked = np.zeros(near.shape, dtype=bool)
    step = max(1, MUTUAL_BUDGET // max(n * n, 1))
    asking = users.astype(rows.dtype)
    for first in range(0, len(users), step):
        part = slice(first, first + step)
        theirs = rows[np.maximum(near[part], 0)]  # each neighbour's own row: step × n × n
        marked[part] = (theirs == asking[part, None, None]).any(axis=2)
    marked &= near >= 0
    return marked


def neighbour_lists(
    found: Neighbours, index: UserIndex, has_evidence: np.ndarray, chunk: int = 4096
) -> Iterator[NeighbourList]:
    """Yield a list per user with evidence in the model (possibly empty), in handles, best first,
    each neighbour marked mutual when the user is in that neighbour's list too.

    Converted a chunk of users at a time (handles, rounded scores and mutual marks as whole
    arrays), so memory stays one chunk's worth of Python objects whatever the number of users.
    """
    handles = index.handles
    users = np.flatnonzero(has_evidence)
    for first in range(0, len(users), chunk):
        rows = users[first : first + chunk]
        neighbour_rows = found.rows[rows]
        near = np.where(neighbour_rows >= 0, handles[np.maximum(neighbour_rows, 0)], -1)
        marks = mutual(found.rows, rows)
        yield from lists_of(handles[rows], near, found.scores[rows], marks)


def lists_of(
    users: np.ndarray, near: np.ndarray, scores: np.ndarray, marks: np.ndarray
) -> Iterator[NeighbourList]:
    """Yield the store's lists of some users from arrays: each user's neighbour handles (users ×
    n, best first, -1 after the last), scores and mutual marks (users × n)."""
    counts = (near >= 0).sum(axis=1).tolist()  # neighbours fill each row's front
    rounded = np.round(scores.astype(np.float64), SCORE_DECIMALS).tolist()
    for user, count, listed, score, mark in zip(
        users.tolist(), counts, near.tolist(), rounded, marks.tolist(), strict=True
    ):
        yield NeighbourList(
            user, tuple(map(Neighbour, listed[:count], score[:count], mark[:count]))
        )


class RecallTooLowError(ValueError):
    """An approximate search missed its recall target and searching more would take too long."""


@dataclass(frozen=True)
class Promise:
    """What an approximate search must reach to be published, and what it may spend to get there.

    min_recall: recall@10 (against exact, on a sample) below which a run is not published.
    budget_seconds: the longest a model's search may take in all, searching more included.
    """

    min_recall: float = MIN_RECALL
    budget_seconds: float = SEARCH_BUDGET_SECONDS


def search(
    model: Model,
    matrix: Any,
    top_n_stored: int,
    approximate: bool,
    threads: int | None,
    settings: Approximate | None = None,
    promise: Promise = Promise(),
) -> tuple[Neighbours, dict[str, Any], Clusters | None]:
    """Find every user's best neighbours under a model; return them, how they were found and,
    for an approximate search, the clusters users were filed under.

    An approximate search is checked against an exact one on a sample of users. Below the
    promised recall it warns and searches more: exactly when that is expected to fit in what is
    left of the budget (the sure way), else with twice the probes if that is expected to fit; else
    it raises RecallTooLowError. The recall reached (at 10, or fewer when fewer are stored),
    overall and per decile of activity, is part of what is returned, and so recorded with the run.
    """
    if not approximate:
        return exact(model, matrix, top_n_stored, threads), {"search": "exact"}, None
    settings = settings or Approximate()
    users = int((np.diff(matrix.indptr) > 0).sum())
    at = min(RECALL_AT, top_n_stored)
    tried: list[dict[str, Any]] = []
    began = time.perf_counter()
    while True:
        progress = Progress(f"{model.handle} neighbours (approximate)", users)
        started = time.perf_counter()
        found, done, clusters = approximate_search(
            matrix, top_n_stored, settings=settings, threads=threads, progress=progress
        )
        seconds = time.perf_counter() - started
        check = sample_recall(matrix, found, at, RECALL_SAMPLE, threads=threads)
        log.info(
            "%s: approximate search (%s probes), recall@%d %.3f against exact on %s users",
            model.handle,
            done.get("probes"),
            at,
            check.recall,
            f"{check.users:,}",
        )
        how = {"search": "approximate", "approximate": {**settings.describe(), **done}}
        how |= check.describe()
        if check.recall >= promise.min_recall:
            return found, {**how, **({"searched_more": tried} if tried else {})}, clusters
        tried.append({"probes": done.get("probes"), "recall": round(check.recall, 4)})
        exact_seconds = check.exact_seconds * users / max(check.users, 1)
        probes, lists = int(done.get("probes", 0)), int(done.get("clusters", 0))
        more = min(2 * probes, lists)
        more_seconds = seconds * more / max(probes, 1) if more > probes else float("inf")
        left = promise.budget_seconds - (time.perf_counter() - began)
        log.warning(
            "%s: recall@%d %.3f is below the promised %.2f (%d of %d clusters probed); "
            "searching more: exact about %.0f s, %d probes about %.0f s, %.0f s of the budget left",
            model.handle,
            at,
            check.recall,
            promise.min_recall,
            probes,
            lists,
            exact_seconds,
            more,
            more_seconds,
            max(left, 0.0),
        )
        if exact_seconds <= left:
            found = exact(model, matrix, top_n_stored, threads)
            return found, {"search": "exact", "searched_more": tried}, None
        if more_seconds > left:
            raise RecallTooLowError(
                f"{model.handle}: the approximate search reached recall@{at} {check.recall:.3f}, "
                f"below MIN_RECALL {promise.min_recall:g}, and searching more would take about "
                f"{min(exact_seconds, more_seconds):.0f} s, more than the {max(left, 0):.0f} s "
                f"left of SEARCH_BUDGET_SECONDS {promise.budget_seconds:g}: not published (a "
                "lower MIN_RECALL accepts it)"
            )
        settings = dataclasses.replace(settings, probes=more)


def exact_fits(
    model: Model, matrix: Any, top_n_stored: int, threads: int | None, budget_seconds: float
) -> bool:
    """Tell whether an exact search of every user is expected to fit in the budget, from the
    time an exact search of a random sample of them takes (then it is the sure choice)."""
    present = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if not len(present):
        return True
    sample = np.sort(
        np.random.default_rng(0).choice(present, min(RECALL_SAMPLE, len(present)), replace=False)
    )
    started = time.perf_counter()
    top_n(matrix, top_n_stored, threads=threads, rows=sample)
    expected = (time.perf_counter() - started) * len(present) / len(sample)
    log.info(
        "%s: an exact search of %s users is expected to take about %.0f s (budget %.0f s)",
        model.handle,
        f"{len(present):,}",
        expected,
        budget_seconds,
    )
    return expected <= budget_seconds


def exact(model: Model, matrix: Any, top_n_stored: int, threads: int | None) -> Neighbours:
    """Find every user's best neighbours under a model exactly, showing progress."""
    progress = Progress(f"{model.handle} neighbours", matrix.shape[0])
    return top_n(matrix, top_n_stored, threads=threads, progress=progress)


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
    top_n_stored: int,
    threads: int | None = None,
    shards: int = DEFAULT_SHARDS,
    approximate: bool | None = None,
    approximate_above: int = APPROXIMATE_ABOVE,
    abandoned_after: timedelta = ABANDONED_AFTER,
    quality: Mapping[str, Any] | None = None,
    export: Mapping[str, Any] | None = None,
    tuned: bool = False,
    promise: Promise = Promise(),
    artifacts: ArtifactStore | None = None,
) -> ModelResult:
    """Compute one model's neighbours and publish them as a new run, then delete stale runs.

    ``approximate``: True or False, or None to search approximately above ``approximate_above``
    users with evidence. ``quality`` (its evaluation) and ``export`` (what the tables came from)
    are recorded with the run, and whether its settings were ``tuned`` on this export.
    ``artifacts``: where the run's model artifact (its space, for profile queries) is written,
    complete before the run is begun and named, with its checksum, in the run record.
    """
    started = time.monotonic()
    space = model.space(tables, index)
    matrix = space.matrix
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

    if approximate is None:
        approximate = users > approximate_above and not exact_fits(
            model, matrix, top_n_stored, threads, promise.budget_seconds
        )
    found, how, clusters = search(
        model, matrix, top_n_stored, approximate, threads, promise=promise
    )
    neighbours_done = time.monotonic()

    now = datetime.now(UTC)
    run_id = new_run_id(now)
    artifact = None
    if artifacts is not None:
        space = dataclasses.replace(space, clusters=clusters)
        artifact = write_artifact(artifacts, space, run_id)
    artifact_done = time.monotonic()
    run = run_record(
        space, run_id, now, top_n_stored, users, how, tuned, quality, export, artifact, shards
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
    deleted = clean_up(store, model.handle, published.run_id, abandoned_after, artifacts)
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
        runs_deleted=deleted,
        search=how["search"],
        recall=how.get("recall_sample"),
        recall_at=how.get("recall_at"),
        recall_by_activity=how.get("recall_by_activity"),
        quality=run.quality,
        artifact_seconds=artifact_done - neighbours_done,
        artifact_bytes=0 if artifact is None else artifact.bytes,
    )


def run_record(
    space: ModelSpace,
    run_id: str,
    now: datetime,
    top_n_stored: int,
    users: int,
    how: Mapping[str, Any],
    tuned: bool,
    quality: Mapping[str, Any] | None,
    export: Mapping[str, Any] | None,
    artifact: Artifact | None,
    shards: int = DEFAULT_SHARDS,
) -> Run:
    """Return the record of a model's new run: its settings with how its neighbours were found
    (`how`) and what the model learned, its quality, its export and its artifact."""
    return Run(
        model_handle=space.model_handle,
        run_id=run_id,
        generated_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        top_n=top_n_stored,
        shards=shards,
        user_count=users,
        # What the model learned that a reader of the run wants (a survey's traits, loadings).
        settings={
            **space.settings,
            **how,
            **({"fit": fit} if (fit := space.summary()) else {}),
            **({"tuned": True} if tuned else {}),
        },
        quality=None if quality is None else dict(quality),
        export=None if export is None else dict(export),
        artifact=None if artifact is None else artifact.describe(),
    )


def write_artifact(artifacts: ArtifactStore, space: ModelSpace, run_id: str) -> Artifact:
    """Write a run's space where artifacts are kept; return where it is and its checksum."""
    started = time.monotonic()
    folder = artifacts.stage(space.model_handle, run_id)
    space.write(folder)
    artifact = artifacts.put(space.model_handle, run_id, folder)
    log.info(
        "%s: wrote the artifact of run %s (%s MB) in %.1f s: %s",
        space.model_handle,
        run_id,
        f"{artifact.bytes / 1e6:,.1f}",
        time.monotonic() - started,
        artifact.uri,
    )
    return artifact


def clean_up(
    store: NeighbourStore,
    model_handle: str,
    current_run_id: str,
    abandoned_after: timedelta,
    artifacts: ArtifactStore | None = None,
) -> int:
    """Delete the model's runs that are no longer needed, with their artifacts; return how many
    runs were deleted.

    The new run is published already: a run that cannot be deleted now is logged and left (it is
    marked deleting or untouched, never served) for the next run's cleanup, and the job goes on.
    An artifact whose run is not recorded (its job died before beginning the run) is deleted once
    it is older than ``abandoned_after``.
    """
    deleted = 0
    try:
        runs = store.runs(model_handle)
    except StoreError as error:
        log.warning("%s: cleanup skipped, the runs could not be listed: %s", model_handle, error)
        return 0
    for old in runs_to_delete(runs, current_run_id, abandoned_after=abandoned_after):
        try:
            store.delete_run(old)
            if artifacts is not None:
                artifacts.delete(model_handle, old.run_id)
        except StoreError as error:
            log.warning(
                "%s: run %s could not be deleted (the next run's cleanup tries again): %s",
                model_handle,
                old.run_id,
                error,
            )
        else:
            deleted += 1
    if artifacts is not None:
        _delete_orphans(artifacts, model_handle, {r.run_id for r in runs}, abandoned_after)
    return deleted


def _delete_orphans(
    artifacts: ArtifactStore, model_handle: str, recorded: set[str], abandoned_after: timedelta
) -> None:
    """Delete the model's artifacts of runs never recorded that began over abandoned_after ago."""
    now = datetime.now(UTC)
    try:
        for run_id in artifacts.run_ids(model_handle):
            started = run_started(run_id)
            if run_id not in recorded and started is not None and now - started > abandoned_after:
                artifacts.delete(model_handle, run_id)
                log.info("%s: deleted the artifact of run %s, never begun", model_handle, run_id)
    except StoreError as error:
        log.warning("%s: artifacts without a run not deleted: %s", model_handle, error)


def run(
    tables: Tables,
    store: NeighbourStore,
    model_handles: Sequence[str] | None = None,
    top_n_stored: int = 50,
    threads: int | None = None,
    approximate: bool | None = None,
    approximate_above: int = APPROXIMATE_ABOVE,
    abandoned_after: timedelta = ABANDONED_AFTER,
    *,
    evaluate: bool = False,
    tune: bool = False,
    export: Mapping[str, Any] | None = None,
    retire_unbuilt: bool = False,
    promise: Promise = Promise(),
    artifacts: ArtifactStore | None = None,
) -> list[ModelResult]:
    """Publish a new run of every chosen model whose tables are present; return what each did.

    ``approximate``: search every model approximately (True), exactly (False), or approximately
    only above ``approximate_above`` users with evidence in it (None, the default).
    ``tune``: first choose each model's weighting on a validation split of these tables.
    ``evaluate``: measure each model on the tables' hold-out and record it with its run.
    ``export``: the fingerprint of the export the tables came from, recorded with every run.
    ``retire_unbuilt``: stop serving the current runs of models these tables cannot build (they
    came from another export). ``promise``: the recall an approximate search must reach; a model
    that cannot is not published, the others are, and RecallTooLowError then names it.
    ``artifacts``: where each run's model artifact is written (none when None).
    """
    models = choose_models(tables, model_handles)
    if not models:
        raise ValueError("no model can be built from the tables that were loaded")
    if tune:
        models = tuned(tables, models, top_n_stored, threads)
    quality = measured(tables, models, top_n_stored, threads) if evaluate else {}
    index = UserIndex.of(tables)
    log.info(
        "%s users in %s model(s): %s", f"{len(index):,}", len(models), [m.handle for m in models]
    )
    results, refused = [], []
    for m in models:
        try:
            results.append(
                publish_model(
                    m,
                    tables,
                    index,
                    store,
                    top_n_stored,
                    threads,
                    approximate=approximate,
                    approximate_above=approximate_above,
                    abandoned_after=abandoned_after,
                    quality=quality.get(m.handle),
                    export=export,
                    tuned=tune,
                    promise=promise,
                    artifacts=artifacts,
                )
            )
        except RecallTooLowError as error:
            log.error("%s", error)
            refused.append(str(error))
    if retire_unbuilt:
        retire_unbuildable(tables, store)
    if refused:
        raise RecallTooLowError("; ".join(refused))
    return results


def tuned(
    tables: Tables, models: Sequence[Model], top_n_stored: int, threads: int | None
) -> list[Model]:
    """Return the models with the weightings chosen on a validation split of the tables."""
    from generator.tune import tune

    started = time.monotonic()
    tuning = tune(tables, top_n_stored=top_n_stored, threads=threads)
    chosen = {model.handle: model for model in tuning.models()}
    log.info("tuned on a validation split in %.1f s", time.monotonic() - started)
    return [chosen.get(model.handle, model) for model in models]


def measured(
    tables: Tables, models: Sequence[Model], top_n_stored: int, threads: int | None
) -> dict[str, dict[str, Any]]:
    """Return each model's quality on the tables' hold-out, as its run records it ({} if none)."""
    from generator.evaluate import evaluate

    try:
        report = evaluate(tables, models, top_n_stored=top_n_stored, threads=threads)
    except ValueError as error:  # no course views, or nobody with enough to hide some
        log.warning("the runs carry no quality: the export cannot be evaluated (%s)", error)
        return {}
    return {handle: report.quality(handle) for handle in report.models}


def retire_unbuildable(tables: Tables, store: NeighbourStore) -> None:
    """Stop serving the current runs of the models these tables cannot build."""
    for handle, model in MODELS.items():
        why = model.unavailable(tables)
        current = store.current_run(handle) if why is not None else None
        if current is not None and store.retire(current):
            log.warning(
                "%s: retired run %s, made from another export: this one cannot build it (%s)",
                handle,
                current.run_id,
                why,
            )
