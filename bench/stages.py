"""Generator stages at each size: load, features, each model's neighbours, publish, end to end.

    python -m bench.stages [--users 10000 100000] [--models M ...] [--approximate auto|on|off]
                           [--publish dynamodb|none]

Publishing goes into an in-memory DynamoDB Local the script starts itself (`--publish none`
still builds every DynamoDB item, and only skips sending it); every run's model artifact is
written into a temporary folder (file://), and what that adds to the run is reported apart. Peak
RSS is the generator process's peak so far: after loading for "load", and after the model's
publish for its three lines (the pipeline runs a model's features, search and publish in one
call). Each figure's baseline is the
issue's target for it, so a ratio above 1 is within the target.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.harness import dynamodb, emit, peak_rss_mb, setup_logging, synthetic_export, timed
from generator import pipeline
from generator.tables import load_tables
from similarity.features import UserIndex
from similarity.models import MODELS
from store import NeighbourList, NeighbourStore, Run
from store.artifacts import FileArtifacts
from store.items import to_item
from store.memory import MemoryStore

BENCH = "stages"
# The targets, in seconds, by (figure, users); a figure without one has no baseline.
TARGETS: dict[tuple[str, int], float] = {
    ("end to end", 10_000): 60.0,
    ("neighbours, all models", 10_000): 5.0,
    ("end to end", 100_000): 600.0,
}
NEIGHBOURS_TARGET_1M = 20 * 60.0
# The evaluation `generate` runs may add at most this share to its time.
EVALUATE_SHARE_TARGET = 0.2
# Writing every run's model artifact may add at most this share to `generate`'s time.
ARTIFACT_SHARE_TARGET = 0.1
RSS_TARGET_MB = {100_000: 3 * 1024, 1_000_000: 8 * 1024}


class ItemsOnlyStore(MemoryStore):
    """A store that builds every DynamoDB item of a run and keeps only the count (no network)."""

    def write_lists(self, run: Run, lists: Iterable[NeighbourList], part: str | None = None) -> int:
        def built(items: Iterable[NeighbourList]) -> Iterator[NeighbourList]:
            for neighbour_list in items:
                to_item(run, neighbour_list)
                yield NeighbourList(neighbour_list.user_handle, ())

        return super().write_lists(run, built(lists), part)


def target(name: str, users: int) -> dict[str, Any]:
    """Return the baseline fields of a figure: its target and how far within it (ratio > 1)."""
    if (name, users) in TARGETS:
        return {"baseline": "target", "baseline_seconds": TARGETS[(name, users)]}
    return {"baseline": None}


def ratio(line: dict[str, Any], seconds: float) -> dict[str, Any]:
    if line.get("baseline_seconds"):
        return {**line, "ratio": line["baseline_seconds"] / seconds}
    return line


def stages(users: int, models: list[str], approximate: bool | None, publish: str) -> None:
    """Measure every stage of one generator run over a synthetic export of this many users."""
    folder = synthetic_export(users)
    with ExitStack() as stack:
        artifacts = FileArtifacts(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        store: NeighbourStore = (
            stack.enter_context(dynamodb()) if publish == "dynamodb" else ItemsOnlyStore()
        )
        started = time.perf_counter()
        with timed() as load:
            tables = load_tables(folder)
        emit(
            BENCH, "load", users, seconds=load["seconds"], peak_rss_mb=peak_rss_mb(), baseline=None
        )
        index = UserIndex.of(tables)
        chosen = pipeline.choose_models(tables, models)
        neighbours_total = artifacts_total = 0.0
        for model in chosen:
            result = pipeline.publish_model(
                model,
                tables,
                index,
                store,
                top_n_stored=50,
                approximate=approximate,
                artifacts=artifacts,
            )
            artifacts_total += result.artifact_seconds
            rss = peak_rss_mb()
            emit(
                BENCH,
                f"features {model.handle}",
                users,
                seconds=result.features_seconds,
                peak_rss_mb=rss,
                baseline=None,
            )
            line: dict[str, Any] = {
                "seconds": result.neighbours_seconds,
                "peak_rss_mb": rss,
                "search": result.search,
                # An exact search finds every exact neighbour.
                "recall_at_10": 1.0
                if result.search == "exact"
                else (result.recall if result.recall_at == 10 else None),
            }
            if result.recall_by_activity:
                line["recall_at_10_by_activity"] = [
                    [*d["features"], d["recall"]] for d in result.recall_by_activity
                ]
            if users == 1_000_000:  # the target holds for each model, however it is searched
                line |= {"baseline": "target", "baseline_seconds": NEIGHBOURS_TARGET_1M}
            else:
                line |= {"baseline": None}
            emit(
                BENCH, f"neighbours {model.handle}", users, **ratio(line, result.neighbours_seconds)
            )
            emit(
                BENCH,
                f"publish {model.handle}",
                users,
                seconds=result.publish_seconds,
                peak_rss_mb=rss,
                lists=result.lists,
                items_per_second=result.lists / max(result.publish_seconds, 1e-9),
                into="DynamoDB Local (in memory)"
                if publish == "dynamodb"
                else "items built, not sent",
                artifact_seconds=result.artifact_seconds,
                baseline=None,
            )
            emit(
                BENCH,
                f"artifact {model.handle}",
                users,
                seconds=result.artifact_seconds,
                megabytes=result.artifact_bytes / 1e6,
                peak_rss_mb=rss,
                search=result.search,
                baseline=None,
            )
            neighbours_total += result.neighbours_seconds
        rss = peak_rss_mb()
        name = "neighbours, all models"
        emit(
            BENCH,
            name,
            users,
            models=[m.handle for m in chosen],
            **ratio(
                {"seconds": neighbours_total, "peak_rss_mb": rss, **target(name, users)},
                neighbours_total,
            ),
        )
        total = time.perf_counter() - started
        name = "end to end"
        line = {
            "seconds": total,
            "peak_rss_mb": rss,
            "models": [m.handle for m in chosen],
            "publish": publish,
            **target(name, users),
        }
        if users in RSS_TARGET_MB:
            line["rss_target_mb"] = RSS_TARGET_MB[users]
        emit(BENCH, name, users, **ratio(line, total))
        emit(
            BENCH,
            "artifacts, all models",
            users,
            seconds=artifacts_total,
            peak_rss_mb=rss,
            share_of_generate=artifacts_total / total,
            baseline="target: 10% of end to end",
            baseline_seconds=ARTIFACT_SHARE_TARGET * total,
            ratio=ARTIFACT_SHARE_TARGET * total / max(artifacts_total, 1e-9),
        )

        # What `generate` adds to measure every run on the export's hold-out (not in the above).
        with timed() as measuring:
            quality = pipeline.measured(tables, chosen, 50, None)
        emit(
            BENCH,
            "evaluate, all models",
            users,
            seconds=measuring["seconds"],
            peak_rss_mb=peak_rss_mb(),
            users_evaluated=max((q["users_evaluated"] for q in quality.values()), default=0),
            share_of_generate=measuring["seconds"] / total,
            baseline="target: 20% of end to end",
            baseline_seconds=EVALUATE_SHARE_TARGET * total,
            ratio=EVALUATE_SHARE_TARGET * total / max(measuring["seconds"], 1e-9),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="default: all")
    parser.add_argument("--approximate", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--publish", choices=["dynamodb", "none"], default="dynamodb")
    args = parser.parse_args(argv)
    setup_logging()
    approximate = {"auto": None, "on": True, "off": False}[args.approximate]
    for users in args.users:
        stages(users, args.models, approximate, args.publish)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
