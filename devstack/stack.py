"""`make run`'s process manager: DynamoDB Local, then the generator, then the server, until stopped.

The entry point (`run_server.py up`) reads and checks the settings and passes them in as plain
values, with the environment the generator and the server run in; nothing here reads the process
environment. Ctrl-C or SIGTERM stops what this process started, newest first, and leaves running a
DynamoDB Local it only reused.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from devstack.dynamodb_local import (
    PROJECT_ROOT,
    DynamoDBLocal,
    DynamoDBLocalError,
    port_in_use,
    terminate,
)
from devstack.pidfile import Place, start_or_reuse, stop_started

__all__ = ["StackError", "banner", "create_env_file", "say", "up", "wait_until_ready"]

EXAMPLE_USER = 110


class StackError(Exception):
    """A part of the stack could not be started or stopped by itself."""


class Stop(Exception):
    """A signal asked the stack to stop."""


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def say(message: str) -> None:
    """Tell the person running `make run` what is happening."""
    print(f"==> {message}", flush=True)


def create_env_file(env_file: Path, example: Path) -> None:
    """Copy the example settings to `env_file` if there is none yet, and say so."""
    if not env_file.exists():
        shutil.copyfile(example, env_file)
        say(f"created {env_file} from {example.name}; edit it to change settings")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Return the status and body of a GET, or status 0 if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except (OSError, ValueError):
        return 0, b""


def http_post(url: str, body: object, timeout: float = 5.0) -> tuple[int, bytes]:
    """Return the status and body of a JSON POST, or status 0 if nothing answered."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except (OSError, ValueError):
        return 0, b""


def wait_until_ready(server: subprocess.Popen[bytes], base_url: str, timeout: float) -> None:
    """Poll /readyz until the server says it is ready; raise if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise StackError(f"the server exited with code {server.returncode} while starting")
        if http_get(f"{base_url}/readyz")[0] == 200:
            return
        if time.monotonic() > deadline:
            raise StackError(f"the server was not ready within {timeout:g} s")
        time.sleep(0.25)


def example_user(base_url: str) -> tuple[int, str]:
    """Return a user the default model knows (110 if it does) and the API's answer for them."""
    for handle in [EXAMPLE_USER, *range(1, 201)]:
        status, body = http_get(f"{base_url}/similar-users/{handle}")
        if status == 200:
            return handle, body.decode().strip()
    return EXAMPLE_USER, "(no user among 110 and 1..200 is known to the default model)"


def misspelt(name: str) -> str:
    """Return a name with one letter dropped from its middle (unchanged when it is short)."""
    if len(name) < 5:
        return name
    middle = len(name) // 2
    return name[:middle] + name[middle + 1 :]


def example_profile(base_url: str) -> tuple[str, str] | None:
    """Return a newcomer's profile query to the hybrid model (two popular interests, one of them
    misspelt, and a popular course), and its answer; None if the catalogue has too few names."""
    catalogue = f"{base_url}/catalogue?model_handle=hybrid&limit=20&kind="
    status, interests = http_get(catalogue + "interests")
    status_courses, courses = http_get(catalogue + "courses")
    if status != 200 or status_courses != 200:
        return None
    # Interests long enough for a dropped letter to leave them recognisable.
    tags = [name for name in json.loads(interests)["data"]["names"] if len(name) >= 5]
    titles = json.loads(courses)["data"]["names"]
    if len(tags) < 2 or not titles:
        return None
    query = {
        "profile": {"interests": [misspelt(tags[0]), tags[1]], "courses": titles[:1]},
        "model_handle": "hybrid",
        "top_n": 3,
        "explain": True,
    }
    status, answer = http_post(f"{base_url}/similar-users", query)
    return json.dumps(query), answer.decode().strip()


def banner(base_url: str) -> str:
    """Return what to tell the person once the server is ready: curls to paste, and answers."""
    handle, answer = example_user(base_url)
    curl = (
        f"curl -s -X POST {base_url}/similar-users -H 'Content-Type: application/json' "
        f"-d '{{\"user_handle\": {handle}}}'"
    )
    text = (
        f"similar-users is up on {base_url} (OpenAPI: {base_url}/openapi.json).\n\n"
        f"Explore it in a browser: {base_url}/\n\nOr try:\n\n"
    )
    text += f"{curl}\n\nwhich answers\n{answer}\n\n"
    profile = example_profile(base_url)
    if profile is not None:
        query, answered = profile
        text += (
            "Or ask for a newcomer's profile (names are matched, typos included; explain shows "
            "the evidence each neighbour shares):\n\n"
            f"curl -s -X POST {base_url}/similar-users -H 'Content-Type: application/json' "
            f"-d {shlex.quote(query)}\n\nwhich answers\n{answered}\n\n"
        )
    return text + "Press Ctrl-C to stop everything."


def dynamodb_local(place: Place, port: int, project_root: Path) -> tuple[str, DynamoDBLocal | None]:
    """Return the endpoint of DynamoDB Local for `place` on `port`, and the instance if started.

    One already running for the place (e.g. started by `make dynamodb-start`) is reused.
    """
    try:
        instance, started = start_or_reuse(place, port, project_root)
    except DynamoDBLocalError as error:
        raise StackError(f"{error} (DYNAMODB_PORT is {port})") from error
    if started:
        say(f"started DynamoDB Local on {instance.endpoint_url} ({place.describe()})")
        return instance.endpoint_url, instance
    say(f"reusing DynamoDB Local on {instance.endpoint_url} (pid {instance.pid})")
    return instance.endpoint_url, None


def generate(
    env: Mapping[str, str], synthetic_users: int | None, project_root: Path
) -> subprocess.Popen[bytes]:
    """Start the generator on $DATA_DIR, or a synthetic export (of 10,000 users by default)."""
    command = [sys.executable, str(project_root / "run_generator.py"), "generate"]
    if synthetic_users is not None:
        command += ["--synthetic-users", str(synthetic_users)]
        env = {**env, "DATA_DIR": ""}
    source = env.get("DATA_DIR") or f"a synthetic export of {synthetic_users or 10_000:,} users"
    say(f"generating similar users from {source}")
    return subprocess.Popen(command, env=dict(env), cwd=project_root)


def up(
    *,
    host: str,
    port: int,
    dynamodb_port: int,
    place: Place,
    env: Mapping[str, str],
    env_file: Path,
    generate_runs: bool = True,
    synthetic_users: int | None = None,
    project_root: Path = PROJECT_ROOT,
) -> int:
    """Start DynamoDB Local, publish runs, serve the API until Ctrl-C or SIGTERM; stop it all.

    `host` and `port` are the server's; `env` is the environment of the generator and the server
    (the endpoint of DynamoDB Local is added to it); the server reads `env_file` too. Returns the
    exit status: 0 when stopped by a signal, 1 when a part failed.
    """
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    owned: DynamoDBLocal | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}  # by what to call them when stopping
    previous = {s: signal.signal(s, _stop_on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if port_in_use(port):
            raise StackError(f"port {port} is in use: set PORT to a free port")
        endpoint, owned = dynamodb_local(place, dynamodb_port, project_root)
        env = {**env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "HOST": host, "PORT": str(port)}
        if generate_runs:
            children["the generator"] = generate(env, synthetic_users, project_root)
            code = children["the generator"].wait()
            del children["the generator"]  # done: nothing to stop
            if code != 0:
                raise StackError(f"the generator failed (exit code {code})")

        say(f"starting the server on {host}:{port}")
        serve = [sys.executable, str(project_root / "run_server.py")]
        serve += ["--env-file", str(env_file), "serve"]
        server = children["the server"] = subprocess.Popen(serve, env=env, cwd=project_root)
        wait_until_ready(server, base_url, timeout=60)
        say(banner(base_url))
        code = server.wait()
        raise StackError(f"the server stopped by itself (exit code {code})")
    except Stop as stop:
        say(f"{stop}: stopping")
        return 0
    except (StackError, DynamoDBLocalError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        for name, child in reversed(children.items()):
            terminate(child)
            say(f"stopped {name}")
        if owned is not None:
            stop_started(place, owned)
            say("stopped DynamoDB Local")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
