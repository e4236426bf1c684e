"""Per-process caches of the API: each model's current run, and the neighbour lists read from runs.

Both spare the store a read per request. Caching a run's lists is always correct: a run never
changes once published, and a new run is a new cache key. The run pointers are kept only briefly,
so a newly published run is served within `ttl` seconds. What clients choose (model names, users
not in a run, readiness probes) never makes the store be read more than a bounded number of times
per second.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from store import NeighbourList, NeighbourStore, Run, StoreError, StoreUnavailableError

log = logging.getLogger(__name__)

# Memory each process gives to cached neighbour lists (a list of 50 neighbours holds 1.3 KB).
RESULT_CACHE_MB = 128
# Model handles remembered with a run, and (apart, so that made-up names never push out the
# models being served) without one; least recently asked for out first.
_MAX_CACHED_MODELS = 256
# A pointer is read again at most once per this many seconds, however many requests ask for a
# fresher one (each unknown user's 404) or find the store unreachable.
REREAD_SECONDS = 1.0
# How long readiness (/readyz: a scan of every model's pointer) is reused, failures included.
READY_SECONDS = 1.0
# How long the run last read may still answer lists already cached while the store is unreachable.
STALE_IF_ERROR_SECONDS = 3600.0

T = TypeVar("T")

ResultKey = tuple[str, str, int]  # (model_handle, run_id, user_handle)

# What a cached list holds beyond its arrays' items: the arrays', the mutual flags' and the list's
# own objects, its key and the cache's links (measured: 430-490 bytes for lists of 5, 50 and 500
# neighbours).
CACHE_ENTRY_OVERHEAD_BYTES = 490


@dataclass(frozen=True, slots=True)
class Ranked:
    """A user's similar users, best first, as two compact arrays and a byte per neighbour that is
    1 where the match is mutual."""

    handles: array[int]
    scores: array[float]
    mutual: bytes

    @property
    def nbytes(self) -> int:
        """About how much memory the list holds while it is cached."""
        return (
            CACHE_ENTRY_OVERHEAD_BYTES
            + len(self.handles) * self.handles.itemsize
            + len(self.scores) * self.scores.itemsize
            + len(self.mutual)
        )

    @classmethod
    def of(cls, found: NeighbourList) -> Ranked:
        """Return the compact form of a neighbour list."""
        return cls(
            array("q", [n.user_handle for n in found.neighbours]),
            array("d", [n.score for n in found.neighbours]),
            bytes(n.mutual for n in found.neighbours),
        )

    def best(self, top_n: int, mutual_only: bool = False) -> list[dict[str, Any]]:
        """Return the top_n best (of the mutual ones only, if asked) as the API's JSON objects."""
        found: Iterator[tuple[int, float, int]] = zip(
            self.handles, self.scores, self.mutual, strict=True
        )
        if mutual_only:
            found = (entry for entry in found if entry[2])
        return [
            {"user_handle": h, "score": s, "mutual": bool(m)}
            for h, s, m in itertools.islice(found, top_n)
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


@dataclass(frozen=True)
class _Read(Generic[T]):
    """What the store said, when (`read_at`), and before when it is not asked again (`retry_at`,
    later than `read_at` only after a read that failed)."""

    value: T
    read_at: float
    retry_at: float


def _remember(cache: OrderedDict[str, T], key: str, value: T) -> None:
    """Keep a value as the most recently used, dropping the least recently used past the bound."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX_CACHED_MODELS:
        cache.popitem(last=False)


class CurrentRuns:
    """Each model's published run, read from the store at most once per `ttl` seconds per model,
    and the neighbour lists read from those runs (a `ResultCache` of ``cache_bytes``).

    Safe to share between threads. A cached run may be a few seconds old; the generator keeps the
    previous run when it publishes a new one, so a run named by the cache still exists unless two
    runs of the model were published within `ttl` (see `server.api.lookup` for that case).

    Stale-if-error: when the store cannot be reached, the run last read for a model (and the last
    listing of every model) keeps being used for up to `max_stale` seconds after it was read, and
    the store is asked again once per `REREAD_SECONDS`; in between, the lists cached from that run
    are answered and the others are a StoreUnavailableError without a read.
    Readiness is the store's own answer, reused for `ready_ttl` seconds, failures included.
    `clock` returns seconds and only ever goes forward (tests pass one they move by hand).
    """

    def __init__(
        self,
        store: NeighbourStore,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        cache_bytes: int = RESULT_CACHE_MB * 2**20,
        ready_ttl: float = READY_SECONDS,
        max_stale: float = STALE_IF_ERROR_SECONDS,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.ready_ttl = ready_ttl
        self.max_stale = max_stale
        self.lists = ResultCache(cache_bytes)
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _Read[Run]] = OrderedDict()
        self._absent: OrderedDict[str, float] = OrderedDict()  # model handle -> when read
        self._all: _Read[dict[str, Run]] | None = None
        self._ready_lock = threading.Lock()  # one readiness read at a time; the others wait
        self._ready: _Read[dict[str, Run] | StoreError] | None = None

    def neighbour_list(self, run: Run, user_handle: int) -> Ranked | None:
        """Return the user's list in the run, from the cache or the store; None if absent.

        Raises StoreError if the store answers with another user's list, and StoreUnavailableError
        without asking it if it could not be reached for the run's pointer in the last
        `REREAD_SECONDS` (so that a request waits on one failing read at most).
        """
        key = (run.model_handle, run.run_id, user_handle)
        found = self.lists.get(key)
        if found is None:
            with self._lock:
                known = self._runs.get(run.model_handle)
            if known is not None and known.value is run and self.clock() < known.retry_at:
                raise StoreUnavailableError(
                    f"the store was unreachable when last asked for model {run.model_handle!r}"
                )
            stored = self.store.get_list(run, user_handle)
            if stored is None:
                return None
            if stored.user_handle != user_handle:
                raise StoreError(
                    f"asked for user {user_handle}'s list in run {run.run_id} of model "
                    f"{run.model_handle!r}, the store answered user {stored.user_handle}'s"
                )
            found = Ranked.of(stored)
            self.lists.offer(key, found)
        return found

    def run(self, model_handle: str, fresh: bool = False) -> tuple[Run | None, bool]:
        """Return the model's current run (None if none) and whether it was just read.

        `fresh` asks for a run read since the last `REREAD_SECONDS` (at most one read per model per
        `REREAD_SECONDS`, however many ask). Raises StoreError if the store answers with another
        model's run, and StoreUnavailableError if it cannot be reached and no run of the model was
        read in the last `max_stale` seconds.
        """
        now = self.clock()
        max_age = min(self.ttl, REREAD_SECONDS) if fresh else self.ttl
        with self._lock:
            known = self._runs.get(model_handle)
            if known is not None:
                self._runs.move_to_end(model_handle)
                if now - known.read_at < max_age or now < known.retry_at:
                    return known.value, False
            elif (absent_at := self._absent.get(model_handle)) is not None:
                self._absent.move_to_end(model_handle)
                if now - absent_at < max_age:
                    return None, False
        try:
            found = self.store.current_run(model_handle)
        except StoreUnavailableError as error:
            if known is None or now - known.read_at >= self.max_stale:
                raise
            log.warning(
                "store unavailable, model %r answers from run %s read %.0f s ago: %s",
                model_handle,
                known.value.run_id,
                now - known.read_at,
                error,
            )
            with self._lock:
                if self._runs.get(model_handle) is known:  # else another thread read it since
                    self._runs[model_handle] = replace(known, retry_at=now + REREAD_SECONDS)
            return known.value, False
        if found is not None and found.model_handle != model_handle:
            raise StoreError(
                f"asked for the run of model {model_handle!r}, the store answered one of "
                f"{found.model_handle!r}"
            )
        with self._lock:
            if found is None:
                self._runs.pop(model_handle, None)
                _remember(self._absent, model_handle, now)
            else:
                self._absent.pop(model_handle, None)
                _remember(self._runs, model_handle, _Read(found, now, now))
        return found, True

    def all(self) -> dict[str, Run]:
        """Return every model's current run, by model handle, read at most once per `ttl`.

        Raises StoreUnavailableError if the store cannot be reached and was not read in the last
        `max_stale` seconds.
        """
        now = self.clock()
        with self._lock:
            known = self._all
        if known is not None and (now - known.read_at < self.ttl or now < known.retry_at):
            return known.value
        try:
            found = self.store.current_runs()
        except StoreUnavailableError as error:
            if known is None or now - known.read_at >= self.max_stale:
                raise
            log.warning(
                "store unavailable, the models read %.0f s ago answer: %s",
                now - known.read_at,
                error,
            )
            with self._lock:
                if self._all is known:
                    self._all = replace(known, retry_at=now + REREAD_SECONDS)
            return known.value
        with self._lock:
            self._all = _Read(found, now, now)
        return found

    def ready(self) -> dict[str, Run]:
        """Return every model's current run as the store said within the last `ready_ttl` seconds,
        or raise again the StoreError it raised then; never from a stale cache."""
        with self._ready_lock:
            now = self.clock()
            known = self._ready
            if known is None or now - known.read_at >= self.ready_ttl:
                outcome: dict[str, Run] | StoreError
                try:
                    outcome = self.store.current_runs()
                except StoreError as error:
                    outcome = error
                else:
                    with self._lock:
                        self._all = _Read(outcome, now, now)
                known = self._ready = _Read(outcome, now, now)
        if isinstance(known.value, StoreError):
            # A new error each time: one raised again and again would pile up tracebacks.
            raise type(known.value)(*known.value.args)
        return known.value
