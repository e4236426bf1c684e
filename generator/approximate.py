"""Approximate top-N neighbours for populations where an exact search (users²) is too much.

An inverted file: users are clustered (faiss spherical k-means) on their rows, or on their rows
hashed into fewer dimensions when there are many features; each is filed under its nearest
cluster, and each user's neighbours are searched with the core's exact sparse kernel among the
users filed under its nearest few clusters only. Scores are exact; a neighbour filed elsewhere is
missed, and `sample_recall` measures how often against an exact search of a random sample of
users. The embedding only chooses where to look, never the ranking: it tells which users are alike
well, not how alike (README, "Neighbours").
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul_topn

from similarity.clusters import Clusters, Hashing, embed
from similarity.neighbours import (
    PRODUCT_BUDGET,
    Neighbours,
    SignedProducts,
    score_keys,
    signed,
    top_n,
    unpack_keys,
)
from store import SCORE_DECIMALS

log = logging.getLogger(__name__)

# Users per list the approximate search's k-means is trained on (at most).
TRAIN_PER_LIST = 64
# The numbers of probed clusters the approximate search may settle on, fewest first.
PROBE_STEPS = (4, 8, 12, 16, 24, 32, 48, 64)


@dataclass(frozen=True)
class Approximate:
    """How the approximate search files and searches users; recorded with every run made with it.

    dimensions: users are clustered on their rows whole when there are at most this many
        features, in the very space their cosines are taken in; with more, on their rows hashed
        into this many (signed feature hashing, which keeps dot products in expectation). Measured
        at 100,000 synthetic users, 16 of about 300 clusters probed, recall@10 on rows (or hashed
        into 1,024) against a 64-dimension truncated SVD, the embedding before: interests 0.96
        against 0.89, course_tags 0.94 against 0.83, hybrid (7,739 features) 0.91 against 0.82.
    lists: clusters users are filed under (default: about √users).
    probes: nearest clusters searched for each user; None picks the fewest of PROBE_STEPS whose
        recall@10 on ``calibration_users`` sampled users reaches ``target_recall``.
    """

    dimensions: int = 1024
    lists: int | None = None
    probes: int | None = None
    target_recall: float = 0.93
    calibration_users: int = 500
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        """Return the settings as plain JSON values."""
        return dataclasses.asdict(self)


def embedding_of(matrix: sp.spmatrix, settings: Approximate) -> str:
    """Say what users are clustered on: ``rows`` (whole) or ``hashed-<dimensions>``."""
    return "rows" if matrix.shape[1] <= settings.dimensions else f"hashed-{settings.dimensions}"


def hashing_of(matrix: sp.spmatrix, settings: Approximate) -> Hashing | None:
    """Return the hashing users are clustered through, or None when they are clustered on their
    rows whole (`embedding_of`)."""
    if embedding_of(matrix, settings) == "rows":
        return None
    return Hashing.random(matrix.shape[1], settings.dimensions, settings.seed)


def _nearest_clusters(
    matrix: sp.csr_matrix, present: np.ndarray, settings: Approximate, block_rows: int
) -> tuple[np.ndarray, np.ndarray, Hashing | None]:
    """Cluster the users' embeddings; return each user's nearest clusters, nearest first, the
    centroids and the hashing of the embedding."""
    rng = np.random.default_rng(settings.seed)
    lists = min(settings.lists or max(1, round(np.sqrt(len(present)))), len(present))
    hashing = hashing_of(matrix, settings)
    # The k-means is trained on a sample: at most TRAIN_PER_LIST users per list.
    train = rng.choice(present, min(len(present), TRAIN_PER_LIST * lists), replace=False)
    vectors = embed(matrix[np.sort(train)], hashing)
    kmeans = faiss.Kmeans(vectors.shape[1], lists, niter=20, spherical=True, seed=settings.seed)
    kmeans.cp.min_points_per_centroid = 1  # few users per cluster is fine: only the split matters
    kmeans.train(vectors)
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    quantizer.add(kmeans.centroids)
    probes = min(settings.probes or PROBE_STEPS[-1], lists)
    nearest = np.empty((len(present), probes), dtype=np.int32)
    for first in range(0, len(present), block_rows):
        ids = present[first : first + block_rows]
        nearest[first : first + len(ids)] = quantizer.search(embed(matrix[ids], hashing), probes)[1]
    return nearest, np.ascontiguousarray(kmeans.centroids, dtype=np.float32), hashing


def _best_in(
    matrix: sp.csr_matrix, askers: np.ndarray, members: np.ndarray, k: int, threads: int
) -> np.ndarray:
    """Return each asker's k best members as keys (askers × k, unordered; 0 where none).

    An asker who is a member is never their own neighbour. Members tied at the cut are kept in
    no particular order (the search is approximate anyway); scores are exact.
    """
    if signed(matrix):
        return _best_in_dense(matrix, askers, members, k)
    product = sp_matmul_topn(
        matrix[askers], sp.csr_matrix(matrix[members].T), top_n=k + 1, n_threads=threads
    )
    per_row = np.diff(product.indptr)
    local = np.repeat(np.arange(len(askers)), per_row)
    cols = members[product.indices]
    keys = score_keys(product.data, cols)
    keys[cols == askers[local]] = 0
    found = np.zeros((len(askers), k + 1), dtype=np.int64)
    found[local, np.arange(len(local)) - product.indptr[local]] = keys
    return np.partition(found, 1, axis=1)[:, 1:]  # drop the smallest: empty or excluded


def _best_in_dense(
    matrix: sp.csr_matrix, askers: np.ndarray, members: np.ndarray, k: int
) -> np.ndarray:
    """Return `_best_in`'s keys for a matrix with negative values (dense factors).

    sparse_dot_topn cannot take products that cancel, so every asker × member score is computed
    exactly (`SignedProducts`), a bounded chunk of askers at a time; only positive scores are
    kept, and ties at the cut go to the lower row.
    """
    found = np.zeros((len(askers), k), dtype=np.int64)
    products = SignedProducts(matrix[members])
    step = max(1, PRODUCT_BUDGET // 2 // products.width)
    for first in range(0, len(askers), step):
        part = askers[first : first + step]
        scores = products.of(matrix[part])
        keys = score_keys(scores, np.broadcast_to(members, scores.shape))
        keys[part[:, None] == members[None, :]] = 0
        if keys.shape[1] > k:
            keys = np.partition(keys, keys.shape[1] - k, axis=1)[:, -k:]
        found[first : first + len(part), : keys.shape[1]] = keys
    return found


class _Filing:
    """Users filed under their nearest cluster, and who searches each cluster."""

    def __init__(self, present: np.ndarray, nearest: np.ndarray) -> None:
        self.present = present
        self.clusters = int(nearest.max()) + 1
        home = nearest[:, 0]
        filed = np.argsort(home, kind="stable")
        bounds = np.searchsorted(home[filed], np.arange(self.clusters + 1))
        self.members = [present[filed[a:b]] for a, b in itertools.pairwise(bounds)]

    def searchers(self, nearest: np.ndarray) -> list[np.ndarray]:
        """Return, per cluster, the (user position × probes + probe rank) of those probing it."""
        probed = nearest.ravel()
        order = np.argsort(probed, kind="stable").astype(np.int64)
        bounds = np.searchsorted(probed[order], np.arange(self.clusters + 1))
        return [order[a:b] for a, b in itertools.pairwise(bounds)]


def _calibrate(
    matrix: sp.csr_matrix,
    filing: _Filing,
    nearest: np.ndarray,
    settings: Approximate,
    threads: int,
) -> tuple[int, float]:
    """Return the fewest probes whose recall@10 on a user sample reaches the target, and it."""
    rng = np.random.default_rng(settings.seed + 1)
    k = 10
    sample = np.sort(rng.choice(len(filing.present), settings.calibration_users, replace=False))
    users = filing.present[sample]
    exact = top_n(matrix, k, threads=threads, rows=users)
    steps = [p for p in PROBE_STEPS if p < nearest.shape[1]] + [nearest.shape[1]]
    per_probe = np.zeros((len(sample), nearest.shape[1], k), dtype=np.int64)
    for cluster, searched in enumerate(filing.searchers(nearest[sample])):
        if len(searched) and len(filing.members[cluster]):
            asker, rank = np.divmod(searched, nearest.shape[1])
            per_probe[asker, rank] = _best_in(
                matrix, users[asker], filing.members[cluster], k, threads
            )
    recall = 0.0
    for probes in steps:
        keys = per_probe[:, :probes].reshape(len(sample), -1)
        best = -np.sort(-keys, axis=1)[:, :k]
        recall = recall_at(exact, Neighbours(*unpack_keys(best)), k)
        if recall >= settings.target_recall:
            return probes, recall
    return steps[-1], recall


def approximate_top_n(
    matrix: sp.spmatrix,
    n: int,
    settings: Approximate | None = None,
    block_rows: int = 8192,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Neighbours, dict[str, Any]]:
    """Find each row's n most similar other rows approximately (`approximate_search`'s first
    two results)."""
    found, done, _ = approximate_search(matrix, n, settings, block_rows, threads, progress)
    return found, done


def approximate_search(
    matrix: sp.spmatrix,
    n: int,
    settings: Approximate | None = None,
    block_rows: int = 8192,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Neighbours, dict[str, Any], Clusters | None]:
    """Find each row's n most similar other rows approximately, with exact scores.

    An inverted file: users are clustered (faiss k-means) on their rows, or on their rows hashed
    into ``settings.dimensions`` when there are more features; each user is filed under
    its nearest cluster, and each user's neighbours are searched, with the exact sparse cosine,
    among the users filed under its nearest few clusters. Work is about users² × probes / clusters
    instead of users²; a neighbour filed under a cluster that was not probed is missed
    (`sample_recall` measures how often).

    Returns the neighbours, what the search did (clusters, embedding, probes, calibration
    recall) and the clusters users were filed under (None when fewer than two have evidence), with
    which one more user can be searched the same way.
    ``progress`` is called after each cluster with the share of the work done, counted in users
    with evidence (so it ends at their number).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    settings = settings or Approximate()
    threads = threads or os.cpu_count() or 1
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    users = matrix.shape[0]
    result_rows = np.full((users, n), -1, dtype=np.int32)
    result_scores = np.zeros((users, n), dtype=np.float32)
    present = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if len(present) < 2:
        return Neighbours(result_rows, result_scores), {"clusters": 0, "probes": 0}, None

    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    nearest, centroids, hashing = _nearest_clusters(matrix, present, settings, block_rows)
    filing = _Filing(present, nearest)
    done: dict[str, Any] = {
        "clusters": filing.clusters,
        "embedding": embedding_of(matrix, settings),
    }
    log.info(
        "filed %s users under %s clusters (on %s) in %.1f s",
        f"{len(present):,}",
        filing.clusters,
        done["embedding"],
        time.perf_counter() - started,
    )
    if settings.probes is None and len(present) > settings.calibration_users:
        started = time.perf_counter()
        probes, recall = _calibrate(matrix, filing, nearest, settings, threads)
        done["calibration_recall_at_10"] = round(recall, 4)
        nearest = np.ascontiguousarray(nearest[:, :probes])
        log.info(
            "%d probes reach recall@10 %.3f on a sample (%.1f s)",
            probes,
            recall,
            time.perf_counter() - started,
        )
    done["probes"] = nearest.shape[1]

    # Each user's best so far as keys (unordered); merged with each searched cluster's best.
    best = np.zeros((len(present), n), dtype=np.int64)
    searched_so_far = 0
    for cluster, searched in enumerate(filing.searchers(nearest)):
        askers = searched // nearest.shape[1]
        if len(askers) and len(filing.members[cluster]):
            found = _best_in(matrix, present[askers], filing.members[cluster], n, threads)
            merged = np.concatenate([best[askers], found], axis=1)
            best[askers] = np.partition(merged, n, axis=1)[:, n:]
        searched_so_far += len(askers)
        if progress is not None:
            progress(searched_so_far // nearest.shape[1])
    result_rows[present], result_scores[present] = unpack_keys(-np.sort(-best, axis=1))
    clusters = Clusters(
        centroids=centroids,
        order=np.concatenate(filing.members).astype(np.int64),
        # Clusters past the last one anybody was filed under are empty, but can still be probed.
        bounds=np.cumsum(
            [0] + [len(m) for m in filing.members] + [0] * (len(centroids) - filing.clusters)
        ).astype(np.int64),
        probes=int(nearest.shape[1]),
        hashing=hashing,
    )
    return Neighbours(result_rows, result_scores), done, clusters


def recall_at(exact: Neighbours, found: Neighbours, k: int = 10) -> float:
    """Return the share of the exact k best neighbours that the found lists match, ties included.

    Both hold the same users in the same order. A found neighbour matches when its score is at least
    the user's k-th best exact score, so an equally similar user is as good as the one the exact
    search kept (as ann-benchmarks counts). Users with no exact neighbour are left out.
    """
    exact_scores = exact.scores[:, :k]
    expected = (exact.rows[:, :k] >= 0).sum(axis=1)
    asked = expected > 0
    if not asked.any():
        return 1.0
    kth = exact_scores[asked, expected[asked] - 1]
    got = np.where(found.rows[asked, :k] >= 0, found.scores[asked, :k], -np.inf)
    tolerance = 10.0**-SCORE_DECIMALS
    matched = np.minimum((got >= kth[:, None] - tolerance).sum(axis=1), expected[asked])
    return float(matched.sum() / expected[asked].sum())


@dataclass(frozen=True)
class Recall:
    """How many of the exact k best neighbours found lists hold, on a random sample of users.

    ``by_activity``: the same per decile of the sampled users' activity (features per user), as
    (fewest features, most features, users, recall), so that a group of niche or heavy users left
    out does not hide behind the average. ``exact_seconds``: what the exact search of the sample
    took, from which a whole exact search can be estimated.
    """

    recall: float
    users: int
    k: int
    by_activity: tuple[tuple[int, int, int, float], ...] = ()
    exact_seconds: float = 0.0

    def describe(self) -> dict[str, Any]:
        """Return the figures a run records, rounded."""
        return {
            "recall_sample": round(self.recall, 4),
            "recall_at": self.k,
            "recall_sample_users": self.users,
            "recall_by_activity": [
                {"features": [low, high], "users": users, "recall": round(recall, 4)}
                for low, high, users, recall in self.by_activity
            ],
        }


def sample_recall(
    matrix: sp.spmatrix,
    found: Neighbours,
    k: int = 10,
    sample: int = 2000,
    seed: int = 0,
    threads: int | None = None,
) -> Recall:
    """Measure `recall_at` k of found lists against an exact search of a random sample of users,
    overall and per decile of activity (users without evidence are not sampled)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    activity = np.diff(matrix.indptr)
    present = np.flatnonzero(activity > 0)
    if len(present) == 0:
        return Recall(1.0, 0, k)
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(present, min(sample, len(present)), replace=False))
    started = time.perf_counter()
    exact = top_n(matrix, k, threads=threads, rows=users)
    seconds = time.perf_counter() - started
    got = Neighbours(found.rows[users], found.scores[users])
    order = np.argsort(activity[users], kind="stable")
    deciles = []
    for part in np.array_split(order, min(10, len(order))):
        features = activity[users[part]]
        share = recall_at(
            Neighbours(exact.rows[part], exact.scores[part]),
            Neighbours(got.rows[part], got.scores[part]),
            k,
        )
        deciles.append((int(features.min()), int(features.max()), len(part), share))
    return Recall(recall_at(exact, got, k), len(users), k, tuple(deciles), seconds)
