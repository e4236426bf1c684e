"""Run `run_generator.py` with faults injected into its DynamoDB store, for the fault tests only.

    python tests/kill_points.py generate ...      (the arguments of run_generator.py)

Two variables, read by this wrapper alone (the product knows nothing of them):

KILL_POINT  the generator SIGKILLs itself, like a machine dying, at one point of publishing:
    ``write:N``      when the N-th batch of neighbour lists is about to be written (during writes);
    ``publish``      after every list is written and counted, before the pointer moves;
    ``cleanup:N``    when the N-th batch of an old run's lists is about to be deleted (cleanup).
STORE_FAULT  every BatchWriteItem of neighbour lists fails the way DynamoDB fails under load:
    ``unprocessed``  answered with every item back in UnprocessedItems;
    ``throttling``   refused with ProvisionedThroughputExceededException.
    Retries back off from 1 ms instead of 50 ms, so that giving up takes well under a second.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import run_generator
from store.dynamo import DynamoStore

_lock = threading.Lock()
_batches = {"write": 0, "cleanup": 0}
_deleting = threading.Event()


def die() -> None:
    """Stop at once, as a killed process does: no cleanup, no flush, no exit code of our own."""
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill_point: str, store_fault: str) -> None:
    """Patch DynamoStore so that the chosen fault happens."""
    where, _, count = kill_point.partition(":")
    at = int(count) if count else 0
    original_batch_write = DynamoStore._batch_write
    original_call = DynamoStore._call
    original_publish = DynamoStore.publish
    original_delete_run = DynamoStore.delete_run
    original_connect = DynamoStore.connect.__func__  # type: ignore[attr-defined]

    def batch_write(self: DynamoStore, table: str, requests: list[dict[str, Any]]) -> None:
        kind = "cleanup" if _deleting.is_set() else "write"
        with _lock:
            _batches[kind] += 1
            reached = where == kind and _batches[kind] == at
        if reached:
            die()
        original_batch_write(self, table, requests)

    def call(self: DynamoStore, operation: str, **kwargs: Any) -> Any:
        if operation == "batch_write_item" and self.results_table in kwargs["RequestItems"]:
            if store_fault == "unprocessed":
                return {"UnprocessedItems": kwargs["RequestItems"]}
            if store_fault == "throttling":
                error = {
                    "Code": "ProvisionedThroughputExceededException",
                    "Message": "The level of configured provisioned throughput was exceeded",
                }
                raise ClientError({"Error": error}, "BatchWriteItem")
        return original_call(self, operation, **kwargs)

    def publish(self: DynamoStore, run: Any, expected_users: int) -> Any:
        if where == "publish":
            die()
        return original_publish(self, run, expected_users)

    def delete_run(self: DynamoStore, run: Any) -> int:
        _deleting.set()
        try:
            return original_delete_run(self, run)
        finally:
            _deleting.clear()

    def connect(cls: type[DynamoStore], *args: Any, **kwargs: Any) -> DynamoStore:
        store: DynamoStore = original_connect(cls, *args, **kwargs)
        if store_fault:
            store.backoff_base = 0.001
        return store

    DynamoStore._batch_write = batch_write  # type: ignore[method-assign]
    DynamoStore._call = call  # type: ignore[method-assign]
    DynamoStore.publish = publish  # type: ignore[method-assign]
    DynamoStore.delete_run = delete_run  # type: ignore[method-assign]
    DynamoStore.connect = classmethod(connect)  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    install(os.environ.get("KILL_POINT", ""), os.environ.get("STORE_FAULT", ""))
    sys.exit(run_generator.main(sys.argv[1:]))
