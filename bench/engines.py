"""The Spark engine against the local one: a model's rows, exact neighbours and mutual marks.

    python -m bench.engines [--users 100000] [--models interests course_views hybrid]
                            [--partitions-per-core 1 2 4] [--master local[2]] [--top-n 50]
                            [--executors 10 50 200] [--project-users 10000000] [--sample 2000]

One synthetic export is read once by the local loader and once by Spark (its large tables kept
in Spark's cache). For each model, the local engine's compute is timed (`Model.space`, exact
`top_n` on every core, `pipeline.mutual`), then Spark's on `--master` once per partitions per
core (`RowBuilder.model`, `searched_rows`, `neighbours`, `marked_mutual`, forced with count()),
each with fresh blocks and a fresh RowBuilder so nothing is reused across settings. Each Spark
line's ratio is the local seconds over Spark's (above 1: Spark is faster); `spark_over_local` is
its inverse. A sample of users' Spark lists is compared with the local ones (same neighbours in
the same order, scores within 1e-6, same mutual marks): mismatches are reported, never raised.
Each timed line carries the machine's 1-minute load average as it ended (other work skews both).

The neighbour stage's time per block pair gives a projection to `--project-users` users on EMR
Serverless (printed as such, with its assumptions): blocks of MAX_BLOCK_USERS users, blocks²
pairs, each pair a task of one core whose time grows with the square of its blocks' users;
executors of 4 vCPU run their tasks in waves. Core-seconds are measured as wall seconds × the
master's cores, which counts a core idle at a stage's tail as busy (the projection errs high).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.harness import emit, log, peak_rss_mb, setup_logging, synthetic_export, timed
from generator import pipeline
from generator.tables import Tables, load_tables
from similarity.features import UserIndex
from similarity.models import MODELS, Model
from similarity.neighbours import top_n

BENCH = "engines"
SCORE_TOLERANCE = 1e-6

# EMR Serverless on-demand prices, us-east-1, x86-64 workers: an assumption taken from AWS's
# pricing page (aws.amazon.com/emr/pricing, "EMR Serverless") as last read, not checked by the
# bench; Arm (Graviton) workers cost about 20% less. Billing is per second with a minute's
# minimum per worker; 20 GB of disk per worker are included.
VCPU_HOUR_USD = 0.052624
GB_HOUR_USD = 0.0057785
# A worker as EMR Serverless sizes one by default (driver and executors alike).
WORKER_VCPUS = 4
WORKER_GB = 16


def local_compute(
    model: Model, tables: Tables, index: UserIndex, n: int
) -> tuple[dict[str, Any], dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Time the local engine's rows, exact search and mutual marks of one model; return the
    figures and every user's list by handle: (neighbour handles, scores, mutual marks)."""
    with timed() as rows:
        space = model.space(tables, index)
    matrix = space.matrix
    has_evidence = np.diff(matrix.indptr) > 0
    users = np.flatnonzero(has_evidence)
    with timed() as search:
        found = top_n(matrix, n)
    with timed() as marking:
        marks = pipeline.mutual(found.rows, users)
    near = found.rows[users]
    handles = np.where(near >= 0, index.handles[np.maximum(near, 0)], -1)
    lists = {
        int(user): (handles[i], found.scores[users[i]], marks[i])
        for i, user in enumerate(index.handles[users])
    }
    neighbours_seconds = search["seconds"] + marking["seconds"]
    figures = {
        "engine": "local",
        "model": model.handle,
        "threads": os.cpu_count(),
        "users_with_evidence": len(users),
        "rows_seconds": rows["seconds"],
        "search_seconds": search["seconds"],
        "mutual_seconds": marking["seconds"],
        "neighbours_seconds": neighbours_seconds,
        "seconds": rows["seconds"] + neighbours_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "load_average_1m": os.getloadavg()[0],
    }
    return figures, lists


def spark_compute(
    spark: Any,
    model: Model,
    tables: Any,
    handles: np.ndarray,
    partitions_per_core: float,
    n: int,
    sample: np.ndarray,
) -> tuple[dict[str, Any], list[tuple[np.ndarray, ...]]]:
    """Time Spark's rows, exact search and mutual marks of one model on fresh blocks; return the
    figures and the sampled users' lists as (users, near, scores, mutual) parts."""
    from generator.spark.engine import block_count
    from generator.spark.rows import Blocks, RowBuilder
    from generator.spark.search import marked_mutual, neighbours, searched_rows
    from generator.spark.session import cores

    slots = cores(spark)
    blocks = Blocks.cut(handles, block_count(len(handles), slots, partitions_per_core))
    builder = RowBuilder(spark, tables, blocks)
    with timed() as rows:
        built = builder.model(model)
        searched = searched_rows(built.rows, blocks).persist()
        users = int(searched.map(lambda pair: len(pair[1][0])).sum())
    with timed() as search:
        found = neighbours(searched, n, built.negative, blocks.count).persist()
        lists = marked_mutual(found, blocks).persist()
        lists.count()
    wanted = spark.sparkContext.broadcast(np.sort(sample))

    def picked(pair: tuple[int, Any]) -> list[tuple[np.ndarray, ...]]:
        _, part = pair
        keep = np.isin(part.users, wanted.value)
        return [(part.users[keep], part.near[keep], part.scores[keep], part.mutual[keep])]

    parts = lists.flatMap(picked).collect()
    for rdd in (lists, found, searched):
        rdd.unpersist()
    if model.blocks:  # a hybrid's joined rows; a signal's are the builder's own
        built.rows.unpersist()
    builder.unpersist()
    wanted.destroy()
    pairs = blocks.count**2
    figures = {
        "engine": "spark",
        "model": model.handle,
        "master": spark.sparkContext.master,
        "cores": slots,
        "partitions_per_core": partitions_per_core,
        "blocks": blocks.count,
        "block_users": len(handles) / blocks.count,
        "pairs": pairs,
        "users_with_evidence": users,
        "rows_seconds": rows["seconds"],
        "neighbours_seconds": search["seconds"],
        "seconds": rows["seconds"] + search["seconds"],
        "load_average_1m": os.getloadavg()[0],
    }
    return figures, parts


def per_pair(figures: dict[str, Any], block_users: int) -> dict[str, Any]:
    """Return the neighbour stage's throughput per block pair, and a pair's core-seconds scaled
    to blocks of `block_users` users (a pair's work grows with the square of its users)."""
    seconds, pairs, slots = figures["neighbours_seconds"], figures["pairs"], figures["cores"]
    core_seconds_per_pair = seconds * slots / pairs
    return {
        "seconds_per_pair": seconds / pairs,
        "core_seconds_per_pair": core_seconds_per_pair,
        "users_squared_per_second": figures["users_with_evidence"] ** 2 / seconds,
        "core_seconds_per_pair_at_block_users": block_users,
        "core_seconds_per_pair_scaled": core_seconds_per_pair
        * (block_users / figures["block_users"]) ** 2,
    }


def compared(
    local: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    parts: Sequence[tuple[np.ndarray, ...]],
    sample: np.ndarray,
) -> dict[str, Any]:
    """Compare the sampled users' Spark lists with the local ones; count what differs."""
    kinds = {"missing": 0, "neighbours": 0, "scores": 0, "mutual": 0}
    found: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for users, near, scores, mutual in parts:
        for i, user in enumerate(users.tolist()):
            found[user] = (near[i], scores[i], mutual[i])
    mismatched, largest = 0, 0.0
    for user in sample.tolist():
        if user not in found:
            kinds["missing"] += 1
            mismatched += 1
            continue
        want_near, want_scores, want_marks = local[user]
        near, scores, marks = found[user]
        listed = want_near >= 0
        wrong = False
        if not np.array_equal(near, want_near):
            kinds["neighbours"] += 1
            wrong = True
        else:
            apart = np.abs(scores[listed].astype(np.float64) - want_scores[listed]).max(initial=0)
            largest = max(largest, float(apart))
            if apart > SCORE_TOLERANCE:
                kinds["scores"] += 1
                wrong = True
        if not np.array_equal(marks & listed, want_marks & listed):
            kinds["mutual"] += 1
            wrong = True
        mismatched += wrong
    return {
        "users_checked": len(sample),
        "mismatches": mismatched,
        "mismatch_kinds": kinds,
        # Over the users whose neighbours matched; its own key, so emit does not round it.
        "score_difference": {"largest": largest, "tolerance": SCORE_TOLERANCE},
    }


def projected(
    basis: dict[str, Any],
    local: dict[str, Any],
    users: int,
    target: int,
    block_users: int,
    executors: int,
) -> dict[str, Any]:
    """Project one model's Spark rows and neighbours to `target` users on `executors` workers."""
    blocks = math.ceil(target / block_users)
    pairs = blocks**2
    size = target / blocks
    task_seconds = basis["core_seconds_per_pair"] * (size / basis["block_users"]) ** 2
    slots = executors * WORKER_VCPUS
    waves = math.ceil(pairs / slots)
    # Rows grow with the users: the measured core-seconds, scaled, spread over every core.
    rows_core_seconds = basis["rows_seconds"] * basis["cores"] * target / users
    wall_seconds = rows_core_seconds / slots + waves * task_seconds
    workers = executors + 1  # and the driver, of the same size, the whole time
    worker_hour = WORKER_VCPUS * VCPU_HOUR_USD + WORKER_GB * GB_HOUR_USD
    local_hours = local["neighbours_seconds"] * (target / users) ** 2 / 3600
    return {
        "projected_users": target,
        "executors": executors,
        "vcpus": slots,
        "blocks": blocks,
        "block_users": size,
        "pairs": pairs,
        "waves": waves,
        "task_seconds": task_seconds,
        "neighbours_core_hours": pairs * task_seconds / 3600,
        "rows_core_hours": rows_core_seconds / 3600,
        "wall_hours": wall_seconds / 3600,
        "cost_usd": workers * wall_seconds / 3600 * worker_hour,
        "from": {
            "users": users,
            "partitions_per_core": basis["partitions_per_core"],
            "block_users": basis["block_users"],
            "core_seconds_per_pair": basis["core_seconds_per_pair"],
        },
        "local_exact_hours_on_this_machine": local_hours,
    }


ASSUMPTIONS = {
    "vcpu_hour_usd": VCPU_HOUR_USD,
    "gb_hour_usd": GB_HOUR_USD,
    "prices": "EMR Serverless on demand, us-east-1, x86-64, as last read on AWS's pricing page "
    "(an assumption, not checked)",
    "worker": f"{WORKER_VCPUS} vCPU, {WORKER_GB} GB (EMR Serverless's default size); "
    "the driver is one more worker for the whole run",
    "scaling": "a pair's task time grows with the square of its blocks' users; rows linearly; "
    "tasks run in waves of executors × vCPUs; start-up, reading and publishing not included",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engines", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(MODELS),
        default=["interests", "course_views", "hybrid"],
    )
    parser.add_argument("--partitions-per-core", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--executors", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--project-users", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=2000, help="users whose lists are compared")
    args = parser.parse_args(argv)
    setup_logging()
    from generator.spark import read, session
    from generator.spark.rows import MAX_BLOCK_USERS

    users = args.users
    folder = synthetic_export(users)
    with timed() as loading:
        tables = load_tables(folder)
    index = UserIndex.of(tables)
    emit(BENCH, "load local", users, seconds=loading["seconds"], peak_rss_mb=peak_rss_mb())
    with timed() as starting:
        spark = session.start(args.master)
    emit(BENCH, "start spark", users, seconds=starting["seconds"], master=args.master)
    try:
        with timed() as reading:
            spark_tables = read.read_export(spark, str(folder))
        emit(
            BENCH,
            "read spark",
            users,
            seconds=reading["seconds"],
            baseline="load local",
            ratio=loading["seconds"] / reading["seconds"],
        )
        rng = np.random.default_rng(0)
        totals: dict[int, dict[str, float]] = {}
        for model in pipeline.choose_models(tables, args.models):
            log.info("%s: the local engine", model.handle)
            local, lists = local_compute(model, tables, index, args.top_n)
            emit(BENCH, f"local {model.handle}", users, **local, baseline=None)
            with_evidence = np.fromiter(lists, dtype=np.int64)
            sample = np.sort(
                rng.choice(with_evidence, min(args.sample, len(with_evidence)), replace=False)
            )
            measured = []
            for share in args.partitions_per_core:
                log.info("%s: Spark, %g partitions per core", model.handle, share)
                figures, parts = spark_compute(
                    spark, model, spark_tables, index.handles, share, args.top_n, sample
                )
                figures |= per_pair(figures, MAX_BLOCK_USERS)
                figures |= compared(lists, parts, sample)
                measured.append(figures)
                emit(
                    BENCH,
                    f"spark {model.handle}, {share:g} partitions per core",
                    users,
                    **figures,
                    baseline=f"local {model.handle}",
                    ratio=local["seconds"] / figures["seconds"],
                    spark_over_local=figures["seconds"] / local["seconds"],
                )
            # The fewest, largest blocks measured: the least scaling to MAX_BLOCK_USERS.
            basis = max(measured, key=lambda f: (f["block_users"], -f["partitions_per_core"]))
            for executors in args.executors:
                projection = projected(
                    basis, local, users, args.project_users, MAX_BLOCK_USERS, executors
                )
                total = totals.setdefault(executors, {"wall_hours": 0.0, "cost_usd": 0.0})
                total["wall_hours"] += projection["wall_hours"]
                total["cost_usd"] += projection["cost_usd"]
                emit(
                    BENCH,
                    f"projection {model.handle}, {executors} executors",
                    users,
                    **projection,
                    assumptions=ASSUMPTIONS,
                    baseline=None,
                )
        for executors, total in totals.items():
            emit(
                BENCH,
                f"projection all models, {executors} executors",
                users,
                projected_users=args.project_users,
                executors=executors,
                models=args.models,
                **total,
                assumptions=ASSUMPTIONS,
                baseline=None,
            )
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
