"""The store's two DynamoDB tables and their items, as pure functions: the item is the interface.

``<prefix>`` (results): one item per (model, run, user). Key ``pk`` (S)
``"<model_handle>#<run_id>#<shard>"`` and ``user_handle`` (N); the list in ``similar_users`` (S)
as compact JSON ``[[user_handle, score], ...]``, best first. One string rather than DynamoDB lists
or maps keeps an item of 50 neighbours near one write unit. Which neighbours are mutual is in
``mutual`` (S): a bitmask in lower-case hexadecimal whose bit i (of value 2**i) is set when the
i-th neighbour is, e.g. ``"5"`` for the first and the third; absent when none is. That is at most
13 characters for 50 neighbours, where a list of positions would often push an item past a write
unit, and it leaves ``similar_users`` as it was, so items written before it (read as no neighbour
mutual) and servers that predate it both still read. A run's items are spread over ``run.shards``
keys so bulk writes and hot reads are not held to one partition, and a whole run can still be
found (and deleted) by querying its shards.

``<prefix>_runs`` (runs): one record per (``model_handle``, ``run_id``), and per model a pointer
item whose ``run_id`` is `POINTER` and whose ``current_run_id`` names the published run, with a
copy of its metadata so the server needs one read.

Scores are written as fixed-precision decimal text (what ``Decimal`` would send) and come back as
``float``. No boto3 here: benchmarks and tests build items without the store.
"""

from __future__ import annotations

import json
import re
from typing import Any

from store import SCORE_DECIMALS, Neighbour, NeighbourList, Run, StoreError, shard_of

__all__ = [
    "POINTER",
    "from_item",
    "pointer_item",
    "results_key",
    "run_from_item",
    "run_to_item",
    "table_definitions",
    "to_item",
]

POINTER = "CURRENT"  # the run_id of a model's pointer item in the runs table


def results_key(model_handle: str, run_id: str, user_handle: int, shards: int) -> dict[str, Any]:
    """Return the primary key of a user's result item in a run."""
    pk = f"{model_handle}#{run_id}#{shard_of(user_handle, shards)}"
    return {"pk": {"S": pk}, "user_handle": {"N": str(user_handle)}}


def to_item(run: Run, neighbour_list: NeighbourList) -> dict[str, Any]:
    """Return the DynamoDB item for one user's neighbour list in a run."""
    item = results_key(run.model_handle, run.run_id, neighbour_list.user_handle, run.shards)
    pairs = ",".join(
        f"[{n.user_handle},{n.score:.{SCORE_DECIMALS}f}]" for n in neighbour_list.neighbours
    )
    item["similar_users"] = {"S": f"[{pairs}]"}
    mutual = sum(1 << at for at, n in enumerate(neighbour_list.neighbours) if n.mutual)
    if mutual:
        item["mutual"] = {"S": f"{mutual:x}"}
    return item


# What decoding an item that is not one of ours raises (RecursionError: JSON nested too deep).
_MALFORMED = (KeyError, TypeError, ValueError, RecursionError)


_HEX = re.compile(r"[0-9a-f]+")  # used with fullmatch; int(..., 16) alone also takes "0x", "_"


def from_item(item: dict[str, Any]) -> NeighbourList:
    """Return the neighbour list held by a DynamoDB result item; StoreError if it is malformed."""
    try:
        pairs = json.loads(item["similar_users"]["S"])
        mutual = _mutual(item["mutual"]["S"], len(pairs)) if "mutual" in item else 0
        neighbours = tuple(
            Neighbour(int(h), float(s), bool(mutual >> at & 1)) for at, (h, s) in enumerate(pairs)
        )
        return NeighbourList(user_handle=int(item["user_handle"]["N"]), neighbours=neighbours)
    except _MALFORMED as error:
        raise StoreError(f"a result item is malformed ({type(error).__name__})") from None


def _mutual(bits: str, neighbours: int) -> int:
    """Return the bitmask of mutual neighbours an item holds; ValueError if it is not one."""
    if not _HEX.fullmatch(bits):
        raise ValueError("the mutual neighbours are not a hexadecimal bitmask")
    mutual = int(bits, 16)
    if mutual >> neighbours:
        raise ValueError("a mutual neighbour is past the end of the list")
    return mutual


def run_to_item(run: Run) -> dict[str, Any]:
    """Return the DynamoDB run record of a run (quality, export and artifact only when known)."""
    item = {
        "model_handle": {"S": run.model_handle},
        "run_id": {"S": run.run_id},
        "generated_at": {"S": run.generated_at},
        "status": {"S": run.status},
        "top_n": {"N": str(run.top_n)},
        "shards": {"N": str(run.shards)},
        "user_count": {"N": str(run.user_count)},
        "settings": {"S": json.dumps(run.settings, sort_keys=True)},
    }
    for name in ("quality", "export", "artifact"):
        value = getattr(run, name)
        if value is not None:
            item[name] = {"S": json.dumps(value, sort_keys=True)}
    return item


def run_from_item(item: dict[str, Any]) -> Run:
    """Return the run described by a run record or a pointer item; StoreError if malformed."""
    try:
        return _run_from_item(item)
    except _MALFORMED as error:
        raise StoreError(f"a run record is malformed ({type(error).__name__})") from None


def _run_from_item(item: dict[str, Any]) -> Run:
    run_id = item["current_run_id"]["S"] if "current_run_id" in item else item["run_id"]["S"]
    return Run(
        model_handle=item["model_handle"]["S"],
        run_id=run_id,
        generated_at=item["generated_at"]["S"],
        status=item["status"]["S"],
        top_n=int(item["top_n"]["N"]),
        shards=int(item["shards"]["N"]),
        user_count=int(item["user_count"]["N"]),
        settings=json.loads(item["settings"]["S"]),
        quality=json.loads(item["quality"]["S"]) if "quality" in item else None,
        export=json.loads(item["export"]["S"]) if "export" in item else None,
        artifact=json.loads(item["artifact"]["S"]) if "artifact" in item else None,
    )


def pointer_item(run: Run) -> dict[str, Any]:
    """Return the pointer item that makes a run its model's current one."""
    item = run_to_item(run)
    item["run_id"] = {"S": POINTER}
    item["current_run_id"] = {"S": run.run_id}
    return item


def table_definitions(prefix: str) -> list[dict[str, Any]]:
    """Return the CreateTable arguments of the store's two tables (on-demand capacity)."""
    return [
        _table(prefix, ("pk", "S"), ("user_handle", "N")),
        _table(f"{prefix}_runs", ("model_handle", "S"), ("run_id", "S")),
    ]


def _table(name: str, hash_key: tuple[str, str], range_key: tuple[str, str]) -> dict[str, Any]:
    """Return the CreateTable arguments of an on-demand table keyed by (name, type) pairs."""
    keys = [(hash_key, "HASH"), (range_key, "RANGE")]
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": key, "KeyType": role} for (key, _), role in keys],
        "AttributeDefinitions": [
            {"AttributeName": key, "AttributeType": kind} for (key, kind), _ in keys
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
