"""Command line of the generator: synthesize, evaluate the models, publish neighbours, or roll back.

An entry point: with run_server.py, the only place that reads the environment. `config_from_env`
turns it (and a `.env` file, see example.env) into a `GeneratorConfig`; `main` takes the store's
`connect` as an argument so that tests hand in their own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values

from config import (
    AwsSettings,
    ConfigError,
    artifact_uri,
    aws_settings,
    configure_logging,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_text,
    log_level,
    positive_int,
)
from config import s3_client as aws_s3_client

if TYPE_CHECKING:
    from generator.pipeline import ModelResult
    from generator.tables import Tables
    from store import NeighbourStore
    from store.artifacts import ArtifactStore
    from store.dynamo import DynamoStore

ROOT = Path(__file__).resolve().parent
REAL_CATALOGUE = ROOT.parent / "shared" / "data" / "pluralsight-sample"
DEFAULT_ARTIFACT_URI = (ROOT / "data" / "artifacts").as_uri()
DEFAULT_SYNTHETIC_USERS = 10_000
SEARCHES = {"auto": None, "exact": False, "approximate": True}
ENGINES = ("local", "spark")
MIN_PARTITIONS_PER_CORE, MAX_PARTITIONS_PER_CORE = 0.25, 1024.0
# A synthetic export is written where the generator runs: a cluster's executors cannot read it.
CLUSTER_NEEDS_AN_EXPORT = (
    "a synthetic export is written on this machine: give a cluster an export it can read "
    "(--data-dir s3://...)"
)

log = logging.getLogger("generator")


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything the generator takes from the environment (see example.env)."""

    data_dir: str | None  # a folder or s3://bucket/prefix; None: a synthetic export
    top_n_stored: int  # neighbours stored per user
    threads: int
    search: str  # a key of SEARCHES
    approximate_above: int
    table_prefix: str
    writers: int
    abandoned_after: timedelta
    log_level: str
    keep_unbuilt_runs: bool  # keep serving runs of models a new export cannot build
    min_recall: float  # the recall@10 an approximate run must reach to be published
    search_budget_seconds: float  # the longest searching more for it may take, per model
    max_rejected_share: float  # a file with a larger share of rejected rows is refused
    aws: AwsSettings
    artifact_uri: str  # where run artifacts are written: file://FOLDER or s3://BUCKET/PREFIX
    engine: str = "local"  # a key of ENGINES
    spark_master: str | None = None  # None: spark-submit's master, else local[*]
    partitions_per_core: float = 1.0  # blocks of users per Spark core
    spark_driver_memory: str = "4g"  # a local master's driver JVM


def config_from_env(env: Mapping[str, str]) -> GeneratorConfig:
    """Return the generator's configuration from environment variables; raise ConfigError."""
    from generator.pipeline import APPROXIMATE_ABOVE, MIN_RECALL, SEARCH_BUDGET_SECONDS
    from generator.tables import MAX_REJECTED_SHARE
    from store import ABANDONED_AFTER

    return GeneratorConfig(
        data_dir=env_text(env, "DATA_DIR", "") or None,
        top_n_stored=env_int(env, "TOP_N_STORED", 50, 1, 1000),
        threads=env_int(env, "GENERATOR_THREADS", os.cpu_count() or 1, 1, 1024),
        search=env_choice(env, "NEIGHBOUR_SEARCH", list(SEARCHES), "auto"),
        approximate_above=env_int(env, "APPROXIMATE_ABOVE", APPROXIMATE_ABOVE, 1, 2**62),
        table_prefix=env_text(env, "DYNAMODB_TABLE_PREFIX", "similar_users"),
        writers=env_int(env, "DYNAMODB_WRITERS", 8, 1, 256),
        abandoned_after=timedelta(
            seconds=env_int(
                env, "ABANDONED_RUN_SECONDS", int(ABANDONED_AFTER.total_seconds()), 1, 2**31
            )
        ),
        log_level=log_level(env),
        keep_unbuilt_runs=env_bool(env, "KEEP_UNBUILT_RUNS", False),
        min_recall=env_float(env, "MIN_RECALL", MIN_RECALL, 0, 1),
        search_budget_seconds=env_float(
            env, "SEARCH_BUDGET_SECONDS", SEARCH_BUDGET_SECONDS, 0, 7 * 24 * 3600
        ),
        max_rejected_share=env_float(env, "MAX_REJECTED_SHARE", MAX_REJECTED_SHARE, 0, 1),
        aws=aws_settings(env),
        artifact_uri=artifact_uri(env, DEFAULT_ARTIFACT_URI),
        engine=env_choice(env, "GENERATOR_ENGINE", list(ENGINES), "local"),
        spark_master=env_text(env, "SPARK_MASTER", "") or None,
        partitions_per_core=env_float(
            env, "SPARK_PARTITIONS_PER_CORE", 1.0, MIN_PARTITIONS_PER_CORE, MAX_PARTITIONS_PER_CORE
        ),
        spark_driver_memory=env_text(env, "SPARK_DRIVER_MEMORY", "4g"),
    )


def connect_store(config: GeneratorConfig) -> DynamoStore:
    """Return the DynamoDB store the config names; raise StoreConfigError (e.g. no region)."""
    from store.dynamo import DynamoStore

    return DynamoStore.connect(
        table_prefix=config.table_prefix,
        region=config.aws.region,
        endpoint_url=config.aws.dynamodb_endpoint,
        credentials=config.aws.credentials,
        writers=config.writers,
    )


def s3_client(config: GeneratorConfig) -> Any:
    """Return a new S3 client for the config's region, endpoint and access key."""
    return aws_s3_client(config.aws)


def connect_artifacts(config: GeneratorConfig) -> ArtifactStore:
    """Return the artifact store ARTIFACT_URI names (an S3 client is made only once needed)."""
    from store.artifacts import open_artifacts

    return open_artifacts(config.artifact_uri, lambda: s3_client(config))


# What `main` gets its store from: any NeighbourStore, ready to write (tests hand in their own).
Connect = Callable[[GeneratorConfig], "NeighbourStore"]
# ... and where it writes each run's model artifact.
ConnectArtifacts = Callable[[GeneratorConfig], "ArtifactStore"]


def share(text: str) -> float:
    """Parse a command-line number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value:g}")
    return value


def partitions_per_core(text: str) -> float:
    """Parse the Spark engine's blocks of users per core (a finite number in bounds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_PARTITIONS_PER_CORE <= value <= MAX_PARTITIONS_PER_CORE:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"must be from {MIN_PARTITIONS_PER_CORE:g} to {MAX_PARTITIONS_PER_CORE:g}, not {text}"
        )
    return value


def level_name(text: str) -> str:
    """Parse a log level name, in any case."""
    try:
        return log_level({"LOG_LEVEL": text})
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error).replace("LOG_LEVEL ", "", 1)) from None


def add_export_arguments(
    command: argparse.ArgumentParser, config: GeneratorConfig, verb: str, action: str
) -> None:
    """Add the arguments that choose an export (a folder, S3 or synthetic) and its models."""
    from similarity.models import MODELS

    source = command.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir",
        default=config.data_dir,
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
        "--survey",
        action="store_true",
        help="give the synthetic export a survey too (user_answers.csv, questions.csv)",
    )
    command.add_argument(
        "--models",
        nargs="+",
        choices=list(MODELS),
        metavar="MODEL",
        help=f"models to {action} (default: all whose tables are present): {', '.join(MODELS)}",
    )


def add_threads_argument(command: argparse.ArgumentParser, config: GeneratorConfig) -> None:
    """Add --threads, the neighbour search's threads."""
    command.add_argument(
        "--threads",
        type=positive_int,
        default=config.threads,
        help="threads for the neighbour search (default: $GENERATOR_THREADS or all cores)",
    )


def parser(config: GeneratorConfig) -> argparse.ArgumentParser:
    """Describe the command line; defaults come from the configuration."""
    from generator.evaluate import COLD_START_COURSES, MAX_USERS
    from generator.pipeline import APPROXIMATE_ABOVE, MIN_RECALL
    from similarity.models import MODELS

    top = argparse.ArgumentParser(
        prog="run_generator.py",
        description="Find every user's most similar users and publish them to DynamoDB.",
    )
    top.add_argument(
        "--log-level", type=level_name, default=config.log_level, help="default: $LOG_LEVEL or INFO"
    )
    commands = top.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synthesize",
        help="write a realistic synthetic export (the four CSV files, and a survey with --survey)",
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
    synth.add_argument(
        "--survey",
        action="store_true",
        help="also write a survey, user_answers.csv and questions.csv: Likert answers drawn "
        "from a few latent learning traits, some reverse-keyed, skipped or given again",
    )

    gen = commands.add_parser("generate", help="compute neighbours and publish a run per model")
    add_export_arguments(gen, config, "generate from", "publish")
    gen.add_argument(
        "--top-n",
        dest="top_n_stored",
        type=positive_int,
        default=config.top_n_stored,
        help="neighbours stored per user (default: $TOP_N_STORED or 50)",
    )
    add_threads_argument(gen, config)
    gen.add_argument(
        "--search",
        choices=list(SEARCHES),
        default=config.search,
        help="exact, approximate (clustered, recall measured on a sample), or auto: approximate "
        "for a model with more than --approximate-above users (default: $NEIGHBOUR_SEARCH or auto)",
    )
    gen.add_argument(
        "--approximate-above",
        type=positive_int,
        default=config.approximate_above,
        help=f"users with evidence above which auto searches approximately "
        f"(default: $APPROXIMATE_ABOVE or {APPROXIMATE_ABOVE:,})",
    )
    gen.add_argument(
        "--min-recall",
        type=share,
        default=config.min_recall,
        help="recall@10 an approximate search must reach, measured against exact on a sample; "
        "below it the generator searches more within $SEARCH_BUDGET_SECONDS, else does not "
        f"publish the model (default: $MIN_RECALL or {MIN_RECALL:g})",
    )
    gen.add_argument(
        "--no-evaluate",
        dest="evaluate",
        action="store_false",
        help="publish without measuring each model on the export's hold-out first "
        f"(the measure samples at most {MAX_USERS:,} users)",
    )
    gen.add_argument(
        "--tune",
        action="store_true",
        help="choose each model's weighting and the hybrid's weights on a validation split of "
        "this export first, and publish the tuned models",
    )
    gen.add_argument(
        "--engine",
        choices=ENGINES,
        default=config.engine,
        help="where the work runs: local (this machine) or spark (Apache Spark, exact search "
        "in block pairs; see README, Scaling) (default: $GENERATOR_ENGINE or local)",
    )
    gen.add_argument(
        "--spark-master",
        default=config.spark_master,
        help="the Spark engine's master URL, e.g. local[2] (default: $SPARK_MASTER, else the "
        "master spark-submit gives, else local[*])",
    )
    gen.add_argument(
        "--partitions-per-core",
        type=partitions_per_core,
        default=config.partitions_per_core,
        help="the Spark engine's blocks of users per core; a model's search is blocks² tasks "
        "(default: $SPARK_PARTITIONS_PER_CORE or 1)",
    )
    gen.add_argument(
        "--keep-unbuilt-runs",
        action="store_true",
        default=config.keep_unbuilt_runs,
        help="keep serving the current runs of models this export cannot build (default: "
        "$KEEP_UNBUILT_RUNS or false: they came from another export, so they are retired)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="measure each model's neighbour quality on a hold-out of every user's latest courses",
    )
    add_export_arguments(evaluate, config, "evaluate on", "evaluate")
    evaluate.add_argument("--k", type=positive_int, default=10, help="recommendations per user")
    evaluate.add_argument(
        "--top-n",
        "--k-neighbours",
        dest="top_n_stored",
        type=positive_int,
        default=config.top_n_stored,
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
        "--cold-start",
        action="store_true",
        help="also measure newcomers' profile queries: each evaluated user's interests and "
        f"first {COLD_START_COURSES} courses, searched among everyone else",
    )
    add_threads_argument(evaluate, config)

    back = commands.add_parser(
        "rollback", help="make a model's previous published run current again"
    )
    back.add_argument(
        "--model",
        required=True,
        choices=list(MODELS),
        metavar="MODEL",
        help=f"the model to roll back: {', '.join(MODELS)}",
    )
    return top


def synthesize(
    users: int, out: Path, seed: int, catalogue_dir: Path | None, survey: bool = False
) -> None:
    """Write a synthetic export (with a survey if asked) and say what was written."""
    from generator.progress import Progress
    from generator.synthetic import synthesize as write_export

    started = time.monotonic()
    rows = write_export(
        users,
        out,
        seed=seed,
        catalogue_dir=catalogue_dir,
        progress=Progress("synthesize", users),
        survey=survey,
    )
    for name, count in rows.items():
        log.info("wrote %s: %s rows", out / name, f"{count:,}")
    log.info("synthetic export of %s users in %.1f s", f"{users:,}", time.monotonic() - started)


def load_export(
    args: argparse.Namespace, config: GeneratorConfig, scratch: Path
) -> tuple[Tables, dict[str, Any]]:
    """Load the export named by --data-dir (a folder or s3://bucket/prefix), or a synthetic one;
    return its tables and its fingerprint."""
    from generator.sources import fetch_export, fingerprint
    from generator.tables import Limits, load_tables

    if args.data_dir is None:
        data_dir = scratch
        users = args.synthetic_users or DEFAULT_SYNTHETIC_USERS
        catalogue = REAL_CATALOGUE if REAL_CATALOGUE.is_dir() else None
        synthesize(users, data_dir, args.seed, catalogue, survey=args.survey)
    else:
        data_dir = fetch_export(args.data_dir, scratch / "export", lambda: s3_client(config))
    started = time.monotonic()
    tables = load_tables(data_dir, limits=Limits(max_rejected_share=config.max_rejected_share))
    for line in tables.report.summary():
        log.info("%s", line)
    export = fingerprint(data_dir)
    log.info(
        "loaded %s (export %s) in %.1f s",
        args.data_dir or data_dir,
        export["id"],
        time.monotonic() - started,
    )
    return tables, export


def generate(
    args: argparse.Namespace,
    config: GeneratorConfig,
    connect: Connect,
    artifacts: ConnectArtifacts = connect_artifacts,
) -> None:
    """Load the export (or synthesize one), then publish every model's neighbours, each run with
    its model artifact."""
    from generator import pipeline

    if args.engine == "spark":
        generate_on_spark(args, config, connect, artifacts)
        return
    store = connect(config)
    store.ensure_tables()
    with tempfile.TemporaryDirectory(prefix="similar-users-") as scratch:
        tables, export = load_export(args, config, Path(scratch))
        results = pipeline.run(
            tables,
            store,
            args.models,
            top_n_stored=args.top_n_stored,
            threads=args.threads,
            approximate=SEARCHES[args.search],
            approximate_above=args.approximate_above,
            abandoned_after=config.abandoned_after,
            evaluate=args.evaluate,
            tune=args.tune,
            export=export,
            retire_unbuilt=not args.keep_unbuilt_runs,
            promise=pipeline.Promise(args.min_recall, config.search_budget_seconds),
            artifacts=artifacts(config),
        )
    report_results(results)


def report_results(results: Sequence[ModelResult]) -> None:
    """Log what each model's run did."""
    for r in results:
        log.info(
            "%-13s run %s: %s lists; features %.1f s, neighbours %.1f s (%s), publish %.1f s; "
            "%d old run(s) deleted; %s",
            r.model_handle,
            r.run_id,
            f"{r.lists:,}",
            r.features_seconds,
            r.neighbours_seconds,
            r.search if r.recall is None else f"{r.search}, recall@{r.recall_at} {r.recall:.3f}",
            r.publish_seconds,
            r.runs_deleted,
            "not evaluated"
            if r.quality is None
            else f"hold-out recall@{r.quality['k']} {r.quality['recall']:.4f} "
            f"(most popular {r.quality['most_popular_recall']:.4f})",
        )


def generate_on_spark(
    args: argparse.Namespace,
    config: GeneratorConfig,
    connect: Connect,
    artifacts: ConnectArtifacts = connect_artifacts,
) -> None:
    """Publish every model's neighbours with the Spark engine (README, "Scaling")."""
    from generator.spark import engine, read, session
    from generator.tables import Limits

    if args.search == "approximate":
        raise ConfigError(
            "the Spark engine searches exactly (block pairs): an approximate search "
            "(--search or NEIGHBOUR_SEARCH) needs --engine local"
        )
    if args.spark_master is not None and not session.local_master(args.spark_master):
        check_cluster_export(args.data_dir)
    store = connect(config)
    store.ensure_tables()
    spark = session.start(args.spark_master, config.spark_driver_memory)
    try:
        with tempfile.TemporaryDirectory(prefix="similar-users-") as scratch:
            location, export = spark_export(args, config, spark, Path(scratch))
            started = time.monotonic()
            limits = Limits(max_rejected_share=config.max_rejected_share)
            tables = read.read_export(spark, location, limits)
            for line in tables.report.summary():
                log.info("%s", line)
            log.info("read %s with Spark in %.1f s", location, time.monotonic() - started)
            spec = engine.StoreSpec(
                table_prefix=config.table_prefix,
                # The executors write where the driver does, whatever their own environment says.
                region=config.aws.region or store_region(store),
                endpoint_url=config.aws.dynamodb_endpoint,
                credentials=config.aws.credentials,
                writers=config.writers,
            )
            results = engine.run(
                spark,
                tables,
                store,
                spec.open,
                args.models,
                top_n_stored=args.top_n_stored,
                abandoned_after=config.abandoned_after,
                evaluate=args.evaluate,
                tune=args.tune,
                export=export,
                retire_unbuilt=not args.keep_unbuilt_runs,
                artifacts=artifacts(config),
                partitions_per_core=args.partitions_per_core,
                threads=args.threads,
            )
    except Exception as error:
        failed = session.job_error(error)
        if failed is None:
            raise
        log.debug("the Spark job's error in full", exc_info=error)
        raise failed from error
    finally:
        spark.stop()
    report_results(results)


def check_cluster_export(data_dir: str | None) -> None:
    """Refuse an export a cluster's executors cannot read: none (synthetic) or a local folder."""
    if data_dir is None:
        raise ConfigError(CLUSTER_NEEDS_AN_EXPORT)
    if "://" not in data_dir:
        raise ConfigError(
            f"{data_dir}: a cluster's executors cannot read this machine's folders: give a URI "
            "they can read (--data-dir s3://...)"
        )


def store_region(store: NeighbourStore) -> str | None:
    """Return the region a DynamoDB store's client resolved (None for another kind of store)."""
    client = getattr(store, "client", None)
    return getattr(getattr(client, "meta", None), "region_name", None)


def spark_export(
    args: argparse.Namespace, config: GeneratorConfig, spark: Any, scratch: Path
) -> tuple[str, dict[str, Any]]:
    """Return where Spark reads the export from, and the export's fingerprint.

    A synthetic export is written into `scratch`, and so is an s3:// one downloaded for a local
    master; a cluster reads s3:// in place (its fingerprint is then of the objects' ETags).
    """
    from generator.sources import S3_SCHEME, fetch_export, fingerprint, s3_fingerprint
    from generator.spark.session import local_master

    local = local_master(spark.sparkContext.master)
    if not local:  # spark-submit's master is known only once Spark started
        check_cluster_export(args.data_dir)
    if args.data_dir is None:
        users = args.synthetic_users or DEFAULT_SYNTHETIC_USERS
        catalogue = REAL_CATALOGUE if REAL_CATALOGUE.is_dir() else None
        synthesize(users, scratch, args.seed, catalogue, survey=args.survey)
        return str(scratch), fingerprint(scratch)
    if not local:
        if args.data_dir.startswith(S3_SCHEME):
            return args.data_dir, s3_fingerprint(args.data_dir, s3_client(config))
        # Another file system a cluster reads (hdfs://, ...): named, not read twice.
        named = hashlib.sha256(args.data_dir.encode()).hexdigest()[:16]
        return args.data_dir, {"id": named, "files": {}, "of": "the export's URI"}
    folder = fetch_export(args.data_dir, scratch / "export", lambda: s3_client(config))
    return str(folder), fingerprint(folder)


def evaluate(args: argparse.Namespace, config: GeneratorConfig) -> None:
    """Load the export (or synthesize one), then print how well each model's neighbours do."""
    from generator.evaluate import evaluate as measure
    from generator.plot import plot
    from generator.tune import tune
    from similarity.models import MODELS

    with tempfile.TemporaryDirectory(prefix="similar-users-") as scratch:
        tables, _ = load_export(args, config, Path(scratch))
    models = [MODELS[handle] for handle in args.models] if args.models else None
    tuning = None
    if args.tune:
        started = time.monotonic()
        tuning = tune(tables, k=args.k, top_n_stored=args.top_n_stored, threads=args.threads)
        log.info("tuned on the validation split in %.1f s", time.monotonic() - started)
        tuned = {model.handle: model for model in tuning.models()}
        chosen = models if models is not None else list(MODELS.values())
        models = [tuned.get(model.handle, model) for model in chosen]
    report = measure(
        tables,
        models,
        k=args.k,
        top_n_stored=args.top_n_stored,
        threads=args.threads,
        cold_start=args.cold_start,
    )
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


def rollback(model_handle: str, config: GeneratorConfig, connect: Connect) -> None:
    """Make the model's newest earlier published run current again, and say which run it is."""
    run = connect(config).rollback(model_handle)
    print(
        f"{model_handle}: run {run.run_id} (generated {run.generated_at}) is current again; "
        "servers answer from it once their run cache expires (POINTER_CACHE_SECONDS)"
    )


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    connect: Connect = connect_store,
    artifacts: ConnectArtifacts = connect_artifacts,
) -> int:
    """Run the command line with settings from `env`, a store from `connect` and an artifact store
    from `artifacts`; return its code."""
    try:
        config = config_from_env(env)
    except ConfigError as error:
        print(f"run_generator.py: error: {error}", file=sys.stderr)
        return 2
    args = parser(config).parse_args(argv)
    configure_logging(args.log_level, config.aws.log_level)
    from generator.spark.session import SparkJobError
    from generator.tables import TableError
    from store import StoreConfigError, StoreError

    try:
        if args.command == "synthesize":
            synthesize(args.users, args.out, args.seed, args.catalogue_dir, args.survey)
        elif args.command == "evaluate":
            evaluate(args, config)
        elif args.command == "rollback":
            rollback(args.model, config, connect)
        else:
            generate(args, config, connect, artifacts)
    except (ConfigError, StoreConfigError) as error:
        print(f"run_generator.py: error: {error}", file=sys.stderr)
        return 2
    except (TableError, StoreError, ValueError, OSError, SparkJobError) as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted: nothing more was published")
        return 130
    return 0


if __name__ == "__main__":
    # Settings of .env under the environment's: variables already set win.
    from_file = {k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}
    sys.exit(main(env={**from_file, **os.environ}))
