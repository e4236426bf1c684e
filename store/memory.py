"""An in-memory neighbour store: a real implementation with the same behaviour as DynamoDB's."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from store import (
    IncompleteWriteError,
    NeighbourList,
    Run,
    RunStatus,
    StaleRunError,
    StoreError,
    rollback_target,
)


class MemoryStore:
    """Keep runs, lists and pointers in dictionaries; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], Run] = {}
        self._lists: dict[tuple[str, str], dict[int, NeighbourList]] = {}
        self._pointers: dict[str, str] = {}

    def ensure_tables(self) -> None:
        """Nothing to create: the dictionaries exist from the start."""

    def begin_run(self, run: Run) -> None:
        with self._lock:
            key = (run.model_handle, run.run_id)
            if key in self._runs:
                raise StoreError(f"run {run.run_id} of model {run.model_handle!r} already exists")
            self._runs[key] = replace(run, status=RunStatus.WRITING)
            self._lists[key] = {}

    def write_lists(self, run: Run, lists: Iterable[NeighbourList], part: str | None = None) -> int:
        # Lists are kept by user, so writing a part again replaces it: nothing to count apart.
        key = (run.model_handle, run.run_id)
        written = 0
        for neighbour_list in lists:
            with self._lock:
                if key not in self._lists:
                    raise IncompleteWriteError(f"run {run.run_id} was never begun")
                self._lists[key][neighbour_list.user_handle] = neighbour_list
            written += 1
        return written

    def publish(self, run: Run, expected_users: int) -> Run:
        key = (run.model_handle, run.run_id)
        with self._lock:
            stored = len(self._lists.get(key, {}))
            if stored != expected_users:
                raise IncompleteWriteError(
                    f"run {run.run_id} of model {run.model_handle!r} holds {stored} lists, "
                    f"expected {expected_users}"
                )
            if self._runs[key].status != RunStatus.WRITING:
                raise StaleRunError(
                    f"run {run.run_id} of model {run.model_handle!r} is "
                    f"{self._runs[key].status}, not being written"
                )
            current = self._pointers.get(run.model_handle)
            if current is not None and current >= run.run_id:
                raise StaleRunError(
                    f"model {run.model_handle!r}: run {current} is current and not older than "
                    f"{run.run_id}"
                )
            record = self._runs[key]
            published = replace(
                record,
                status=RunStatus.PUBLISHED,
                user_count=expected_users,
                artifact=record.artifact if run.artifact is None else run.artifact,
            )
            self._runs[key] = published
            self._pointers[run.model_handle] = run.run_id
            return published

    def current_run(self, model_handle: str) -> Run | None:
        with self._lock:
            run_id = self._pointers.get(model_handle)
            return None if run_id is None else self._runs[(model_handle, run_id)]

    def current_runs(self) -> dict[str, Run]:
        with self._lock:
            return {m: self._runs[(m, r)] for m, r in sorted(self._pointers.items())}

    def runs(self, model_handle: str) -> list[Run]:
        with self._lock:
            found = [r for (m, _), r in self._runs.items() if m == model_handle]
        return sorted(found, key=lambda r: r.run_id)

    def get_list(self, run: Run, user_handle: int) -> NeighbourList | None:
        with self._lock:
            return self._lists.get((run.model_handle, run.run_id), {}).get(user_handle)

    def delete_run(self, run: Run) -> int:
        key = (run.model_handle, run.run_id)
        with self._lock:  # marking it deleting and deleting it are one step here
            if self._pointers.get(run.model_handle) == run.run_id:
                raise StoreError(f"run {run.run_id} of model {run.model_handle!r} is current")
            self._runs.pop(key, None)
            return len(self._lists.pop(key, {}))

    def retire(self, run: Run) -> bool:
        with self._lock:
            if self._pointers.get(run.model_handle) != run.run_id:
                return False
            del self._pointers[run.model_handle]
            key = (run.model_handle, run.run_id)
            self._runs[key] = replace(self._runs[key], status=RunStatus.RETIRED)
            return True

    def rollback(self, model_handle: str) -> Run:
        with self._lock:
            current = self._pointers.get(model_handle)
            if current is None:
                raise StoreError(f"model {model_handle!r} has no published run to roll back")
            runs = [r for (m, _), r in self._runs.items() if m == model_handle]
            target = rollback_target(runs, current)
            if target is None:
                raise StoreError(f"model {model_handle!r} has no earlier published run")
            key = (model_handle, current)
            self._runs[key] = replace(self._runs[key], status=RunStatus.ROLLED_BACK)
            self._pointers[model_handle] = target.run_id
            return target
