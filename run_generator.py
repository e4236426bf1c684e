"""Command line of the generator: synthesize, evaluate the models, publish neighbours, or roll back.

The only place (with run_server.py) that reads the environment: settings come from the process
environment and a `.env` file (see example.env), and are passed on as plain arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import load_dotenv

if TYPE_CHECKING:
    from generator.tables import Tables

ROOT = Path(__file__).resolve().parent
REAL_CATALOGUE = ROOT.parent / "shared" / "data" / "pluralsight-sample"
DEFAULT_SYNTHETIC_USERS = 10_000

log = logging.getLogger("generator")


def env_int(name: str, default: int) -> int:
    """Read a positive whole number from the environment, failing clearly when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"error: {name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise SystemExit(f"error: {name} must be at least 1, got {value}")
    return value


def env_choice(name: str, choices: Sequence[str], default: str) -> str:
    """Read one of a few words from the environment, failing clearly when it is another."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise SystemExit(f"error: {name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


SEARCHES = {"auto": None, "exact": False, "approximate": True}


def positive_int(text: str) -> int:
    """Parse a command-line whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_export_arguments(command: argparse.ArgumentParser, verb: str, action: str) -> None:
    """Add the arguments that choose an export (a folder, S3 or synthetic) and its models."""
    from generator.models import MODELS

    source = command.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir",
        default=os.environ.get("DATA_DIR") or None,
        help="folder or s3://bucket/prefix with the export's CSV files (default: $DATA_DIR)",
    )
    source.add_argument(
        "--synthetic-users",
        type=positive_int,
        help=f"{verb} a synthetic export of N users (default when no data dir: "
        f"{DEFAULT_SYNTHETIC_USERS:,})",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the synthetic export")
    command.add_argument(
        "--models",
        nargs="+",
        choices=sorted(MODELS),
        metavar="MODEL",
        help=f"models to {action} (default: all whose tables are present): {', '.join(MODELS)}",
    )


def parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    from generator.models import MODELS
    from generator.pipeline import APPROXIMATE_ABOVE

    top = argparse.ArgumentParser(
        prog="run_generator.py",
        description="Find every user's most similar users and publish them to DynamoDB.",
    )
    top.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    commands = top.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synthesize", help="write a realistic synthetic export (the four CSV files)"
    )
    synth.add_argument("--users", type=positive_int, required=True, help="number of users")
    synth.add_argument("--out", type=Path, required=True, help="folder to write the CSVs into")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    synth.add_argument(
        "--catalogue-dir",
        type=Path,
        default=REAL_CATALOGUE if REAL_CATALOGUE.is_dir() else None,
        help="folder with a real course_tags.csv / user_assessment_scores.csv to reuse "
        "(default: ../shared/data/pluralsight-sample when present)",
    )

    gen = commands.add_parser("generate", help="compute neighbours and publish a run per model")
    add_export_arguments(gen, "generate from", "publish")
    gen.add_argument(
        "--top-n",
        type=positive_int,
        default=env_int("TOP_N_STORED", 50),
        help="neighbours stored per user (default: $TOP_N_STORED or 50)",
    )
    gen.add_argument(
        "--threads",
        type=positive_int,
        default=env_int("GENERATOR_THREADS", os.cpu_count() or 1),
        help="threads for the neighbour search (default: $GENERATOR_THREADS or all cores)",
    )
    gen.add_argument(
        "--search",
        choices=list(SEARCHES),
        default=env_choice("NEIGHBOUR_SEARCH", list(SEARCHES), "auto"),
        help="exact, approximate (clustered, recall measured on a sample), or auto: approximate "
        "for a model with more than --approximate-above users (default: $NEIGHBOUR_SEARCH or auto)",
    )
    gen.add_argument(
        "--approximate-above",
        type=positive_int,
        default=env_int("APPROXIMATE_ABOVE", APPROXIMATE_ABOVE),
        help=f"users with evidence above which auto searches approximately "
        f"(default: $APPROXIMATE_ABOVE or {APPROXIMATE_ABOVE:,})",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="measure each model's neighbour quality on a hold-out of every user's latest courses",
    )
    add_export_arguments(evaluate, "evaluate on", "evaluate")
    evaluate.add_argument("--k", type=positive_int, default=10, help="recommendations per user")
    evaluate.add_argument(
        "--k-neighbours",
        type=positive_int,
        default=env_int("TOP_N_STORED", 50),
        help="neighbours per user, as stored (default: $TOP_N_STORED or 50)",
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--plot", type=Path, help="also draw the scores into this PNG file")
    evaluate.add_argument(
        "--tune",
        action="store_true",
        help="first choose each model's weighting and the hybrid's weights on a validation "
        "split, then evaluate the tuned models",
    )
    evaluate.add_argument(
        "--threads",
        type=positive_int,
        default=env_int("GENERATOR_THREADS", os.cpu_count() or 1),
        help="threads for the neighbour search (default: $GENERATOR_THREADS or all cores)",
    )

    back = commands.add_parser(
        "rollback", help="make a model's previous published run current again"
    )
    back.add_argument(
        "--model",
        required=True,
        choices=sorted(MODELS),
        metavar="MODEL",
        help=f"the model to roll back: {', '.join(MODELS)}",
    )
    return top


def synthesize(users: int, out: Path, seed: int, catalogue_dir: Path | None) -> None:
    """Write a synthetic export and say what was written."""
    from generator.progress import Progress
    from generator.synthetic import synthesize as write_export

    started = time.monotonic()
    rows = write_export(
        users, out, seed=seed, catalogue_dir=catalogue_dir, progress=Progress("synthesize", users)
    )
    for name, count in rows.items():
        log.info("wrote %s: %s rows", out / name, f"{count:,}")
    log.info("synthetic export of %s users in %.1f s", f"{users:,}", time.monotonic() - started)


def load_export(args: argparse.Namespace, scratch: Path) -> Tables:
    """Load the export named by --data-dir (a folder or s3://bucket/prefix), or a synthetic one."""
    from generator.sources import fetch_export
    from generator.tables import load_tables

    if args.data_dir is None:
        data_dir = scratch
        users = args.synthetic_users or DEFAULT_SYNTHETIC_USERS
        catalogue = REAL_CATALOGUE if REAL_CATALOGUE.is_dir() else None
        synthesize(users, data_dir, args.seed, catalogue)
    else:
        data_dir = fetch_export(args.data_dir, scratch / "export")
    started = time.monotonic()
    tables = load_tables(data_dir)
    for line in tables.report.summary():
        log.info("%s", line)
    log.info("loaded %s in %.1f s", args.data_dir or data_dir, time.monotonic() - started)
    return tables


def generate(args: argparse.Namespace) -> None:
    """Load the export (or synthesize one), then publish every model's neighbours."""
    from generator import pipeline
    from store import ABANDONED_AFTER
    from store.dynamo import DynamoStore

    store = DynamoStore.connect(
        table_prefix=os.environ.get("DYNAMODB_TABLE_PREFIX", "similar_users"),
        writers=env_int("DYNAMODB_WRITERS", 8),
    )
    store.ensure_tables()
    with tempfile.TemporaryDirectory(prefix="similar-users-") as scratch:
        tables = load_export(args, Path(scratch))
        results = pipeline.run(
            tables,
            store,
            args.models,
            n=args.top_n,
            threads=args.threads,
            approximate=SEARCHES[args.search],
            approximate_above=args.approximate_above,
            abandoned_after=timedelta(
                seconds=env_int("ABANDONED_RUN_SECONDS", int(ABANDONED_AFTER.total_seconds()))
            ),
        )
    for r in results:
        log.info(
            "%-13s run %s: %s lists; features %.1f s, neighbours %.1f s (%s), publish %.1f s; "
            "%d old run(s) deleted",
            r.model_handle,
            r.run_id,
            f"{r.lists:,}",
            r.features_seconds,
            r.neighbours_seconds,
            r.search if r.recall is None else f"{r.search}, recall@{r.recall_at} {r.recall:.3f}",
            r.publish_seconds,
            r.runs_deleted,
        )


def evaluate(args: argparse.Namespace) -> None:
    """Load the export (or synthesize one), then print how well each model's neighbours do."""
    from generator.evaluate import evaluate as measure
    from generator.evaluate import plot, tune
    from generator.models import MODELS

    with tempfile.TemporaryDirectory(prefix="similar-users-") as scratch:
        tables = load_export(args, Path(scratch))
    models = [MODELS[handle] for handle in args.models] if args.models else None
    tuning = None
    if args.tune:
        started = time.monotonic()
        tuning = tune(tables, k=args.k, k_neighbours=args.k_neighbours, threads=args.threads)
        log.info("tuned on the validation split in %.1f s", time.monotonic() - started)
        tuned = {model.handle: model for model in tuning.models()}
        chosen = models if models is not None else list(MODELS.values())
        models = [tuned.get(model.handle, model) for model in chosen]
    report = measure(tables, models, k=args.k, k_neighbours=args.k_neighbours, threads=args.threads)
    log.info(
        "evaluated %s users in %.1f s; best: %s",
        f"{report.users_evaluated:,}",
        report.seconds["total"],
        report.default_model,
    )
    if args.plot:
        plot(report, args.plot)
        log.info("wrote %s", args.plot)
    if args.json:
        document = report.as_json()
        if tuning is not None:
            document["tuning"] = tuning.as_json()
        print(json.dumps(document, indent=2))
        return
    if tuning is not None:
        print("\n".join(tuning.lines()))
        print()
    print("\n".join(report.table()))
    print()
    print(
        f"{report.users_evaluated:,} of {report.users:,} users evaluated "
        f"({report.hidden_courses:,} hidden courses); default model: {report.default_model}"
    )


def rollback(model_handle: str) -> None:
    """Make the model's newest earlier published run current again, and say which run it is."""
    from store.dynamo import DynamoStore

    store = DynamoStore.connect(
        table_prefix=os.environ.get("DYNAMODB_TABLE_PREFIX", "similar_users")
    )
    run = store.rollback(model_handle)
    print(
        f"{model_handle}: run {run.run_id} (generated {run.generated_at}) is current again; "
        "servers answer from it once their run cache expires (POINTER_CACHE_SECONDS)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    load_dotenv(ROOT / ".env")
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from generator.tables import TableError
    from store import StoreError

    try:
        if args.command == "synthesize":
            synthesize(args.users, args.out, args.seed, args.catalogue_dir)
        elif args.command == "evaluate":
            evaluate(args)
        elif args.command == "rollback":
            rollback(args.model)
        else:
            generate(args)
    except (TableError, StoreError, ValueError, OSError) as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted: nothing more was published")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
