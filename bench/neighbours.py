"""Neighbour search: ours against a dense cosine_similarity and sklearn's brute NearestNeighbors.

    python -m bench.neighbours [--users 10000 100000] [--models interests course_views] [--n 50]

Every method runs on the same matrices (the models' own, built from the synthetic export), each in
a process of its own so that its peak RSS is its own. The dense baseline runs where a users×users
float32 matrix fits in memory; sklearn's brute search (which blocks its distance matrix) wherever
asked. Each line's ratio is the baseline's seconds over the method's (above 1: faster), against
the dense baseline where it ran, else against sklearn.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.harness import DATA_DIR, emit, peak_rss_mb, setup_logging, synthetic_export

BENCH = "neighbours"
METHODS = ("ours exact", "ours approximate", "dense cosine_similarity", "sklearn NearestNeighbors")
DENSE_BUDGET_BYTES = 8 * 2**30  # the users×users float32 matrix, and as much again to rank it


def matrix_path(users: int, model: str) -> Path:
    """Return where the model's matrix for a synthetic export is kept (built once)."""
    return DATA_DIR / f"matrix-{users}-{model}.npz"


def build_matrices(users: int, models: list[str]) -> None:
    """Write the models' matrices of the synthetic export of this many users, if not there yet."""
    missing = [m for m in models if not matrix_path(users, m).exists()]
    if not missing:
        return
    from generator.tables import load_tables
    from similarity.features import UserIndex
    from similarity.models import MODELS

    tables = load_tables(synthetic_export(users))
    index = UserIndex.of(tables)
    for model in missing:
        sp.save_npz(matrix_path(users, model), MODELS[model].matrix(tables, index))


def run_method(method: str, matrix: sp.csr_matrix, n: int) -> dict[str, Any]:
    """Find every row's n best neighbours with one method; return what to report besides time."""
    if method == "ours exact":
        from similarity.neighbours import top_n

        top_n(matrix, n)
        return {}
    if method == "ours approximate":
        from generator.approximate import approximate_top_n, sample_recall

        found, done = approximate_top_n(matrix, n)
        started = time.perf_counter()
        check = sample_recall(matrix, found, 10, 2000)
        return {
            "recall_at_10": check.recall,
            "recall_sample_users": check.users,
            "recall_by_activity": check.describe()["recall_by_activity"],
            "recall_seconds": time.perf_counter() - started,
            **done,
        }
    if method == "dense cosine_similarity":
        from sklearn.metrics.pairwise import cosine_similarity

        similarity = cosine_similarity(matrix, dense_output=True).astype(np.float32, copy=False)
        np.fill_diagonal(similarity, -np.inf)
        best = np.argpartition(-similarity, n, axis=1)[:, :n]
        np.take_along_axis(similarity, best, axis=1)
        return {}
    if method == "sklearn NearestNeighbors":
        from sklearn.neighbors import NearestNeighbors

        search = NearestNeighbors(n_neighbors=n + 1, metric="cosine", algorithm="brute", n_jobs=-1)
        search.fit(matrix).kneighbors(matrix)
        return {}
    raise ValueError(f"unknown method {method!r}")


def one(method: str, users: int, model: str, n: int) -> None:
    """Measure one method on one matrix in this process; print its figures as JSON."""
    matrix = sp.csr_matrix(sp.load_npz(matrix_path(users, model)), dtype=np.float32)
    # Import every method's libraries first (faiss and scikit-learn take a second or two), so that
    # only the search is timed.
    import sklearn.metrics.pairwise
    import sklearn.neighbors  # noqa: F401

    import similarity.neighbours  # noqa: F401

    started = time.perf_counter()
    extra = run_method(method, matrix, n)
    seconds = time.perf_counter() - started - extra.get("recall_seconds", 0.0)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), **extra}), flush=True)


def measure(method: str, users: int, model: str, n: int) -> dict[str, Any]:
    """Run one method in a child process and return its figures."""
    command = [sys.executable, "-m", "bench.neighbours", "--one", method, str(users), model, str(n)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=Path.cwd())
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def fits_dense(users: int) -> bool:
    return 2 * users * users * 4 <= DENSE_BUDGET_BYTES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.neighbours", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--models", nargs="+", default=["interests", "course_views"])
    parser.add_argument("--n", type=int, default=50, help="neighbours per user (default 50)")
    parser.add_argument("--sklearn-max-users", type=int, default=100_000)
    parser.add_argument(
        "--one", nargs=4, metavar=("METHOD", "USERS", "MODEL", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.one:
        method, users, model, n = args.one
        one(method, int(users), model, int(n))
        return 0
    setup_logging()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    for users in args.users:
        build_matrices(users, args.models)
        for model in args.models:
            figures: dict[str, dict[str, Any]] = {}
            for method in METHODS:
                if method == "dense cosine_similarity" and not fits_dense(users):
                    needs = 2 * users * users * 4 / 2**30
                    emit(BENCH, f"{method} {model}", users, skipped=f"needs about {needs:,.0f} GB")
                    continue
                if method == "sklearn NearestNeighbors" and users > args.sklearn_max_users:
                    emit(BENCH, f"{method} {model}", users, skipped="above --sklearn-max-users")
                    continue
                figures[method] = measure(method, users, model, args.n)
            base = next(
                (
                    m
                    for m in ("dense cosine_similarity", "sklearn NearestNeighbors")
                    if "seconds" in figures.get(m, {})
                ),
                None,
            )
            for method, measured in figures.items():
                line: dict[str, Any] = {"top_n": args.n, **measured, "baseline": base}
                if base is not None and "seconds" in measured and method != base:
                    line["ratio"] = figures[base]["seconds"] / measured["seconds"]
                emit(BENCH, f"{method} {model}", users, **line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
