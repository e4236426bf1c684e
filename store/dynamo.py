"""The DynamoDB neighbour store: the only module that talks to AWS (with its `store.fast_path`).

Items and tables are defined in `store.items`. Lists are written by parallel batch writers that
retry unprocessed items with jittered backoff and fail loudly; the pointer only moves forward, in
one transaction with the run record's change to ``published``. ``GetItem`` and ``BatchWriteItem``
go through a `store.fast_path.FastPath` when the store has one; every other call, and any fast call
that does not come back as a clean answer, goes through the boto3 client the store was given.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from itertools import islice
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from store import (
    IncompleteWriteError,
    NeighbourList,
    Run,
    RunStatus,
    StaleRunError,
    StoreConfigError,
    StoreError,
    StoreUnavailableError,
    rollback_target,
)
from store.fast_path import OPERATIONS as FAST_OPERATIONS
from store.fast_path import FastPath
from store.items import (
    POINTER,
    from_item,
    pointer_item,
    results_key,
    run_from_item,
    run_to_item,
    table_definitions,
    to_item,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 25  # DynamoDB's limit for BatchWriteItem
_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}
T = TypeVar("T")


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _pointer_key(model_handle: str) -> dict[str, Any]:
    """Return the key of a model's pointer item in the runs table."""
    return {"model_handle": {"S": model_handle}, "run_id": {"S": POINTER}}


def _failed_conditions(error: ClientError) -> list[int]:
    """Return the positions of a cancelled transaction's items whose condition failed."""
    reasons = error.response.get("CancellationReasons", [])
    return [i for i, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"]


def no_region(endpoint_url: str | None) -> str:
    """Say how to set the AWS region that boto3 could not find."""
    if endpoint_url is not None:
        return (
            f"no AWS region is set for the DynamoDB endpoint {endpoint_url}: set "
            "AWS_DEFAULT_REGION (any region works with DynamoDB Local, e.g. us-east-1; "
            "`cp example.env .env` sets one)"
        )
    return "no AWS region is set: set AWS_REGION or AWS_DEFAULT_REGION (e.g. us-east-1)"


class DynamoStore:
    """Keep runs of neighbour lists in DynamoDB through a boto3 client, or anything shaped like it.

    Faults and time are inputs: a test hands in a client that fails as DynamoDB does (with no
    ``fast_path``, every call goes through it), and a ``sleep`` and ``jitter`` that the backoff
    between write attempts uses (``jitter(0, ceiling)`` seconds, ceiling doubling per attempt).
    """

    def __init__(
        self,
        client: Any,
        table_prefix: str = "similar_users",
        writers: int = 8,
        max_write_attempts: int = 8,
        backoff_base: float = 0.05,
        backoff_cap: float = 5.0,
        fast_path: FastPath | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.client = client
        self.fast_path = fast_path
        self.sleep = sleep
        self.jitter = jitter
        self.results_table = table_prefix
        self.runs_table = f"{table_prefix}_runs"
        self.table_prefix = table_prefix
        self.writers = writers
        self.max_write_attempts = max_write_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    @classmethod
    def connect(
        cls,
        table_prefix: str = "similar_users",
        region: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 5,
        writers: int = 8,
        fast_path: bool = True,
        credentials: tuple[str, str, str | None] | None = None,
    ) -> DynamoStore:
        """Return a store on a new boto3 client, with a `FastPath` beside it unless told not to.

        With no ``endpoint_url`` boto3 takes ``AWS_ENDPOINT_URL_DYNAMODB`` if set (DynamoDB Local),
        else real AWS; the region and ``credentials`` (key id, secret, session token) not given
        come from boto3's usual chain. Raises StoreConfigError when no region can be found. moto
        intercepts boto3's requests only, so a store on moto needs ``fast_path=False``.
        """
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max(10, writers * 2),
            # Every request is built by this module; client-side validation of each 25-item batch
            # cost about 15% of publishing throughput, and DynamoDB validates again anyway.
            parameter_validation=False,
        )
        session = botocore.session.Session()
        key_id, secret, token = credentials or (None, None, None)
        try:
            client = boto3.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                botocore_session=session,
                region_name=region,
            ).client("dynamodb", endpoint_url=endpoint_url, config=config)
        except NoRegionError:
            raise StoreConfigError(no_region(endpoint_url)) from None
        fast = None
        if fast_path:
            ca_bundle = session.get_config_variable("ca_bundle")
            fast = FastPath.for_client(client, session.get_credentials(), ca_bundle)
        return cls(client, table_prefix=table_prefix, writers=writers, fast_path=fast)

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Call a DynamoDB operation, turning connection failures into StoreUnavailableError."""
        if self.fast_path is not None and operation in FAST_OPERATIONS:
            answer = self.fast_path.call(operation, kwargs)
            if answer is not None:
                return answer
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError:
            raise
        except (BotoCoreError, RuntimeError) as error:
            # RuntimeError: botocore's "refreshed credentials are still expired", and its parser's
            # RecursionError on an answer nested too deep.
            raise StoreUnavailableError(f"DynamoDB {operation} failed: {error}") from error

    def ensure_tables(self) -> None:
        """Create the store's tables if they do not exist, and wait until they are active."""
        for definition in table_definitions(self.table_prefix):
            name = definition["TableName"]
            try:
                self._call("describe_table", TableName=name)
                continue
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise StoreError(f"cannot describe table {name}: {error}") from error
            try:
                self._call("create_table", **definition)
                log.info("created DynamoDB table %s", name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceInUseException":
                    raise StoreError(f"cannot create table {name}: {error}") from error
            self.client.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )

    def _backoff(self, attempt: int) -> None:
        # Full jitter: spreads retries of parallel writers instead of synchronising them.
        self.sleep(self.jitter(0, min(self.backoff_cap, self.backoff_base * 2**attempt)))

    def _batch_write(self, table: str, requests: list[dict[str, Any]]) -> None:
        """Write up to 25 requests, retrying unprocessed ones; raise IncompleteWriteError."""
        pending = requests
        last = "unprocessed items"
        for attempt in range(self.max_write_attempts):
            try:
                answer = self._call("batch_write_item", RequestItems={table: pending})
            except ClientError as error:
                last = error.response["Error"]["Code"]
                if last not in _THROTTLING:
                    raise StoreError(f"batch write to {table} refused: {error}") from error
                self._backoff(attempt)
                continue
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                return
            self._backoff(attempt)
        raise IncompleteWriteError(
            f"{len(pending)} items to {table} were still unprocessed after "
            f"{self.max_write_attempts} attempts (last: {last})"
        )

    def _parallel(self, work: Callable[[T], None], batches: Iterable[T]) -> int:
        """Run work over batches on the writer threads, with a bounded number in flight."""
        done = 0
        with ThreadPoolExecutor(max_workers=self.writers) as pool:
            in_flight = []
            for batch in batches:
                in_flight.append(pool.submit(work, batch))
                if len(in_flight) >= self.writers * 4:
                    in_flight.pop(0).result()
                    done += 1
            for future in in_flight:
                future.result()
                done += 1
        return done

    # -- NeighbourStore -------------------------------------------------------------------------

    def begin_run(self, run: Run) -> None:
        item = run_to_item(replace(run, status=RunStatus.WRITING))
        # How many lists each write_lists call wrote, by a token of the call: setting a call's
        # count again (botocore retrying an UpdateItem that did apply) cannot double it, as ADD can.
        item["lists_written"] = {"M": {}}
        try:
            self._call(
                "put_item",
                TableName=self.runs_table,
                Item=item,
                ConditionExpression="attribute_not_exists(run_id)",
            )
        except ClientError as error:
            raise StoreError(f"cannot begin run {run.run_id}: {error}") from error

    def write_lists(self, run: Run, lists: Iterable[NeighbourList], part: str | None = None) -> int:
        written = 0

        def write(batch: list[NeighbourList]) -> None:
            requests = [{"PutRequest": {"Item": to_item(run, nl)}} for nl in batch]
            self._batch_write(self.results_table, requests)

        def counted(batches: Iterator[list[NeighbourList]]) -> Iterator[list[NeighbourList]]:
            nonlocal written
            for batch in batches:
                written += len(batch)
                yield batch

        self._parallel(write, counted(_batches(lists, BATCH_SIZE)))
        try:
            self._call(
                "update_item",
                TableName=self.runs_table,
                Key=self._run_key(run),
                UpdateExpression="SET lists_written.#call = :n",
                ConditionExpression="attribute_exists(run_id)",
                # A part's count is kept under its name (a retried task sets it again, never
                # twice), a call's without one under a token of its own.
                ExpressionAttributeNames={
                    "#call": f"part:{part}" if part is not None else secrets.token_hex(8)
                },
                ExpressionAttributeValues={":n": {"N": str(written)}},
            )
        except ClientError as error:
            raise IncompleteWriteError(
                f"cannot record the lists of run {run.run_id}: {error}"
            ) from error
        return written

    def publish(self, run: Run, expected_users: int) -> Run:
        key = self._run_key(run)
        record = self._call("get_item", TableName=self.runs_table, Key=key, ConsistentRead=True)
        if "Item" not in record:
            raise IncompleteWriteError(
                f"run {run.run_id} of model {run.model_handle!r} was never begun"
            )
        written = sum(int(count["N"]) for count in record["Item"]["lists_written"]["M"].values())
        if written != expected_users:
            raise IncompleteWriteError(
                f"run {run.run_id} of model {run.model_handle!r} holds {written} lists, "
                f"expected {expected_users}"
            )
        stored = run_from_item(record["Item"])
        published = replace(
            stored,
            status=RunStatus.PUBLISHED,
            user_count=expected_users,
            artifact=stored.artifact if run.artifact is None else run.artifact,
        )
        pointer = pointer_item(published)
        # The artifact may be written after the run was begun: the run handed in records it.
        recorded = "SET #s = :published, user_count = :users"
        values = {
            ":published": {"S": RunStatus.PUBLISHED},
            ":writing": {"S": RunStatus.WRITING},
            ":users": {"N": str(expected_users)},
        }
        if run.artifact is not None:
            recorded += ", artifact = :artifact"
            values[":artifact"] = pointer["artifact"]
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.runs_table,
                            "Item": pointer,
                            "ConditionExpression": (
                                "attribute_not_exists(current_run_id) OR current_run_id < :new"
                            ),
                            "ExpressionAttributeValues": {":new": {"S": run.run_id}},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.runs_table,
                            "Key": key,
                            "UpdateExpression": recorded,
                            "ConditionExpression": "#s = :writing",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": values,
                        }
                    },
                ],
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                latest = self.current_run(run.model_handle)
                raise StaleRunError(
                    f"model {run.model_handle!r}: run "
                    f"{latest.run_id if latest else '?'} is current and not older than {run.run_id}"
                ) from error
            raise StoreError(f"cannot publish run {run.run_id}: {error}") from error
        return published

    def rollback(self, model_handle: str) -> Run:
        current = self.current_run(model_handle)
        if current is None:
            raise StoreError(f"model {model_handle!r} has no published run to roll back")
        target = rollback_target(self.runs(model_handle), current.run_id)
        if target is None:
            raise StoreError(f"model {model_handle!r} has no earlier published run")
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.runs_table,
                            "Item": pointer_item(target),
                            "ConditionExpression": "current_run_id = :current",
                            "ExpressionAttributeValues": {":current": {"S": current.run_id}},
                        }
                    },
                    self._status_update(current, RunStatus.ROLLED_BACK),
                    {
                        # Never back onto a run a cleanup has begun to delete.
                        "ConditionCheck": {
                            "TableName": self.runs_table,
                            "Key": self._run_key(target),
                            "ConditionExpression": "#s = :published",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":published": {"S": RunStatus.PUBLISHED}},
                        }
                    },
                ],
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                if _failed_conditions(error) == [2]:
                    raise StaleRunError(
                        f"model {model_handle!r}: run {target.run_id}, the one to go back to, "
                        "began to be deleted during the rollback; nothing changed"
                    ) from error
                raise StaleRunError(
                    f"model {model_handle!r}: the current run changed during the rollback"
                ) from error
            raise StoreError(f"cannot roll back model {model_handle!r}: {error}") from error
        return target

    def retire(self, run: Run) -> bool:
        pointer_key = _pointer_key(run.model_handle)
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.runs_table,
                            "Key": pointer_key,
                            "ConditionExpression": "current_run_id = :run",
                            "ExpressionAttributeValues": {":run": {"S": run.run_id}},
                        }
                    },
                    self._status_update(run, RunStatus.RETIRED),
                ],
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False  # another run is current by now: it stays
            raise StoreError(f"cannot retire run {run.run_id}: {error}") from error
        return True

    def current_run(self, model_handle: str) -> Run | None:
        key = _pointer_key(model_handle)
        try:
            answer = self._call("get_item", TableName=self.runs_table, Key=key)
        except ClientError as error:
            raise self._read_error(error) from error
        return run_from_item(answer["Item"]) if "Item" in answer else None

    def current_runs(self) -> dict[str, Run]:
        runs: dict[str, Run] = {}
        for item in self._pages(
            "scan",
            TableName=self.runs_table,
            FilterExpression="run_id = :pointer",
            ExpressionAttributeValues={":pointer": {"S": POINTER}},
        ):
            run = run_from_item(item)
            runs[run.model_handle] = run
        return dict(sorted(runs.items()))

    def runs(self, model_handle: str) -> list[Run]:
        items = self._pages(
            "query",
            TableName=self.runs_table,
            KeyConditionExpression="model_handle = :m",
            ExpressionAttributeValues={":m": {"S": model_handle}},
        )
        return [run_from_item(item) for item in items if item["run_id"]["S"] != POINTER]

    def get_list(self, run: Run, user_handle: int) -> NeighbourList | None:
        key = results_key(run.model_handle, run.run_id, user_handle, run.shards)
        try:
            answer = self._call("get_item", TableName=self.results_table, Key=key)
        except ClientError as error:
            raise self._read_error(error) from error
        return from_item(answer["Item"]) if "Item" in answer else None

    def delete_run(self, run: Run) -> int:
        if not self._mark_deleting(run):
            return 0  # no record: nothing was ever written under it, or it is deleted already

        def keys() -> Iterator[dict[str, Any]]:
            for shard in range(run.shards):
                yield from self._pages(
                    "query",
                    TableName=self.results_table,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={
                        ":pk": {"S": f"{run.model_handle}#{run.run_id}#{shard}"}
                    },
                    ProjectionExpression="pk, user_handle",
                )

        deleted = 0

        def delete(batch: list[dict[str, Any]]) -> None:
            self._batch_write(self.results_table, [{"DeleteRequest": {"Key": k}} for k in batch])

        def counted(batches: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
            nonlocal deleted
            for batch in batches:
                deleted += len(batch)
                yield batch

        self._parallel(delete, counted(_batches(keys(), BATCH_SIZE)))
        try:
            self._call("delete_item", TableName=self.runs_table, Key=self._run_key(run))
        except ClientError as error:
            raise StoreError(f"cannot delete the record of run {run.run_id}: {error}") from error
        return deleted

    def _mark_deleting(self, run: Run) -> bool:
        """Mark a run deleting if it is not current (else StoreError); False if it has no record."""
        pointer_key = _pointer_key(run.model_handle)
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.runs_table,
                            "Key": pointer_key,
                            "ConditionExpression": (
                                "attribute_not_exists(current_run_id) OR current_run_id <> :run"
                            ),
                            "ExpressionAttributeValues": {":run": {"S": run.run_id}},
                        }
                    },
                    self._status_update(run, RunStatus.DELETING),
                ],
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise StoreError(f"cannot mark run {run.run_id} deleting: {error}") from error
            if _failed_conditions(error) == [1]:
                return False
            raise StoreError(f"run {run.run_id} of model {run.model_handle!r} is current") from None
        return True

    def _status_update(self, run: Run, status: str) -> dict[str, Any]:
        """Return the transaction item that sets the status of a run whose record exists."""
        return {
            "Update": {
                "TableName": self.runs_table,
                "Key": self._run_key(run),
                "UpdateExpression": "SET #s = :status",
                "ConditionExpression": "attribute_exists(run_id)",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":status": {"S": status}},
            }
        }

    @staticmethod
    def _run_key(run: Run) -> dict[str, Any]:
        return {"model_handle": {"S": run.model_handle}, "run_id": {"S": run.run_id}}

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield every item of a paginated query or scan."""
        while True:
            try:
                answer = self._call(operation, **kwargs)
            except ClientError as error:
                raise self._read_error(error) from error
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _read_error(self, error: ClientError) -> StoreError:
        code = error.response["Error"]["Code"]
        if code == "ResourceNotFoundException":
            return StoreUnavailableError(f"the store's tables do not exist yet ({code})")
        if code in _THROTTLING:
            return StoreUnavailableError(f"DynamoDB is throttling reads ({code})")
        return StoreError(f"DynamoDB refused a read: {code}")
