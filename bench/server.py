"""Server throughput and latency on loopback with wrk: a Zipf mix of users, all-distinct users,
and /healthz on the same server as the framework's ceiling.

    python -m bench.server [--users 100000] [--seconds 15] [--workers 2] [--threads 4]
                           [--connections N] [--repeat 5] [--zipf 1.1]
                           [--warm-up-seconds 600] [--warm-up-draws 1500000]

The script starts an in-memory DynamoDB Local, publishes one run of lists of 50 neighbours (for
the `--users` of the Zipf mix and for the users of the all-distinct load), and serves it with
`run_server.py serve` (gunicorn, the production settings) on free loopback ports, then stops both.
wrk is installed with apt-get when missing. Requests are `POST /similar-users` with a JSON body
naming the user (5 neighbours, the default). Every load lasts `--seconds`. The server runs
gunicorn with the production defaults (2 workers of 4 threads), and wrk keeps `--connections`
requests in flight, by default as many as the server's threads: more only wait in the listen
backlog, adding their wait to every latency. wrk's keep-alive connections split between the
workers at random when it connects, which moves a single round's requests/s by up to 2× (an 8/0
split leaves one process doing all the work), so the three loads run `--repeat` rounds,
interleaved, and each figure is the median over the rounds (every round's requests/s is printed
too).

The Zipf load measures a server that has been running for a while: a warm-up of
`--warm-up-seconds` asks for `--warm-up-draws` users drawn from the same Zipf distribution as the
measured load, in turn (from the first again if all have been asked), but independently of it
(and so does each round), so the measured load meets a warmed cache as live traffic would, not a
replay of what it saw. The default warm-up (10 minutes, most of a million requests here) is what
it takes for the per-worker caches' miss rate to settle near its floor; `--warm-up-seconds 30
--warm-up-draws 100000` measures a server just deployed, its caches still filling. The
all-distinct load asks for users outside the Zipf population, each once: every request is a cache
miss.
The ratio of a load is its requests/s over /healthz's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import DATA_DIR, ROOT, dynamodb, emit, log, setup_logging
from bench.publish import lists
from devstack import dynamodb_local as local
from devstack.stack import wait_until_ready
from store import Run, new_run_id

BENCH = "server"
MODEL = "bench"
THREADS = 2
# Users the all-distinct load may ask for per second of a round: far above what it reaches here.
DISTINCT_PER_SECOND = 1_500
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ensure_wrk() -> str:
    """Return the path of wrk, installing Debian's package when it is missing."""
    found = shutil.which("wrk")
    if found is None:
        log.info("installing wrk (apt-get install -y wrk)")
        install = ["apt-get", "install", "-y", "wrk"]
        quiet = subprocess.DEVNULL
        if subprocess.run(install, check=False, stdout=quiet, stderr=quiet).returncode:
            subprocess.run(["apt-get", "update"], check=False, stdout=quiet, stderr=quiet)
            subprocess.run(install, check=True, stdout=quiet, stderr=quiet)
        found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    return found


def lua_script(users: list[int], folder: Path, name: str) -> Path:
    """Write a wrk script POSTing /similar-users for the users in turn (thread t: t, t+T, ...)."""
    table = ",".join(str(u) for u in users)
    script = folder / f"{name}.lua"
    script.write_text(
        f"local users = {{{table}}}\n"
        "local counter = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "function setup(thread)\n"
        "  counter = counter + 1\n"
        '  thread:set("id", counter)\n'
        "end\n"
        "function init(args)\n"
        "  i = id\n"
        "end\n"
        "function request()\n"
        "  local user = users[(i - 1) % #users + 1]\n"
        f"  i = i + {THREADS}\n"
        '  return wrk.format("POST", "/similar-users", headers, '
        "'{\"user_handle\": ' .. user .. '}')\n"
        "end\n"
    )
    return script


def wrk(
    binary: str, url: str, seconds: int, connections: int, script: Path | None
) -> dict[str, Any]:
    """Run wrk and return requests/s, latency percentiles (ms) and errors."""
    command = [
        binary,
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    figures: dict[str, Any] = {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        "requests": int(re.search(r"(\d+) requests in", output)[1]),  # type: ignore[index]
    }
    for share, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M):
        figures[f"p{share}_ms"] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    figures["non_2xx"] = int(bad[1]) if bad else 0
    if errors:
        figures["socket_errors"] = errors[1]
    return figures


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of each figure over the rounds, and every round's requests/s."""
    figures: dict[str, Any] = {
        key: float(np.median([r[key] for r in rounds]))
        for key in rounds[0]
        if isinstance(rounds[0][key], int | float)
    }
    figures["requests"] = int(sum(r["requests"] for r in rounds))
    figures["non_2xx"] = int(sum(r["non_2xx"] for r in rounds))
    figures["rounds_requests_per_second"] = [r["requests_per_second"] for r in rounds]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=100_000, help="users the Zipf mix draws from")
    parser.add_argument("--seconds", type=int, default=15, help="duration of each load")
    parser.add_argument("--warm-up-seconds", type=int, default=600)
    parser.add_argument(
        "--warm-up-draws",
        type=int,
        default=1_500_000,
        help="users drawn for the warm-up (asked in turn, again from the first when all are)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the three loads")
    parser.add_argument("--connections", type=int, help="default: workers × threads")
    parser.add_argument("--zipf", type=float, default=1.1, help="exponent of the skewed mix")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.connections = args.connections or args.workers * args.threads
    setup_logging()
    binary = ensure_wrk()
    rng = np.random.default_rng(0)
    users = np.arange(args.users)
    ranked = rng.permutation(users)  # popularity rank → user
    weights = 1.0 / np.arange(1, args.users + 1) ** args.zipf
    # Independent Zipf samples: one to warm up on, one per round.
    warm, *skewed = (
        ranked[rng.choice(args.users, size=size, p=weights / weights.sum())]
        for size in [args.warm_up_draws] + [100_000] * args.repeat
    )
    # Users outside the Zipf population, a pool per round, more than a round can ask for.
    per_round = DISTINCT_PER_SECOND * args.seconds
    distinct = np.array_split(args.users + np.arange(per_round * args.repeat), args.repeat)
    published = args.users + per_round * args.repeat

    with dynamodb() as store, tempfile.TemporaryDirectory(prefix="bench-server-") as scratch:
        run = Run(MODEL, new_run_id(), "2026-11-23T00:00:00Z", top_n=50, user_count=published)
        store.begin_run(run)
        log.info("publishing %s lists", f"{published:,}")
        written = store.write_lists(run, lists(published))
        store.publish(run, expected_users=written)

        port = local.free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "CORS_ORIGINS")}
        env |= {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "AWS_ENDPOINT_URL_DYNAMODB": store.client.meta.endpoint_url,
            "DYNAMODB_TABLE_PREFIX": store.table_prefix,
            "DEFAULT_MODEL": MODEL,
            "LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": str(args.workers),
            "GUNICORN_THREADS": str(args.threads),
        }
        command = [
            sys.executable,
            str(ROOT / "run_server.py"),
            "--env-file",
            str(DATA_DIR / "none.env"),
            "serve",
        ]
        server = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until_ready(server, base_url, timeout=60)
            folder = Path(scratch)
            warm_up = lua_script(warm.tolist(), folder, "warm-up")
            warmed = wrk(binary, base_url, args.warm_up_seconds, args.connections, warm_up)
            log.info("warm-up: %s requests", f"{warmed['requests']:,}")
            loads: dict[str, list[tuple[str, Path | None]]] = {
                "/healthz": [(f"{base_url}/healthz", None)] * args.repeat,
                f"zipf {args.zipf} mix": [
                    (base_url, lua_script(sample.tolist(), folder, f"zipf-{i}"))
                    for i, sample in enumerate(skewed)
                ],
                "all-distinct users": [
                    (base_url, lua_script(pool.tolist(), folder, f"distinct-{i}"))
                    for i, pool in enumerate(distinct)
                ],
            }
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in loads}
            for round_ in range(args.repeat):  # interleaved, so drifts touch every load alike
                for name, targets in loads.items():
                    url, script = targets[round_]
                    rounds[name].append(wrk(binary, url, args.seconds, args.connections, script))
            setting = {
                "connections": args.connections,
                "gunicorn": f"{args.workers} worker(s) × {args.threads} threads",
                "wrk_threads": THREADS,
                "seconds": args.seconds,
                "rounds": args.repeat,
            }
            ceiling = median_of(rounds["/healthz"])
            emit(BENCH, "/healthz", None, **ceiling, **setting, baseline=None)
            for name in list(loads)[1:]:
                figures = median_of(rounds[name])
                if name.startswith("zipf"):
                    figures |= {"warm_up_requests": warmed["requests"]}
                if name.startswith("all-distinct"):
                    # Past its pool, a round would ask users again (answered from the cache).
                    pool = min(len(p) for p in distinct)
                    figures |= {"distinct_users_per_round": pool}
                    if max(r["requests"] for r in rounds[name]) > pool:
                        log.warning("a round asked for more users than its pool holds")
                        figures |= {"some_users_asked_twice": True}
                ratio = figures["requests_per_second"] / ceiling["requests_per_second"]
                emit(
                    BENCH, name, args.users, **figures, **setting, baseline="/healthz", ratio=ratio
                )
        finally:
            local.terminate(server, timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
