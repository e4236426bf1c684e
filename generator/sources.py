"""Where an export comes from: a local folder, or an S3 prefix copied to a local folder first.

`fetch_export("s3://bucket/exports/", scratch, connect_s3)` downloads the export files found
directly under the prefix (`user_interests.csv`, ..., plain or `.csv.gz`) so that `load_tables`
reads them like any folder; anything else is taken as a local folder and returned unchanged. The
S3 client comes from `connect_s3`, called only for an s3:// URI, so the entry point (or a test)
decides where S3 is and who asks (run_generator.py makes it from its settings). Nothing is
downloaded unless every export file fits in the free space of the destination's disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from generator.tables import TABLE_NAMES, TableError

__all__ = [
    "EXPORT_FILES",
    "S3_SCHEME",
    "fetch_export",
    "fingerprint",
    "parse_s3_uri",
    "s3_fingerprint",
]

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
EXPORT_FILES: frozenset[str] = frozenset(
    f"{name}{suffix}" for name in TABLE_NAMES for suffix in (".csv", ".csv.gz")
)
_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class DiskUsage(Protocol):
    """What `shutil.disk_usage` tells of a disk: here only its free bytes."""

    @property
    def free(self) -> int: ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Return the bucket and the key prefix (empty, or ending in '/') of an s3:// URI."""
    if not uri.startswith(S3_SCHEME):
        raise TableError(f"{uri}: not an s3:// URI")
    bucket, _, prefix = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise TableError(f"{uri}: no bucket in the S3 URI (expected s3://bucket/prefix)")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # a prefix names a folder: s3://b/exports must not match exports-old/
    return bucket, prefix


def fetch_export(
    uri: str,
    dest: Path,
    connect_s3: Callable[[], Any],
    disk_usage: Callable[[Path], DiskUsage] = shutil.disk_usage,
) -> Path:
    """Return a local folder holding the export at `uri`, downloading an s3:// one into `dest`.

    `connect_s3` returns the S3 client to download with; it is called only for an s3:// URI.
    `disk_usage` tells the free space of the disk holding `dest`, checked before any download.
    """
    if not uri.startswith(S3_SCHEME):
        return Path(uri)
    bucket, prefix = parse_s3_uri(uri)
    started = time.monotonic()
    try:
        client = connect_s3()
        keys = _export_keys(client, bucket, prefix)
        if not keys:
            expected = ", ".join(f"{name}.csv" for name in TABLE_NAMES)
            raise TableError(
                f"{uri}: none of the exports is there (expected {expected}, or .csv.gz, "
                "directly under the prefix)"
            )
        dest.mkdir(parents=True, exist_ok=True)
        _check_space(bucket, keys, dest, disk_usage(dest).free)
        total = 0
        for key, size in keys:
            target = dest / key[len(prefix) :]
            try:
                client.download_file(bucket, key, str(target))
            except OSError as error:  # the disk filled up meanwhile, or cannot be written
                message = f"s3://{bucket}/{key}: cannot be saved to {target}: {error}"
                raise TableError(message) from error
            total += size
            log.info("downloaded s3://%s/%s (%s bytes)", bucket, key, f"{size:,}")
    except ClientError as error:
        raise TableError(_client_error_message(uri, error)) from error
    except BotoCoreError as error:
        raise TableError(f"{uri}: cannot read the export from S3: {error}") from error
    log.info(
        "fetched %d export file(s), %s bytes, from %s in %.1f s",
        len(keys),
        f"{total:,}",
        uri,
        time.monotonic() - started,
    )
    return dest


def _check_space(bucket: str, keys: list[tuple[str, int]], dest: Path, free: int) -> None:
    """Refuse an export whose files (key, bytes) do not all fit in the `free` bytes of `dest`."""
    needed = 0
    for key, size in keys:
        needed += size
        if needed > free:
            raise TableError(
                f"s3://{bucket}/{key}: the object is {size:,} bytes; with the export files before "
                f"it, {needed:,} bytes are needed in {dest}, where {free:,} bytes are free; "
                "nothing was downloaded (free space there, or give the generator a larger disk)"
            )


def _export_keys(client: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """Return (key, size) of every export file directly under `prefix`, sorted by key."""
    found = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if key[len(prefix) :] in EXPORT_FILES:
                found.append((key, int(entry["Size"])))
    return sorted(found)


def s3_fingerprint(uri: str, client: Any) -> dict[str, Any]:
    """Return what identifies the export under an s3:// URI without reading it: each export
    file's size and ETag, and an ``id`` over them (another id than `fingerprint` gives the same
    files downloaded: what a cluster that reads S3 in place records)."""
    bucket, prefix = parse_s3_uri(uri)
    files: dict[str, dict[str, Any]] = {}
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            for entry in page.get("Contents", []):
                name = entry["Key"][len(prefix) :]
                if name in EXPORT_FILES:
                    files[name] = {"bytes": int(entry["Size"]), "etag": entry["ETag"].strip('"')}
    except ClientError as error:
        raise TableError(_client_error_message(uri, error)) from error
    except BotoCoreError as error:
        raise TableError(f"{uri}: S3 cannot be reached ({error})") from error
    summary = json.dumps(files, sort_keys=True).encode()
    return {"id": hashlib.sha256(summary).hexdigest()[:16], "files": files, "of": "S3 ETags"}


def _client_error_message(uri: str, error: ClientError) -> str:
    """Say in plain words why S3 refused, naming the URI."""
    code = str(error.response.get("Error", {}).get("Code", "Unknown"))
    if code in _DENIED or code == "403":
        return (
            f"{uri}: access denied by S3 ({code}); the generator's role needs s3:ListBucket on "
            "the bucket and s3:GetObject on the prefix"
        )
    if code == "NoSuchBucket":
        return f"{uri}: no such bucket"
    if code in ("NoSuchKey", "404"):
        return f"{uri}: an export file disappeared while it was being downloaded ({code})"
    return f"{uri}: S3 refused the request ({code}): {error}"


def fingerprint(folder: Path) -> dict[str, Any]:
    """Return what identifies the export in `folder`: each export file's size and SHA-256, and
    an ``id`` over all of them (the same files, the same id, wherever they were read from)."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if path.name in EXPORT_FILES and path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
            files[path.name] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    summary = json.dumps(files, sort_keys=True).encode()
    return {"id": hashlib.sha256(summary).hexdigest()[:16], "files": files}
