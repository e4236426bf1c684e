"""Per-process caches of the API: each model's current run, and the neighbour lists read from runs.

Both spare the store a read per request. Caching a run's lists is always correct: a run never
changes once published, and a new run is a new cache key. The run pointers are kept only briefly,
so a newly published run is served within `ttl` seconds.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from store import NeighbourList, NeighbourStore, Run

# Memory each process gives to cached neighbour lists (a list of 50 neighbours holds 1.25 KB).
RESULT_CACHE_MB = 128
_MAX_CACHED_MODELS = 256

ResultKey = tuple[str, str, int]  # (model_handle, run_id, user_handle)

# What a cached list holds beyond its arrays' items: the arrays' and the list's own objects, its
# key and the cache's links (measured: 390-446 bytes for lists of 5, 50 and 500 neighbours).
CACHE_ENTRY_OVERHEAD_BYTES = 450


@dataclass(frozen=True, slots=True)
class Ranked:
    """A user's similar users, best first, as two compact arrays."""

    handles: array[int]
    scores: array[float]

    @property
    def nbytes(self) -> int:
        """About how much memory the list holds while it is cached."""
        return (
            CACHE_ENTRY_OVERHEAD_BYTES
            + len(self.handles) * self.handles.itemsize
            + len(self.scores) * self.scores.itemsize
        )

    @classmethod
    def of(cls, found: NeighbourList) -> Ranked:
        """Return the compact form of a neighbour list."""
        return cls(
            array("q", [n.user_handle for n in found.neighbours]),
            array("d", [n.score for n in found.neighbours]),
        )

    def best(self, top_n: int) -> list[dict[str, Any]]:
        """Return the top_n best as the API's JSON objects."""
        return [
            {"user_handle": h, "score": s}
            for h, s in zip(self.handles[:top_n], self.scores[:top_n], strict=True)
        ]


class ResultCache:
    """A segmented LRU of users' neighbour lists by (model, run, user), bounded in bytes.

    Always correct: a run's lists never change once written, and a new run has a new key. Absences
    are not kept: a read of a just-published item may miss it (DynamoDB reads are eventually
    consistent), and a run named by a cached pointer may have been deleted since.

    A list read from the store enters a probation segment (a fifth of the bytes); asked for again,
    it moves to the protected segment, whose least recently used lists drop back to probation when
    it is full. A stream of users asked for once only churns probation, so it never pushes out the
    users asked for again and again. Bounded by memory rather than by count, so runs with long
    lists (a large top_n) cannot make it outgrow its budget. Safe to share between threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._probation_max = self.max_bytes // 5
        self._protected_max = self.max_bytes - self._probation_max
        self._lock = threading.Lock()
        self._probation: OrderedDict[ResultKey, Ranked] = OrderedDict()
        self._protected: OrderedDict[ResultKey, Ranked] = OrderedDict()
        self._probation_bytes = 0
        self._protected_bytes = 0

    def get(self, key: ResultKey) -> Ranked | None:
        """Return the cached list of the key, or None."""
        with self._lock:
            found = self._protected.get(key)
            if found is not None:
                self._protected.move_to_end(key)
                return found
            found = self._probation.pop(key, None)
            if found is not None:
                self._probation_bytes -= found.nbytes
                self._protected[key] = found
                self._protected_bytes += found.nbytes
                while self._protected_bytes > self._protected_max:
                    dropped_key, dropped = self._protected.popitem(last=False)
                    self._protected_bytes -= dropped.nbytes
                    self._on_probation(dropped_key, dropped)
            return found

    def offer(self, key: ResultKey, found: Ranked) -> None:
        """Keep a list just read from the store, on probation."""
        if found.nbytes <= self._probation_max:  # else it would push out all probation for naught
            with self._lock:
                if key not in self._protected:  # another thread may have just read it too
                    self._on_probation(key, found)

    def __len__(self) -> int:
        with self._lock:
            return len(self._probation) + len(self._protected)

    @property
    def nbytes(self) -> int:
        """About how much memory the cached lists hold."""
        with self._lock:
            return self._probation_bytes + self._protected_bytes

    def _on_probation(self, key: ResultKey, found: Ranked) -> None:
        replaced = self._probation.pop(key, None)
        if replaced is not None:
            self._probation_bytes -= replaced.nbytes
        self._probation[key] = found
        self._probation_bytes += found.nbytes
        while self._probation_bytes > self._probation_max:
            _, dropped = self._probation.popitem(last=False)
            self._probation_bytes -= dropped.nbytes


class CurrentRuns:
    """Each model's published run, read from the store at most once per `ttl` seconds per model,
    and the neighbour lists read from those runs (a `ResultCache` of ``cache_bytes``).

    Safe to share between threads. A cached run may be a few seconds old; the generator keeps the
    previous run when it publishes a new one, so a run named by the cache still exists unless two
    runs of the model were published within `ttl` (see `server.api.lookup` for that case).
    `clock` returns seconds and only ever goes forward (tests pass one they move by hand).
    """

    def __init__(
        self,
        store: NeighbourStore,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        cache_bytes: int = RESULT_CACHE_MB * 2**20,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.lists = ResultCache(cache_bytes)
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[float, Run | None]] = {}
        self._all: tuple[float, dict[str, Run]] | None = None

    def neighbour_list(self, run: Run, user_handle: int) -> Ranked | None:
        """Return the user's list in the run, from the cache or the store; None if absent."""
        key = (run.model_handle, run.run_id, user_handle)
        found = self.lists.get(key)
        if found is None:
            stored = self.store.get_list(run, user_handle)
            if stored is None:
                return None
            found = Ranked.of(stored)
            self.lists.offer(key, found)
        return found

    def run(self, model_handle: str, fresh: bool = False) -> tuple[Run | None, bool]:
        """Return the model's current run (None if none) and whether it was just read."""
        now = self.clock()
        if not fresh:
            with self._lock:
                cached = self._runs.get(model_handle)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1], False
        found = self.store.current_run(model_handle)
        with self._lock:
            if len(self._runs) >= _MAX_CACHED_MODELS:  # bounded: clients choose model handles
                self._runs.clear()
            self._runs[model_handle] = (now, found)
        return found, True

    def all(self, fresh: bool = False) -> dict[str, Run]:
        """Return every model's current run, by model handle."""
        now = self.clock()
        if not fresh:
            with self._lock:
                cached = self._all
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        found = self.store.current_runs()
        with self._lock:
            self._all = (now, found)
        return found
