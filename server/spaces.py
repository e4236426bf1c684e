"""Each process's loaded model spaces: a run's artifact, fetched, verified and memory-mapped once.

Profile queries, explanations and the catalogue need the space a run was built in (its vocabulary,
weighting and unit rows); lookups by handle need only the stored lists. A run's artifact is fetched
(its checksum verified by the artifact store) and loaded the first time a request needs it, once
per process however many threads ask at the same moment, and kept by run id: a newly published
run is a new key, so a space is never stale. Its arrays are memory-mapped, so the worker processes
of one machine share their pages. A few runs per model are kept, least recently used out first.

An artifact that cannot be used (none recorded, missing, corrupt, unreadable) is remembered for
`retry_seconds`, so a corrupt one is not hashed again on every request; in between, requests that
need it are answered 503 at once, naming the run.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.errors import ArtifactUnavailable
from server.matching import Vocabulary, vocabularies
from similarity.space import ModelSpace
from store import Run
from store.artifacts import (
    Artifact,
    ArtifactCorruptError,
    ArtifactError,
    ArtifactMissingError,
    ArtifactStore,
)

log = logging.getLogger(__name__)

# Runs kept loaded per model: the current one and the one before, which requests that began just
# before a publish may still be answering from.
RUNS_PER_MODEL = 2
DEFAULT_CACHE_FOLDER = "similar-users-artifacts"  # under the system's temporary folder


@dataclass(frozen=True)
class Loaded:
    """A run's space, ready to answer: the space and its vocabulary of each kind."""

    run_id: str
    space: ModelSpace
    vocabularies: dict[str, Vocabulary]


@dataclass(frozen=True)
class _Failure:
    reason: str
    retry_at: float


class Spaces:
    """The spaces of the runs this process answers from, loaded from `artifacts` when first
    needed (files fetched from S3 are kept under `cache_dir`). Safe to share between threads.

    `artifacts` None: the server has no artifact store, and every run's space is unavailable.
    `clock` returns seconds and only goes forward (tests pass one they move by hand).
    """

    def __init__(
        self,
        artifacts: ArtifactStore | None,
        cache_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = 5.0,
        runs_per_model: int = RUNS_PER_MODEL,
    ) -> None:
        self.artifacts = artifacts
        self.cache_dir = cache_dir
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.runs_per_model = max(1, runs_per_model)
        self.loads = 0  # artifacts loaded by this process (tests count them)
        self._lock = threading.Lock()
        self._loaded: dict[str, OrderedDict[str, Loaded]] = {}  # model -> run id -> loaded
        self._failed: dict[tuple[str, str], _Failure] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, run: Run) -> Loaded:
        """Return the run's loaded space; ArtifactUnavailable naming the run if it cannot be."""
        key = (run.model_handle, run.run_id)
        with self._lock:
            found = self._cached(key)
            if found is not None:
                return found
            self._raise_if_failed(key)
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per run at a time; the others wait for it
            with self._lock:
                found = self._cached(key)
                if found is not None:
                    return found
                self._raise_if_failed(key)
            try:
                found = self._load(run)
            except ArtifactUnavailable as error:
                with self._lock:
                    now = self.clock()
                    for expired in [k for k, f in self._failed.items() if f.retry_at <= now]:
                        del self._failed[expired]  # runs no longer asked for are forgotten
                    self._failed[key] = _Failure(error.reason, now + self.retry_seconds)
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self.loads += 1
                self._failed.pop(key, None)
                self._loading.pop(key, None)
                runs = self._loaded.setdefault(run.model_handle, OrderedDict())
                runs[run.run_id] = found
                while len(runs) > self.runs_per_model:
                    runs.popitem(last=False)
            return found

    def _cached(self, key: tuple[str, str]) -> Loaded | None:
        runs = self._loaded.get(key[0])
        found = None if runs is None else runs.get(key[1])
        if found is not None and runs is not None:
            runs.move_to_end(key[1])
        return found

    def _raise_if_failed(self, key: tuple[str, str]) -> None:
        failure = self._failed.get(key)
        if failure is not None:
            if self.clock() < failure.retry_at:
                raise ArtifactUnavailable(key[0], key[1], failure.reason)
            del self._failed[key]

    def _load(self, run: Run) -> Loaded:
        """Fetch, verify and map the run's artifact; ArtifactUnavailable saying why not."""
        model, run_id = run.model_handle, run.run_id
        if self.artifacts is None:
            raise ArtifactUnavailable(
                model, run_id, "cannot be loaded: no artifact store is configured"
            )
        if run.artifact is None:
            raise ArtifactUnavailable(
                model, run_id, "has no model artifact (published without one)"
            )
        try:
            artifact = Artifact.from_record(run.artifact)
            folder = self.artifacts.fetch(artifact, self._cache_dir())
        except ArtifactMissingError as error:
            log.error("run %s of model %r: %s", run_id, model, error)
            raise ArtifactUnavailable(
                model, run_id, "has a model artifact that is missing"
            ) from None
        except ArtifactCorruptError as error:
            log.error("run %s of model %r: %s", run_id, model, error)
            raise ArtifactUnavailable(
                model, run_id, "has a model artifact that is corrupt (its checksum differs)"
            ) from None
        except ArtifactError as error:  # unreachable store, malformed record, unwritable cache
            log.error("run %s of model %r: %s", run_id, model, error)
            raise ArtifactUnavailable(
                model, run_id, "has a model artifact that cannot be read"
            ) from None
        try:
            space = ModelSpace.load(folder)
        # What files that passed their checksums yet are not a space of this format raise.
        except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
            log.error(
                "run %s of model %r: %s holds no readable space: %r", run_id, model, folder, error
            )
            raise ArtifactUnavailable(
                model, run_id, "has a model artifact that is not a space this server can read"
            ) from None
        if space.model_handle != model:
            log.error(
                "run %s of model %r: its artifact is of model %r", run_id, model, space.model_handle
            )
            raise ArtifactUnavailable(model, run_id, "has a model artifact of another model")
        log.info("loaded the space of run %s of model %r from %s", run_id, model, folder)
        return Loaded(run_id, space, vocabularies(space))

    def _cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        return Path(tempfile.gettempdir()) / DEFAULT_CACHE_FOLDER
