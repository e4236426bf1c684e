"""Publishing throughput into DynamoDB Local: parallel batch writers against put_item one by one.

    python -m bench.publish [--lists 20000] [--baseline-lists 3000] [--writers 16] [--repeat 3]

Both write the same items (lists of 50 neighbours, the store's own item format) into an in-memory
DynamoDB Local that the script starts on a free loopback port and stops. DynamoDB Local's Java
compiles its hot paths while it runs, so both are measured after the same warm-up. A single
round of either moves by ±20% on a small machine (DynamoDB Local shares its cores), so both run
`--repeat` rounds, interleaved so that drifts touch both alike; each figure is the median over
its rounds (every round's items/s is printed too). The ratio is our median items/s over the
one-at-a-time loop's median.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench.harness import dynamodb, emit, peak_rss_mb, setup_logging, timed
from store import Neighbour, NeighbourList, Run, new_run_id
from store.dynamo import DynamoStore
from store.items import to_item

BENCH = "publish"


def lists(count: int, neighbours: int = 50, seed: int = 0) -> list[NeighbourList]:
    """Return realistic neighbour lists: random handles, scores best first, 6 decimals, half of
    the matches mutual (as in the synthetic exports' runs)."""
    rng = np.random.default_rng(seed)
    handles = rng.integers(1, 10_000_000, size=(count, neighbours)).tolist()
    scores = np.round(-np.sort(-rng.random((count, neighbours))), 6).tolist()
    mutual = (rng.random((count, neighbours)) < 0.5).tolist()
    return [
        NeighbourList(user, tuple(map(Neighbour, handles[user], scores[user], mutual[user])))
        for user in range(count)
    ]


def begun(store: DynamoStore) -> Run:
    """Begin a fresh run to write into."""
    run = Run("bench", new_run_id(), "2026-11-23T00:00:00Z", top_n=50)
    store.begin_run(run)
    return run


def one_at_a_time(store: DynamoStore, run: Run, items: list[NeighbourList]) -> None:
    """The baseline: one put_item per list, one after the other."""
    for neighbour_list in items:
        store.client.put_item(TableName=store.results_table, Item=to_item(run, neighbour_list))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.publish", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--lists", type=int, default=20_000, help="lists our writers publish")
    parser.add_argument("--baseline-lists", type=int, default=3_000, help="lists put one by one")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--warm-up-lists", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of each")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    setup_logging()
    ours_lists = lists(args.lists)
    baseline_seconds: list[float] = []
    ours_seconds: list[float] = []
    with dynamodb(writers=args.writers) as store:
        store.write_lists(begun(store), lists(args.warm_up_lists, seed=1))
        one_at_a_time(store, begun(store), ours_lists[:500])
        for _ in range(args.repeat):
            with timed() as baseline:
                one_at_a_time(store, begun(store), ours_lists[: args.baseline_lists])
            baseline_seconds.append(baseline["seconds"])
            with timed() as ours:
                written = store.write_lists(begun(store), ours_lists)
            ours_seconds.append(ours["seconds"])
    baseline_figures = median_rate(args.baseline_lists, baseline_seconds)
    emit(
        BENCH,
        "put_item one at a time",
        args.baseline_lists,
        **baseline_figures,
        peak_rss_mb=peak_rss_mb(),
        baseline=None,
    )
    figures = median_rate(written, ours_seconds)
    emit(
        BENCH,
        f"batch writers x{args.writers}",
        written,
        **figures,
        peak_rss_mb=peak_rss_mb(),
        baseline="put_item one at a time",
        ratio=figures["items_per_second"] / baseline_figures["items_per_second"],
    )
    return 0


def median_rate(items: int, rounds: list[float]) -> dict[str, Any]:
    """Return the median seconds of the rounds that wrote `items` each, its items/s, and every
    round's items/s."""
    seconds = float(np.median(rounds))
    return {
        "seconds": seconds,
        "items_per_second": items / seconds,
        "rounds": len(rounds),
        "rounds_items_per_second": [round(items / s, 1) for s in rounds],
    }


if __name__ == "__main__":
    raise SystemExit(main())
