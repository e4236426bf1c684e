"""Every user's best neighbours on Spark: block × block products, merged per user; mutual marks.

Each task takes two blocks of a model's rows (the users with evidence in them) and finds, for
each row of the first, its n best rows of the second with the local search's kernel
(`block_top_n`: exact, scores rounded to the store's precision, ties by lower handle; against
itself a row is never its own neighbour). The parts of one block's users are merged as they
arrive (`merge_top_n`: by rounded score, then lower handle), so each user ends with exactly the
list the local engine's `top_n` gives. A task holds two blocks, never the whole matrix.

Mutual marks need each neighbour's own list: each block asks the blocks of its users'
neighbours whether they list the user back (one shuffle there, one back), as `pipeline.mutual`
does within one machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from generator.spark.rows import Blocks, RowsRDD
from similarity.neighbours import block_top_n, merge_top_n


@dataclass(frozen=True)
class Lists:
    """One block's users with evidence and their neighbours (handles, best first, -1 after the
    last), scores and, once marked, whether each neighbour lists the user back."""

    users: np.ndarray  # int64
    near: np.ndarray  # users × n, int64
    scores: np.ndarray  # users × n, float32
    mutual: np.ndarray | None = None  # users × n, bool


def searched_rows(rows: RowsRDD, blocks: Blocks) -> Any:
    """Return each block's users with evidence and their rows: (block, (handles, rows))."""
    handles = rows.context.broadcast(blocks.handles)
    starts = blocks.starts

    def present(pair: tuple[int, sp.csr_matrix]) -> tuple[int, tuple[np.ndarray, sp.csr_matrix]]:
        block, matrix = pair
        users = handles.value[starts[block] : starts[block + 1]]
        kept = np.flatnonzero(np.diff(matrix.indptr) > 0)
        return block, (users[kept], sp.csr_matrix(matrix[kept]))

    return rows.map(present, preservesPartitioning=True)


def neighbours(searched: Any, n: int, negative: bool, blocks: int) -> Any:
    """Return every block's users' n best neighbours: an RDD of (block, Lists)."""

    def pair_top_n(
        pair: tuple[tuple[int, Any], tuple[int, Any]],
    ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        (i, (users, rows)), (j, (others, columns)) = pair
        if not len(users) or not len(others):
            return
        found = block_top_n(rows, None if i == j else columns, n, negative=negative, threads=1)
        near = np.where(found.rows >= 0, others[np.maximum(found.rows, 0)], -1)
        yield i, (users, near, found.scores)

    def merged(
        a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        near, scores = merge_top_n([(a[1], a[2]), (b[1], b[2])], n)
        return a[0], near, scores

    found = (
        searched.cartesian(searched)
        .flatMap(pair_top_n)
        .reduceByKey(merged, blocks, partitionFunc=_identity)
    )
    empty = searched.mapValues(
        lambda part: Lists(part[0], np.full((0, n), -1, np.int64), np.zeros((0, n), np.float32))
    )

    def lists(pair: tuple[int, tuple[Iterable[Lists], Iterable[Any]]]) -> tuple[int, Lists]:
        block, (nobody, found_parts) = pair
        parts = list(found_parts)
        if not parts:  # no user with evidence in this block
            return block, next(iter(nobody))
        users, near, scores = parts[0]
        return block, Lists(users, near, scores)

    return empty.cogroup(found, blocks).map(lists, preservesPartitioning=True)


def marked_mutual(lists: Any, blocks: Blocks) -> Any:
    """Return the lists with each neighbour marked mutual when it lists the user back."""
    count = blocks.count
    firsts = blocks.handles[blocks.starts[:-1]]  # each block's first handle: all a task needs

    def asks(pair: tuple[int, Lists]) -> Iterator[tuple[int, pd.DataFrame]]:
        block, found = pair
        if not len(found.users):
            return
        n = found.near.shape[1]
        slot = np.arange(found.near.size)
        listed = found.near.ravel()
        valid = listed >= 0
        frame = pd.DataFrame(
            {
                "asker": np.full(int(valid.sum()), block, dtype=np.int64),
                "slot": slot[valid],
                "user": np.repeat(found.users, n)[valid],
                "neighbour": listed[valid],
            }
        )
        targets = np.searchsorted(firsts, frame["neighbour"].to_numpy(), side="right") - 1
        for target in np.unique(targets).tolist():
            yield target, frame[targets == target]

    def answers(
        pair: tuple[int, tuple[Iterable[pd.DataFrame], Iterable[Lists]]],
    ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        _, (asked, own) = pair
        mine = list(own)
        questions = list(asked)
        if not questions or not mine:
            return
        found = mine[0]
        n = found.near.shape[1]
        listed = found.near.ravel()
        theirs = pd.DataFrame(
            {"neighbour": np.repeat(found.users, n)[listed >= 0], "user": listed[listed >= 0]}
        ).assign(back=True)
        frame = pd.concat(questions, ignore_index=True)
        joined = frame.merge(theirs, on=["neighbour", "user"], how="left")
        back = joined["back"].notna().to_numpy()
        askers = joined["asker"].to_numpy()
        slots = joined["slot"].to_numpy()
        for asker in np.unique(askers).tolist():
            asked_by = askers == asker
            yield asker, (slots[asked_by], back[asked_by])

    answered = lists.flatMap(asks).cogroup(lists, count).flatMap(answers)

    def marked(pair: tuple[int, tuple[Iterable[Lists], Iterable[Any]]]) -> tuple[int, Lists]:
        block, (own, replies) = pair
        found = next(iter(own))
        mutual = np.zeros(found.near.shape, dtype=bool)
        flat = mutual.reshape(-1)
        for slots, back in replies:
            flat[slots] = back
        return block, Lists(found.users, found.near, found.scores, mutual)

    return lists.cogroup(answered, count).map(marked, preservesPartitioning=True)


def _identity(block: int) -> int:
    """Partition block b into partition b (as `rows` does, so no pairing reshuffles)."""
    return block


__all__ = ["Lists", "marked_mutual", "neighbours", "searched_rows"]
