"""A lean way to send DynamoDB's two per-item calls, with boto3 as the fallback.

The server reads one ``GetItem`` per cache miss and publishing sends one ``BatchWriteItem`` per 25
lists. boto3's per-call machinery (event hooks, endpoint rules, user agent, signing, response
parsing) costs more CPU than the call itself does at DynamoDB Local, and so would botocore's
signer over a urllib3 pool (README, "Store and publishing", has the figures).

A call is the request body as DynamoDB's JSON protocol, signed with Signature Version 4 exactly as
botocore's ``SigV4Auth`` signs it (a test compares the two on the same request and time), sent on
a kept-alive ``http.client`` connection from a small pool. `FastPath.call` answers only what is
plainly right: a 200 answer that carries a CRC32 header its body matches, whose body is a JSON
object, and which, for ``GetItem``, holds no item or the item of the key asked for. Anything else
(an error answer, a throttle, a refused, dropped or timed-out connection, credentials that could
not be refreshed, JSON nested too deep to read) gives None, and the store repeats the call through
boto3, so retries, error codes and their meaning stay boto3's. Both calls are idempotent, so
sending one twice is safe.

Only `store/dynamo.py` uses this module.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import threading
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies

log = logging.getLogger(__name__)

# The calls a FastPath sends, by boto3 method name: the JSON protocol's target of each.
OPERATIONS = {
    "get_item": "DynamoDB_20120810.GetItem",
    "batch_write_item": "DynamoDB_20120810.BatchWriteItem",
}
CONTENT_TYPE = "application/x-amz-json-1.0"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _checked(operation: str, params: dict[str, Any], answer: object) -> dict[str, Any]:
    """Return a decoded answer if it is one to the call sent; raise ValueError if it is not."""
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    if operation == "get_item" and "Item" in answer:
        item, key = answer["Item"], params.get("Key")
        if not isinstance(item, dict) or not isinstance(key, dict):
            raise ValueError("the answer's item is not an object, or no key was asked for")
        if any(item.get(name) != value for name, value in key.items()):
            raise ValueError("the answer's item is not the one asked for")
    if operation == "batch_write_item" and not isinstance(answer.get("UnprocessedItems", {}), dict):
        raise ValueError("the answer's unprocessed items are not an object")
    return answer


class SigV4:
    """AWS Signature Version 4 of a JSON ``POST /`` to one service in one region.

    Signs the headers botocore's ``SigV4Auth`` signs for the same request (content-type, host,
    x-amz-date, x-amz-security-token when there is a session token, x-amz-target), with the
    signing key derived once per day and secret.
    """

    def __init__(self, region: str, service: str = "dynamodb") -> None:
        self.region = region
        self.service = service
        self._key: tuple[tuple[str, str], bytes] | None = None

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == (secret, day):
            return cached[1]
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        self._key = ((secret, day), key)
        return key

    def headers(
        self,
        host: str,
        target: str,
        body: bytes,
        credentials: ReadOnlyCredentials,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """Return the request's headers, Authorization included."""
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers = {"content-type": CONTENT_TYPE, "host": host, "x-amz-date": amz_date}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        headers["x-amz-target"] = target  # the names are now in sorted order, as SigV4 wants
        signed = ";".join(headers)
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                *(f"{name}:{value}" for name, value in headers.items()),
                "",
                signed,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        signature = hmac.new(
            self._signing_key(credentials.secret_key, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers


class FastPath:
    """Send ``GetItem`` and ``BatchWriteItem`` on kept-alive connections (see above)."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Credentials,
        connect_timeout: float,
        read_timeout: float,
        ca_certs: str | None = None,
        pool_size: int = 10,
    ) -> None:
        self._idle: list[http.client.HTTPConnection] = []  # kept alive, last used on top
        self._lock = threading.Lock()
        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path.strip("/"):
            raise ValueError(f"not a DynamoDB endpoint the fast path can use: {endpoint_url}")
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.host = parts.netloc.rsplit("@", 1)[-1].lower()
        if parts.port == _DEFAULT_PORTS[parts.scheme]:
            self.host = self.host.rsplit(":", 1)[0]  # as signed and sent: no default port
        self.credentials = credentials
        self.signer = SigV4(region)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._tls = ssl.create_default_context(cafile=ca_certs) if self.scheme == "https" else None
        self.pool_size = pool_size
        self.calls = 0  # approximate counts (not locked), for tests and diagnosis
        self.fallbacks = 0

    @classmethod
    def for_client(
        cls, client: Any, credentials: Credentials | None, ca_bundle: str | None
    ) -> FastPath | None:
        """Return a fast path to a boto3 client's endpoint, or None where only boto3 knows the way.

        None when there are no credentials (boto3 then says so on the first call), when a proxy is
        set, or when the endpoint has a path; the endpoint is the client's own, so FIPS, dual-stack
        and local endpoints carry over.
        """
        config = client.meta.config
        url = client.meta.endpoint_url
        if credentials is None or config.proxies or get_environ_proxies(url):
            return None
        try:
            return cls(
                url,
                client.meta.region_name,
                credentials,
                config.connect_timeout,
                config.read_timeout,
                ca_certs=ca_bundle or get_cert_path(True),
                pool_size=config.max_pool_connections,
            )
        except ValueError:
            return None

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Return the answer of a call (a boto3 method name and its parameters), or None."""
        self.calls += 1
        connection = None
        try:
            body = json.dumps(params, separators=(",", ":")).encode()
            # Refreshing temporary credentials (e.g. from the container credentials endpoint)
            # can fail with a BotoCoreError: boto3 tries again, and says what it means.
            credentials = self.credentials.get_frozen_credentials()
            headers = self.signer.headers(self.host, OPERATIONS[operation], body, credentials)
            connection = self._take()
            connection.request("POST", "/", body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            checksum = answer.getheader("x-amz-crc32")
            if answer.status != 200:
                raise ValueError(f"HTTP {answer.status}")
            if checksum is None:
                raise ValueError("the answer has no CRC32 header")
            if int(checksum) != zlib.crc32(data):
                raise ValueError("the answer does not match its CRC32")
            result = _checked(operation, params, json.loads(data))
        except (
            OSError,
            http.client.HTTPException,
            ValueError,
            TypeError,
            RecursionError,  # JSON nested deeper than the parser goes
            BotoCoreError,
        ) as error:
            if connection is not None:
                connection.close()
            self.fallbacks += 1
            log.debug("DynamoDB %s goes through boto3: %r", operation, error)
            return None
        self._give_back(connection)
        return result

    def _take(self) -> http.client.HTTPConnection:
        """Return an idle kept-alive connection, or a new one."""
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if connection.sock is not None:  # else the store closed it after answering
                    return connection
        if self._tls is not None:
            connection = http.client.HTTPSConnection(
                self.hostname, self.port, timeout=self.connect_timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(
                self.hostname, self.port, timeout=self.connect_timeout
            )
        connection.connect()
        connection.sock.settimeout(self.read_timeout)
        return connection

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if connection.sock is not None and len(self._idle) < self.pool_size:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close the idle connections (calls still running close theirs when they finish)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __del__(self) -> None:
        self.close()
