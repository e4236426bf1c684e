"""Where a run's model artifact lives: a folder of files in a local folder or under an S3 prefix.

An artifact is the flat folder ``<root>/<model_handle>/<run_id>/`` of the files a run's model needs
(the generator decides what they hold; this module only moves and checks them), plus
``MANIFEST.json``, which lists every other file with its size and SHA-256. The run record keeps the
SHA-256 of the manifest's bytes, so that one hash pins every file.

A writer asks `ArtifactStore.stage` for an empty folder, writes its files there and hands it to
`ArtifactStore.put`, which makes them durable at their final place before it returns: locally by
one rename of the whole folder, on S3 by uploading the manifest after every file it lists. Either
way a folder or prefix with a manifest is complete. A reader asks `ArtifactStore.fetch` for a local
folder of verified files. No boto3 here: an S3 store is given a function that returns a client.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from store import StoreError, StoreUnavailableError

__all__ = [
    "MANIFEST",
    "Artifact",
    "ArtifactCorruptError",
    "ArtifactError",
    "ArtifactMissingError",
    "ArtifactStore",
    "ArtifactUnavailableError",
    "FileArtifacts",
    "S3Artifacts",
    "check_name",
    "open_artifacts",
    "verify",
]

MANIFEST = "MANIFEST.json"  # lists every other file of an artifact: name, bytes, sha256
FILE_SCHEME = "file://"
S3_SCHEME = "s3://"
CHUNK = 1 << 20  # files are hashed in pieces of this many bytes, never read whole
# A model handle, a run id or a file name: one path component that is never "." or "..", nor
# hidden (the local store keeps its staging folder under a hidden name beside the models).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STAGING = ".staging"
_TRASH = ".trash"
# Runs of a model whose downloads a server keeps in its cache (the newest; older ones are removed
# when a new one is fetched): the current run, the one before, and one more for a rollback.
CACHED_RUNS = 3


class ArtifactError(StoreError):
    """A run's artifact cannot be written, found or trusted; the message names its URI."""


class ArtifactMissingError(ArtifactError):
    """A run's artifact, or one of its files, is not there."""


class ArtifactCorruptError(ArtifactError):
    """A run's artifact is not what its run record pins: a checksum or size differs, the manifest
    is malformed, or a file is there that the manifest does not list."""


class ArtifactUnavailableError(ArtifactError, StoreUnavailableError):
    """Where the artifacts are kept could not be reached, or did not answer in time."""


@dataclass(frozen=True)
class Artifact:
    """A run's artifact as its run record names it."""

    uri: (
        str  # the run's folder: file:///abs/<model>/<run_id> or s3://bucket/prefix/<model>/<run_id>
    )
    sha256: str  # hex SHA-256 of the MANIFEST.json bytes
    bytes: int  # total size of all the files, MANIFEST.json included

    def describe(self) -> dict[str, Any]:
        """Return the artifact as plain JSON for the run record."""
        return {"uri": self.uri, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Artifact:
        """Return the artifact a run record describes; ArtifactError if the record is malformed."""
        if not isinstance(record, Mapping):
            raise ArtifactError(f"a run's artifact must be an object, not {type(record).__name__}")
        uri, sha256, size = record.get("uri"), record.get("sha256"), record.get("bytes")
        if not isinstance(uri, str) or not uri.startswith((FILE_SCHEME, S3_SCHEME)):
            raise ArtifactError(f"a run's artifact has no file:// or s3:// uri: {uri!r}")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ArtifactError(f"{uri}: the artifact's sha256 is not 64 hex digits: {sha256!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArtifactError(f"{uri}: the artifact's bytes is not a size: {size!r}")
        return cls(uri=uri, sha256=sha256, bytes=size)


class ArtifactStore(Protocol):
    """Where the artifacts of runs are written, fetched and deleted."""

    def stage(self, model_handle: str, run_id: str) -> Path:
        """Return an empty local folder to write a run's files into, for `put`."""

    def put(self, model_handle: str, run_id: str, folder: Path) -> Artifact:
        """Write the manifest of the staged folder's files, make them durable at the run's place,
        remove the staged folder, and return the artifact; ArtifactError if it cannot."""

    def fetch(self, artifact: Artifact, cache: Path) -> Path:
        """Return a local folder holding the artifact's verified files (downloaded under `cache`
        when they are not local); ArtifactMissingError, ArtifactCorruptError or ArtifactError."""

    def delete(self, model_handle: str, run_id: str) -> None:
        """Delete a run's artifact, staged files included, if there is one."""

    def run_ids(self, model_handle: str) -> list[str]:
        """Return the ids of the model's runs that have an artifact, or part of one, sorted."""


def check_name(kind: str, value: str) -> str:
    """Return `value` if it is a safe path component (no '/', not '..', not hidden); else
    ValueError naming `kind`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{kind} {value!r} cannot name a folder: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return value


# -- the manifest and checking files ---------------------------------------------------------


def _digest(path: Path) -> tuple[int, str]:
    """Return the size and hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _write_manifest(folder: Path, uri: str, sync: bool) -> tuple[bytes, int]:
    """Write MANIFEST.json listing every file of `folder`; return its bytes and the total size.

    With `sync`, each file and the manifest are flushed to disk first (fsync).
    """
    files: list[dict[str, Any]] = []
    for path in sorted(folder.iterdir()):
        if path.name == MANIFEST:
            raise ArtifactError(f"{uri}: {MANIFEST} is written by the store, not by the writer")
        if not path.is_file() or path.is_symlink() or not _NAME.fullmatch(path.name):
            raise ArtifactError(
                f"{uri}: {path.name!r} cannot be part of an artifact (only plain files with "
                "simple names, no folders or links)"
            )
        if sync:
            with path.open("rb") as file:
                os.fsync(file.fileno())
        size, sha256 = _digest(path)
        files.append({"name": path.name, "bytes": size, "sha256": sha256})
    manifest = json.dumps({"files": files}, sort_keys=True, indent=1).encode()
    with (folder / MANIFEST).open("wb") as file:
        file.write(manifest)
        if sync:
            file.flush()
            os.fsync(file.fileno())
    return manifest, len(manifest) + sum(int(f["bytes"]) for f in files)


def _read_manifest(folder: Path, sha256: str, uri: str) -> tuple[list[tuple[str, int, str]], int]:
    """Return (name, bytes, sha256) of each file the manifest in `folder` lists, and the
    manifest's own size, once its SHA-256 is `sha256`; ArtifactMissingError or
    ArtifactCorruptError naming `uri`."""
    path = folder / MANIFEST
    try:
        manifest = path.read_bytes()
    except FileNotFoundError:
        if not folder.is_dir():
            raise ArtifactMissingError(f"{uri}: no such artifact") from None
        raise ArtifactMissingError(f"{uri}: {MANIFEST} is missing") from None
    except OSError as error:
        raise ArtifactError(f"{uri}: {MANIFEST} cannot be read: {error}") from error
    found = hashlib.sha256(manifest).hexdigest()
    if found != sha256:
        raise ArtifactCorruptError(
            f"{uri}: {MANIFEST} has sha256 {found}, the run record says {sha256}"
        )
    try:
        entries = [(f["name"], f["bytes"], f["sha256"]) for f in json.loads(manifest)["files"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactCorruptError(f"{uri}: {MANIFEST} is malformed ({error})") from None
    names = [name for name, _, _ in entries]
    for name, size, digest in entries:
        if (
            not isinstance(name, str)
            or not _NAME.fullmatch(name)
            or name == MANIFEST
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or not isinstance(digest, str)
            or not _SHA256.fullmatch(digest)
        ):
            raise ArtifactCorruptError(f"{uri}: {MANIFEST} lists a malformed file: {name!r}")
    if len(set(names)) != len(names):
        raise ArtifactCorruptError(f"{uri}: {MANIFEST} lists a file twice")
    return entries, len(manifest)


def _verify(folder: Path, sha256: str, uri: str) -> int:
    """Check every file of the artifact in `folder` against its manifest; return the total size."""
    entries, total = _read_manifest(folder, sha256, uri)
    for name, size, digest in entries:
        path = folder / name
        try:
            found_size = path.stat().st_size
            if found_size != size:  # no need to read it
                raise ArtifactCorruptError(f"{uri}: {name} has {found_size} bytes, not {size}")
            found_size, found = _digest(path)
        except FileNotFoundError:
            raise ArtifactMissingError(f"{uri}: {name} is missing") from None
        except OSError as error:
            raise ArtifactError(f"{uri}: {name} cannot be read: {error}") from error
        if found_size != size or found != digest:  # changed while read, or damaged
            raise ArtifactCorruptError(f"{uri}: {name} has sha256 {found}, not {digest}")
        total += size
    listed = {name for name, _, _ in entries} | {MANIFEST}
    try:
        unexpected = sorted(p.name for p in folder.iterdir() if p.name not in listed)
    except OSError as error:
        raise ArtifactError(f"{uri}: the artifact's folder cannot be listed: {error}") from error
    if unexpected:
        more = f" (nor {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise ArtifactCorruptError(f"{uri}: {unexpected[0]} is not listed in {MANIFEST}{more}")
    return total


def verify(folder: Path, sha256: str, uri: str) -> None:
    """Check that `folder` holds exactly the artifact whose manifest has SHA-256 `sha256`: the
    manifest first, then each file's size and SHA-256; ArtifactMissingError or
    ArtifactCorruptError naming `uri` and the file."""
    _verify(folder, sha256, uri)


def _check(folder: Path, artifact: Artifact) -> None:
    """Verify `folder` as the artifact, its total size included."""
    total = _verify(folder, artifact.sha256, artifact.uri)
    if total != artifact.bytes:
        raise ArtifactCorruptError(
            f"{artifact.uri}: the files add up to {total} bytes, the run record says "
            f"{artifact.bytes}"
        )


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk, so a rename into it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(folder: Path, trash: Path) -> None:
    """Remove a folder by first renaming it into `trash`, so it is never seen half-removed."""
    trash.mkdir(parents=True, exist_ok=True)
    doomed = trash / f"{folder.name}-{secrets.token_hex(4)}"
    try:
        folder.rename(doomed)
    except FileNotFoundError:
        return  # gone already: removing is idempotent
    shutil.rmtree(doomed, ignore_errors=True)


def _prune(folder: Path, keep: int, kept: str, trash: Path) -> None:
    """Remove the downloads of a model's runs but the newest `keep` and the run `kept` (just
    fetched, maybe an older run a rollback went back to); run ids sort by time.

    A worker still reading a removed run keeps its mapped pages: a removed file's pages stay
    until every process that mapped it lets go."""
    runs = sorted(p for p in folder.iterdir() if _NAME.fullmatch(p.name) and p.is_dir())
    for old in runs[:-keep]:
        if old.name != kept:
            _remove(old, trash)


# -- local folders -----------------------------------------------------------------------------


class FileArtifacts:
    """Keep artifacts in a local folder: ``<root>/<model_handle>/<run_id>/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))

    def _folder(self, model_handle: str, run_id: str) -> Path:
        return self.root / check_name("model handle", model_handle) / check_name("run id", run_id)

    def _staged(self, model_handle: str, run_id: str) -> Path:
        return self.root / _STAGING / model_handle / run_id

    def uri(self, model_handle: str, run_id: str) -> str:
        """Return the URI of a run's artifact in this store."""
        return self._folder(model_handle, run_id).as_uri()

    def stage(self, model_handle: str, run_id: str) -> Path:
        self._folder(model_handle, run_id)  # checks the names
        # Under the root, so that `put` is one rename on the same file system.
        staged = self._staged(model_handle, run_id)
        try:
            if staged.exists():  # left by a writer of this run that died
                shutil.rmtree(staged)
            staged.mkdir(parents=True)
        except OSError as error:
            raise ArtifactError(f"cannot stage an artifact in {staged}: {error}") from error
        return staged

    def put(self, model_handle: str, run_id: str, folder: Path) -> Artifact:
        final = self._folder(model_handle, run_id)
        uri = final.as_uri()
        try:
            manifest, total = _write_manifest(folder, uri, sync=True)
            _fsync_dir(folder)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                raise ArtifactError(f"{uri}: the run already has an artifact")
            try:
                folder.rename(final)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                # A folder staged elsewhere: copy it next to the final place, then rename that.
                staged = self._staged(model_handle, run_id)
                shutil.rmtree(staged, ignore_errors=True)
                shutil.copytree(folder, staged)
                for path in staged.iterdir():
                    with path.open("rb") as file:
                        os.fsync(file.fileno())
                _fsync_dir(staged)
                staged.rename(final)
                shutil.rmtree(folder)
            _fsync_dir(final.parent)
        except OSError as error:
            raise ArtifactError(f"{uri}: cannot write the artifact: {error}") from error
        return Artifact(uri=uri, sha256=hashlib.sha256(manifest).hexdigest(), bytes=total)

    def fetch(self, artifact: Artifact, cache: Path) -> Path:
        folder = self._locate(artifact)
        _check(folder, artifact)
        return folder

    def _locate(self, artifact: Artifact) -> Path:
        """Return the folder of an artifact of this store; ArtifactError if it is not one."""
        if artifact.uri.startswith(FILE_SCHEME):
            folder = Path(os.path.abspath(unquote(artifact.uri[len(FILE_SCHEME) :])))
            try:
                if folder == self._folder(folder.parent.name, folder.name):
                    return folder
            except ValueError:
                pass
        raise ArtifactError(
            f"{artifact.uri}: not an artifact of this store ({self.root.as_uri()}); "
            "the generator and the server must be given the same ARTIFACT_URI"
        )

    def delete(self, model_handle: str, run_id: str) -> None:
        trash = self.root / _TRASH
        try:
            _remove(self._folder(model_handle, run_id), trash)
            _remove(self._staged(model_handle, run_id), trash)
        except OSError as error:
            uri = self.uri(model_handle, run_id)
            raise ArtifactError(f"{uri}: cannot delete the artifact: {error}") from error

    def run_ids(self, model_handle: str) -> list[str]:
        """Return the runs with an artifact or a staged part of one (a writer's, maybe dead),
        and empty what earlier deletes left in the trash (a delete that died half-way)."""
        folders = [
            self.root / check_name("model handle", model_handle),
            self.root / _STAGING / model_handle,
        ]
        found: set[str] = set()
        try:
            for folder in folders:
                if folder.is_dir():
                    found.update(p.name for p in folder.iterdir() if _NAME.fullmatch(p.name))
            trash = self.root / _TRASH
            if trash.is_dir():
                for left in trash.iterdir():
                    shutil.rmtree(left, ignore_errors=True)
        except OSError as error:
            raise ArtifactError(
                f"{self.root.as_uri()}: cannot list the artifacts: {error}"
            ) from error
        return sorted(found)


# -- S3 ----------------------------------------------------------------------------------------

_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
}
_BUSY = {
    "500",
    "503",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
}


def _chain(error: BaseException) -> Iterator[BaseException]:
    """Yield an exception and those it wraps (boto3's transfer errors keep theirs aside)."""
    seen: BaseException | None = error
    for _ in range(8):  # a chain is short; a loop in one must not hang
        if seen is None:
            return
        yield seen
        wrapped = getattr(seen, "last_exception", None)
        seen = wrapped if isinstance(wrapped, BaseException) else seen.__cause__ or seen.__context__


def _from_sdk(error: BaseException) -> bool:
    """Say whether an exception comes from the AWS SDK: botocore's, or boto3's transfer wrappers,
    told by their module so that boto3 need not be imported here."""
    from botocore.exceptions import BotoCoreError, ClientError

    package = type(error).__module__.partition(".")[0]
    return isinstance(error, BotoCoreError | ClientError) or package in ("boto3", "s3transfer")


def _error_code(error: BaseException) -> str | None:
    """Return S3's error code behind an SDK exception, or None if S3 gave none."""
    for seen in _chain(error):
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", "")) or None
    return None


def _unreachable(error: BaseException) -> bool:
    """Say whether an SDK exception means S3 could not be reached or stopped answering."""
    from botocore.exceptions import ConnectionError as SdkConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError

    unanswered = (SdkConnectionError, HTTPClientError, IncompleteReadError)
    return any(
        isinstance(seen, unanswered) or type(seen).__name__ == "RetriesExceededError"
        for seen in _chain(error)
    )


class S3Artifacts:
    """Keep artifacts under an S3 prefix: ``s3://<bucket>/<prefix><model_handle>/<run_id>/``.

    `connect` returns the S3 client; it is called once, when S3 is first needed, and the client
    is shared by the threads that use the store.
    """

    def __init__(self, connect: Callable[[], Any], bucket: str, prefix: str = "") -> None:
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @property
    def client(self) -> Any:
        """Return the S3 client, made on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _key(self, model_handle: str, run_id: str, name: str = "") -> str:
        model = check_name("model handle", model_handle)
        return f"{self.prefix}{model}/{check_name('run id', run_id)}/{name}"

    def uri(self, model_handle: str, run_id: str) -> str:
        """Return the URI of a run's artifact in this store."""
        return f"{S3_SCHEME}{self.bucket}/{self._key(model_handle, run_id).rstrip('/')}"

    @contextmanager
    def _s3(self, uri: str, doing: str, needs: str) -> Iterator[None]:
        """Turn the SDK's failures while `doing` into ArtifactErrors naming `uri`; `needs` says
        which permission a refusal means is missing."""
        try:
            yield
        except Exception as error:
            if not _from_sdk(error):
                raise
            code = _error_code(error)
            if code in _MISSING:
                raise ArtifactMissingError(f"{uri}: {doing}: not found ({code})") from error
            if code in _DENIED:
                # Without s3:ListBucket, S3 answers 403 rather than 404 for a missing object.
                kind = ArtifactMissingError if needs == "s3:GetObject" else ArtifactError
                raise kind(
                    f"{uri}: {doing}: access denied ({code}): the object is missing, or the "
                    f"role lacks {needs}"
                ) from error
            if code in _BUSY or (code is None and _unreachable(error)):
                message = f"{uri}: {doing}: S3 did not answer: {error}"
                raise ArtifactUnavailableError(message) from error
            raise ArtifactError(f"{uri}: {doing}: S3 refused ({code or 'no code'}): {error}") from (
                error
            )

    def stage(self, model_handle: str, run_id: str) -> Path:
        self._key(model_handle, run_id)  # checks the names
        try:
            return Path(tempfile.mkdtemp(prefix=f"similar-users-{model_handle}-{run_id}-"))
        except OSError as error:
            raise ArtifactError(f"cannot stage an artifact: {error}") from error

    def put(self, model_handle: str, run_id: str, folder: Path) -> Artifact:
        uri = self.uri(model_handle, run_id)
        try:
            manifest, total = _write_manifest(folder, uri, sync=False)
            # The manifest last: an artifact whose manifest can be read is complete.
            names = [p.name for p in sorted(folder.iterdir()) if p.name != MANIFEST] + [MANIFEST]
            for name in names:
                key = self._key(model_handle, run_id, name)
                with self._s3(uri, f"uploading {name}", "s3:PutObject"):
                    # upload_file sends a large file in parallel parts (multipart upload)
                    self.client.upload_file(str(folder / name), self.bucket, key)
        except OSError as error:
            raise ArtifactError(f"{uri}: cannot read the staged artifact: {error}") from error
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return Artifact(uri=uri, sha256=hashlib.sha256(manifest).hexdigest(), bytes=total)

    def _locate(self, artifact: Artifact) -> tuple[str, str]:
        """Return the model handle and run id of an artifact of this store; else ArtifactError."""
        head, _, run_id = artifact.uri.rpartition("/")
        model_handle = head.rpartition("/")[2]
        try:
            if self.uri(model_handle, run_id) == artifact.uri:
                return model_handle, run_id
        except ValueError:
            pass
        raise ArtifactError(
            f"{artifact.uri}: not an artifact of this store ({S3_SCHEME}{self.bucket}/"
            f"{self.prefix}); the generator and the server must be given the same ARTIFACT_URI"
        )

    def fetch(self, artifact: Artifact, cache: Path) -> Path:
        model_handle, run_id = self._locate(artifact)
        target = cache / model_handle / run_id
        try:
            if target.is_dir():
                try:
                    _check(target, artifact)
                    return target
                except ArtifactError:  # a damaged copy: fetched again below
                    _remove(target, cache / _TRASH)
            target.parent.mkdir(parents=True, exist_ok=True)
            # Each fetcher downloads into its own sibling and renames it into place: several
            # workers may fetch at once, and a folder at `target` is always a whole download.
            download = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=target.parent))
            try:
                self._download(artifact, model_handle, run_id, download)
                _check(download, artifact)
                try:
                    os.replace(download, target)
                except OSError as error:
                    if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    _check(target, artifact)  # another fetcher's, renamed first
            finally:
                shutil.rmtree(download, ignore_errors=True)
            _prune(target.parent, keep=CACHED_RUNS, kept=target.name, trash=cache / _TRASH)
        except OSError as error:
            raise ArtifactError(
                f"{artifact.uri}: cannot keep the artifact in {target}: {error}"
            ) from error
        return target

    def _download(self, artifact: Artifact, model_handle: str, run_id: str, into: Path) -> None:
        """Download the manifest, check it, then download every file it lists."""

        def download(name: str) -> None:
            key = self._key(model_handle, run_id, name)
            with self._s3(artifact.uri, f"downloading {name}", "s3:GetObject"):
                self.client.download_file(self.bucket, key, str(into / name))

        download(MANIFEST)
        entries, _ = _read_manifest(into, artifact.sha256, artifact.uri)
        for name, _, _ in entries:
            download(name)

    def _keys(self, prefix: str, uri: str, doing: str) -> Iterator[dict[str, Any]]:
        """Yield each page of objects and folders directly or wholly under `prefix`."""
        with self._s3(uri, doing, "s3:ListBucket"):
            paginator = self.client.get_paginator("list_objects_v2")
            yield from paginator.paginate(Bucket=self.bucket, Prefix=prefix)

    def delete(self, model_handle: str, run_id: str) -> None:
        uri = self.uri(model_handle, run_id)
        prefix = self._key(model_handle, run_id)
        for page in self._keys(prefix, uri, "listing the artifact to delete it"):
            keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if not keys:
                continue
            with self._s3(uri, "deleting the artifact", "s3:DeleteObject"):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise ArtifactError(
                    f"{uri}: {len(answer['Errors'])} object(s) could not be deleted, e.g. "
                    f"{first.get('Key')} ({first.get('Code')})"
                )

    def run_ids(self, model_handle: str) -> list[str]:
        prefix = f"{self.prefix}{check_name('model handle', model_handle)}/"
        uri = f"{S3_SCHEME}{self.bucket}/{prefix}"
        found = set()
        with self._s3(uri, "listing the artifacts", "s3:ListBucket"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(prefix) :].rstrip("/")
                    if _NAME.fullmatch(name):
                        found.add(name)
        return sorted(found)


# -- choosing a store --------------------------------------------------------------------------


def open_artifacts(uri: str, s3_client: Callable[[], Any]) -> ArtifactStore:
    """Return the artifact store a URI names: ``file://FOLDER`` (absolute as file:///abs, or
    relative to the working folder) or ``s3://BUCKET[/PREFIX]``; ValueError for anything else.

    `s3_client` returns the S3 client; it is called only for s3://, and only once S3 is needed.
    """
    text = uri.strip()
    if text.startswith(FILE_SCHEME):
        folder = unquote(text[len(FILE_SCHEME) :])
        if folder.startswith("localhost/"):  # file://localhost/abs is file:///abs
            folder = folder[len("localhost") :]
        if not folder:
            raise ValueError(f"{uri!r} names no folder (expected file:///absolute/folder)")
        return FileArtifacts(Path(folder))
    if text.startswith(S3_SCHEME):
        bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise ValueError(f"{uri!r} names no valid bucket (expected s3://bucket[/prefix])")
        if any(part in (".", "..") for part in prefix.split("/")):
            raise ValueError(f"{uri!r}: a prefix cannot hold '.' or '..' folders")
        return S3Artifacts(s3_client, bucket, prefix)
    raise ValueError(f"artifacts are kept at file://FOLDER or s3://BUCKET[/PREFIX], not {uri!r}")
