"""Run `run_generator.py` with faults injected into its DynamoDB client, for the fault tests only.

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

The generator's store comes from `connect`, handed to `run_generator.main`: the store
`run_generator.connect_store` makes, on a `FaultyClient`, without a fast path so that every call
goes through that client.
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


def die() -> None:
    """Stop at once, as a killed process does: no cleanup, no flush, no exit code of our own."""
    os.kill(os.getpid(), signal.SIGKILL)


class FaultyClient:
    """A DynamoDB client that dies or fails at the chosen point and passes every other call on.

    A batch of the results table is a write if it puts items, and a cleanup if it deletes them.
    """

    def __init__(self, client: Any, results_table: str, kill_point: str, store_fault: str) -> None:
        self.client = client
        self.results_table = results_table
        where, _, count = kill_point.partition(":")
        self.where = where
        self.at = int(count) if count else 0
        self.store_fault = store_fault
        self.batches = {"write": 0, "cleanup": 0}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_write_item(self, **kwargs: Any) -> Any:
        requests = kwargs["RequestItems"].get(self.results_table)
        if requests:
            kind = "cleanup" if "DeleteRequest" in requests[0] else "write"
            with self._lock:
                self.batches[kind] += 1
                reached = self.where == kind and self.batches[kind] == self.at
            if reached:
                die()
            if self.store_fault == "unprocessed":
                return {"UnprocessedItems": kwargs["RequestItems"]}
            if self.store_fault == "throttling":
                error = {
                    "Code": "ProvisionedThroughputExceededException",
                    "Message": "The level of configured provisioned throughput was exceeded",
                }
                raise ClientError({"Error": error}, "BatchWriteItem")
        return self.client.batch_write_item(**kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        # The generator's one transaction moves the pointer to a run whose lists are all counted.
        if self.where == "publish":
            die()
        return self.client.transact_write_items(**kwargs)


def connector(kill_point: str, store_fault: str) -> run_generator.Connect:
    """Return the generator's `connect`: its own store, on a FaultyClient, without a fast path."""

    def connect(config: run_generator.GeneratorConfig) -> DynamoStore:
        store = run_generator.connect_store(config)
        client = FaultyClient(store.client, store.results_table, kill_point, store_fault)
        return DynamoStore(
            client,
            table_prefix=store.table_prefix,
            writers=store.writers,
            backoff_base=0.001 if store_fault else store.backoff_base,
            fast_path=None,
        )

    return connect


if __name__ == "__main__":
    connect = connector(os.environ.get("KILL_POINT", ""), os.environ.get("STORE_FAULT", ""))
    sys.exit(run_generator.main(sys.argv[1:], env=os.environ, connect=connect))
