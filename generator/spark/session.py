"""Start Spark for the generator: locally (``local[N]``) or under spark-submit (a cluster)."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Any

log = logging.getLogger(__name__)

# A task that fails is tried this many times in all, locally as on a cluster
# (spark.task.maxFailures): Spark's local master otherwise tries a task once.
TASK_ATTEMPTS = 4
_LOCAL = re.compile(r"local(\[(?P<threads>\*|\d+)(,\s*\d+)?\])?$")


def under_spark_submit() -> bool:
    """Tell whether this process was started by spark-submit (its master is then given)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_master(master: str) -> bool:
    """Tell whether a master URL runs Spark inside this machine (``local``, ``local[N]``)."""
    return _LOCAL.match(master.strip()) is not None


def with_retries(master: str, attempts: int = TASK_ATTEMPTS) -> str:
    """Return a local master that tries a failed task `attempts` times, as a cluster does;
    any other master as it is (``local[2]`` → ``local[2,4]``)."""
    found = _LOCAL.match(master.strip())
    if found is None:
        return master
    return f"local[{found.group('threads') or 1},{attempts}]"


def cores(spark: Any) -> int:
    """Return how many tasks the session can run at once: a local master's threads; on a
    cluster the executors it may have (dynamic allocation's maximum, else its instances) × their
    cores, since right after start only the executors registered so far are counted."""
    conf = spark.sparkContext.getConf()
    if local_master(str(spark.sparkContext.master)):
        return max(1, int(spark.sparkContext.defaultParallelism))
    executors = conf.get("spark.dynamicAllocation.maxExecutors") or conf.get(
        "spark.executor.instances"
    )
    per_executor = conf.get("spark.executor.cores")
    if executors and per_executor and executors.isdigit() and per_executor.isdigit():
        return max(1, int(executors) * int(per_executor))
    return max(1, int(spark.sparkContext.defaultParallelism))


class SparkJobError(Exception):
    """A Spark job failed; the message is its cause in one line (Spark's own trace is logged)."""


def job_error(error: BaseException) -> SparkJobError | None:
    """Return a failed Spark job's error as one line, or None if `error` is not Spark's."""
    module = type(error).__module__
    if not module.startswith(("py4j", "pyspark")):
        return None
    text = str(error)
    causes = re.findall(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception): .+)$", text, re.MULTILINE)
    python = [c for c in causes if not c.startswith(("org.apache", "java.", "py4j"))]
    cause = (python or causes or [text.strip().splitlines()[0] if text.strip() else module])[-1]
    return SparkJobError(f"the Spark job failed: {cause.strip()}")


def quiet_known_warnings() -> None:
    """Silence what pyspark 4.0 makes pandas 3 warn on every transfer (it passes the copy=
    keyword pandas deprecated): not ours to fix, and no fault of the data."""
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pandas")


def start(
    master: str | None, driver_memory: str = "4g", app_name: str = "similar-users generator"
) -> Any:
    """Return a SparkSession on `master` (None: spark-submit's, else ``local[*]``).

    A local master's Python workers run this interpreter (so they import this project and its
    libraries), its driver has `driver_memory`, its web UI is off, and failed tasks are retried as
    on a cluster (`with_retries`). A cluster's settings are spark-submit's.
    """
    from pyspark.sql import SparkSession

    quiet_known_warnings()
    builder = SparkSession.builder.appName(app_name)
    if master is None and not under_spark_submit():
        master = "local[*]"
    if master is not None:
        if local_master(master):
            # pyspark starts its Python workers with $PYSPARK_PYTHON, read from the environment
            # only (else `python3`, which may lack this project's libraries).
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = builder.config("spark.ui.enabled", "false").config(
                "spark.driver.memory", driver_memory
            )
        builder = builder.master(with_retries(master))
    spark = (
        builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.maxResultSize", "0")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per closed connection
    if local_master(str(spark.sparkContext.master)):
        # Spark SQL's 200 shuffle partitions by default: each a task (a Python worker's round
        # trip) even for a few rows; a couple per core is enough on one machine. A cluster keeps
        # spark-submit's setting.
        spark.conf.set("spark.sql.shuffle.partitions", str(2 * cores(spark)))
    log.info("Spark %s on %s: %d cores", spark.version, spark.sparkContext.master, cores(spark))
    return spark
