"""What every benchmark shares: one JSON line per measurement, peak memory, the synthetic export
it runs on, and a DynamoDB Local (in memory, on a free loopback port) that it starts and stops.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack import dynamodb_local
from store.dynamo import DynamoStore

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", "/tmp/similar-users-bench"))
CATALOGUE = ROOT.parent / "shared" / "data" / "pluralsight-sample"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}

log = logging.getLogger("bench")


def setup_logging() -> None:
    """Send progress to stderr, so stdout holds only the JSON lines."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)


def peak_rss_mb() -> float:
    """Return this process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    """Return the largest peak resident memory of the waited-for child processes, in MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """Describe the machine the figures come from."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def emit(bench: str, name: str, users: int | None, **figures: Any) -> dict[str, Any]:
    """Print one measurement as a JSON line and return it.

    ``ratio`` is always "how many times better than the baseline" (a speed-up or a throughput
    ratio), so a ratio above 1 beats it; ``baseline`` names what it is compared with.
    """
    line = {"bench": bench, "name": name, "users": users, **figures}
    for key, value in line.items():
        if isinstance(value, float):
            line[key] = round(value, 4 if abs(value) < 10 else 1)
    print(json.dumps(line), flush=True)
    return line


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Measure the wall time of a block: the dict's "seconds" is set when the block ends."""
    result: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - started


def synthetic_export(users: int, seed: int = 0) -> Path:
    """Return the folder of a synthetic export of this many users, writing it once (then reused)."""
    from generator.progress import Progress
    from generator.synthetic import synthesize

    folder = DATA_DIR / f"synthetic-{users}"
    done = folder / ".complete"
    if not done.exists():
        log.info("writing a synthetic export of %s users to %s (once)", f"{users:,}", folder)
        catalogue = CATALOGUE if CATALOGUE.is_dir() else None
        synthesize(
            users,
            folder,
            seed=seed,
            catalogue_dir=catalogue,
            progress=Progress("synthesize", users),
        )
        done.write_text("")
    return folder


@contextmanager
def dynamodb(writers: int = 16) -> Iterator[DynamoStore]:
    """Run an in-memory DynamoDB Local on a free loopback port; yield a store on fresh tables."""
    os.environ.update({k: v for k, v in FAKE_AWS.items() if k not in os.environ})
    log_path = DATA_DIR / "dynamodb-local.log"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    instance = dynamodb_local.start(dynamodb_local.free_port(), data_dir=None, log_path=log_path)
    try:
        store = DynamoStore.connect(
            table_prefix="bench",
            region="us-east-1",
            endpoint_url=instance.endpoint_url,
            writers=writers,
        )
        store.ensure_tables()
        yield store
    finally:
        dynamodb_local.stop(instance)
