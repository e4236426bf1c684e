"""Where users were filed by the approximate search, so that one more user can be placed among them.

The generator clusters users (faiss k-means, generator.approximate) on their rows, or on their rows
hashed into fewer dimensions (`Hashing`); `Clusters` keeps what a query needs afterwards: the
centroids, the users filed under each, the hashing if any and how many clusters to probe. Plain
numpy, so the server can search a run's clusters without faiss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize


@dataclass(frozen=True)
class Hashing:
    """Signed feature hashing: feature j is added, times ``signs[j]`` (±1), into ``buckets[j]``.

    Dot products of hashed rows equal those of the rows in expectation, in far fewer dimensions.
    """

    signs: np.ndarray  # float32, one per feature
    buckets: np.ndarray  # int64, one per feature, in [0, dimensions)
    dimensions: int

    @classmethod
    def random(cls, features: int, dimensions: int, seed: int) -> Hashing:
        """Return a hashing of the given number of features drawn from a seeded generator."""
        rng = np.random.default_rng(seed)
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), features)
        buckets = rng.integers(0, dimensions, features)
        return cls(signs, buckets.astype(np.int64), dimensions)

    def project(self, rows: sp.csr_matrix) -> np.ndarray:
        """Return the rows hashed and scaled to unit length (dense float32)."""
        features = len(self.signs)
        hashing = sp.csr_matrix(
            (self.signs, (np.arange(features), self.buckets)),
            shape=(features, self.dimensions),
        )
        hashed = np.ascontiguousarray((rows @ hashing).toarray(), dtype=np.float32)
        return np.ascontiguousarray(normalize(hashed, copy=False))


def embed(rows: sp.csr_matrix, hashing: Hashing | None) -> np.ndarray:
    """Return the vectors users are clustered on: the rows whole, or hashed (dense float32)."""
    if hashing is None:
        return np.ascontiguousarray(rows.toarray(), dtype=np.float32)
    return hashing.project(rows)


@dataclass(frozen=True)
class Clusters:
    """Users filed under their nearest centroid: ``order[bounds[c]:bounds[c + 1]]`` are the rows
    filed under cluster c; a query searches the ``probes`` clusters nearest to it."""

    centroids: np.ndarray  # clusters × dimensions, float32, unit rows
    order: np.ndarray  # int64 matrix rows, grouped by cluster
    bounds: np.ndarray  # int64, clusters + 1
    probes: int
    hashing: Hashing | None = None

    def candidates(self, vector: sp.csr_matrix) -> np.ndarray:
        """Return the rows filed under the clusters nearest to a row vector (sorted)."""
        similarity = self.centroids @ embed(vector, self.hashing)[0]
        probes = min(self.probes, len(similarity))
        nearest = np.argpartition(-similarity, probes - 1)[:probes]
        parts = [self.order[self.bounds[c] : self.bounds[c + 1]] for c in nearest]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
