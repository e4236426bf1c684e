"""The store's fast path: signatures equal to botocore's, answers equal to boto3's, and a fallback
to boto3 for everything that is not a clean answer to the call sent."""

from __future__ import annotations

import http.server
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message

import boto3
import botocore.auth
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    RefreshableCredentials,
)
from botocore.exceptions import CredentialRetrievalError

from devstack import dynamodb_local as local
from server import Settings, create_app
from store import Neighbour, NeighbourList, Run, StoreUnavailableError, new_run_id
from store.dynamo import DynamoStore
from store.fast_path import CONTENT_TYPE, OPERATIONS, FastPath, SigV4
from store.items import to_item
from tests.fakes import publish_lists

NOW = datetime(2026, 11, 23, 21, 59, 58, tzinfo=UTC)
BODY = json.dumps({"TableName": "t", "Key": {"pk": {"S": "interests#1#3"}}}).encode()


@pytest.mark.parametrize("token", [None, "a-session-token"])
@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("https://dynamodb.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"),
        ("https://dynamodb.eu-west-1.amazonaws.com:443", "dynamodb.eu-west-1.amazonaws.com"),
    ],
)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_the_signature_is_the_one_botocore_makes(
    monkeypatch: pytest.MonkeyPatch, token: str | None, url: str, host: str, operation: str
) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(
        "POST",
        url + "/",
        data=BODY,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": OPERATIONS[operation]},
    )
    SigV4Auth(credentials.get_frozen_credentials(), "dynamodb", "eu-west-1").add_auth(request)

    path = FastPath(url, "eu-west-1", credentials, 1.0, 1.0)
    ours = path.signer.headers(
        path.host, OPERATIONS[operation], BODY, credentials.get_frozen_credentials(), NOW
    )

    assert path.host == host
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_the_signing_key_is_derived_again_for_a_new_day_or_secret() -> None:
    signer = SigV4("us-east-1")
    first = signer._signing_key("secret", "20261123")
    assert signer._signing_key("secret", "20261123") is first
    assert signer._signing_key("secret", "20261124") != first
    assert signer._signing_key("other", "20261124") != signer._signing_key("secret", "20261124")


# -- against a stub endpoint ----------------------------------------------------------------------


@dataclass
class Stub:
    """A loopback HTTP endpoint answering every POST as told, recording what it was sent."""

    port: int
    requests: list[tuple[Message, bytes]] = field(default_factory=list)
    connections: int = 0  # opened so far (an id() could be reused once a socket is freed)
    status: int = 200
    answer: bytes = b'{"Item": {"pk": {"S": "x"}, "user_handle": {"N": "7"}}}'
    checksum: int | None = None  # the x-amz-crc32 sent; None: the answer's own
    send_checksum: bool = True  # False: no x-amz-crc32 header at all
    close_after_answer: bool = False  # drop the connection while announcing keep-alive

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(port=local.free_port())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            state.connections += 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((self.headers, body))
            checksum = zlib.crc32(state.answer) if state.checksum is None else state.checksum
            self.send_response(state.status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(state.answer)))
            if state.send_checksum:
                self.send_header("x-amz-crc32", str(checksum))
            self.end_headers()
            self.wfile.write(state.answer)
            if state.close_after_answer:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_path() -> Iterator[Callable[[str], FastPath]]:
    """Make fast paths to URLs, closing their connections after the test."""
    made: list[FastPath] = []

    def make(url: str) -> FastPath:
        made.append(FastPath(url, "us-east-1", Credentials("local", "local"), 1.0, 1.0))
        return made[-1]

    yield make
    for path in made:
        path.close()


# The key of the item the stub answers with by default.
GET = {"TableName": "t", "Key": {"pk": {"S": "x"}, "user_handle": {"N": "7"}}}


def test_a_clean_answer_is_returned_and_the_request_carries_what_was_signed(
    stub: Stub, fast_path: Callable[[str], FastPath]
) -> None:
    path = fast_path(stub.url)
    params = GET

    assert path.call("get_item", params) == {"Item": {"pk": {"S": "x"}, "user_handle": {"N": "7"}}}
    assert path.call("get_item", params) is not None

    headers, body = stub.requests[0]
    assert json.loads(body) == params
    assert headers["Host"] == f"127.0.0.1:{stub.port}"
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.GetItem"
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-target," in headers["Authorization"]
    assert stub.connections == 1  # the second call reused the connection
    assert (path.calls, path.fallbacks) == (2, 0)


WRITE = ("batch_write_item", {"RequestItems": {}})
READ = ("get_item", GET)
DEEP = b"[" * 100_000 + b"]" * 100_000
NOT_CLEAN: list[tuple[str, tuple[str, dict[str, object]], dict[str, object]]] = [
    # (what, the call sent, how the endpoint answers it)
    ("error answer", WRITE, {"status": 400, "answer": b'{"__type": "ValidationException"}'}),
    ("server error", WRITE, {"status": 500, "answer": b'{"__type": "InternalServerError"}'}),
    ("bad checksum", WRITE, {"checksum": 12345}),
    ("no checksum", READ, {"send_checksum": False}),
    ("not json", WRITE, {"answer": b"not json"}),
    ("an array", READ, {"answer": b"[]"}),
    ("a string", READ, {"answer": b'"Item"'}),
    ("null", READ, {"answer": b"null"}),
    ("nested too deep", READ, {"answer": DEEP}),
    ("an item nested too deep", READ, {"answer": b'{"Item": ' + DEEP + b"}"}),
    ("an item that is not an object", READ, {"answer": b'{"Item": []}'}),
    (
        "another user's item",
        READ,
        {"answer": b'{"Item": {"pk": {"S": "x"}, "user_handle": {"N": "8"}}}'},
    ),
    (
        "another partition's item",
        READ,
        {"answer": b'{"Item": {"pk": {"S": "y"}, "user_handle": {"N": "7"}}}'},
    ),
    ("an item without its key", READ, {"answer": b'{"Item": {"similar_users": {"S": "[]"}}}'}),
    ("unprocessed items not an object", WRITE, {"answer": b'{"UnprocessedItems": []}'}),
]


@pytest.mark.parametrize(("what", "call", "change"), NOT_CLEAN, ids=[c[0] for c in NOT_CLEAN])
def test_anything_but_a_clean_answer_to_the_call_sent_is_left_to_boto3(
    stub: Stub,
    what: str,
    call: tuple[str, dict[str, object]],
    change: dict[str, object],
    fast_path: Callable[[str], FastPath],
) -> None:
    for name, value in change.items():
        setattr(stub, name, value)
    path = fast_path(stub.url)

    assert path.call(*call) is None
    assert path.fallbacks == 1


def test_no_item_is_a_clean_answer(stub: Stub, fast_path: Callable[[str], FastPath]) -> None:
    stub.answer = b"{}"
    assert fast_path(stub.url).call(*READ) == {}


@dataclass
class CredentialsEndpoint:
    """Where temporary credentials are refreshed from; until `up`, it fails as a container
    credentials endpoint that hiccups does."""

    up: bool = False

    def __call__(self) -> dict[str, str]:
        if not self.up:
            raise CredentialRetrievalError(provider="container-role", error_msg="timed out")
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return {
            "access_key": "local",
            "secret_key": "local",
            "token": "t",
            "expiry_time": str(expiry),
        }

    def credentials(self) -> RefreshableCredentials:
        """Return credentials that have expired, so that their next use refreshes them here."""
        expired = datetime.now(UTC) - timedelta(minutes=1)
        return RefreshableCredentials("local", "local", "t", expired, self, "container-role")


class Given(CredentialProvider):  # type: ignore[misc]
    """botocore's credential chain reduced to the credentials a test hands in."""

    METHOD = "given"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self.credentials = credentials

    def load(self) -> Credentials:
        return self.credentials


def signing_with(credentials: Credentials, url: str, table_prefix: str = "t") -> DynamoStore:
    """Return a store whose boto3 client and fast path both sign with the given credentials."""
    session = botocore.session.Session()
    session.register_component("credential_provider", CredentialResolver([Given(credentials)]))
    client = boto3.Session(botocore_session=session, region_name="us-east-1").client(
        "dynamodb", endpoint_url=url, config=Config(retries={"max_attempts": 1})
    )
    fast = FastPath(url, "us-east-1", credentials, 1.0, 1.0)
    return DynamoStore(client, table_prefix=table_prefix, fast_path=fast)


def test_credentials_that_cannot_be_refreshed_are_left_to_boto3(
    stub: Stub, fast_path: Callable[[str], FastPath]
) -> None:
    endpoint = CredentialsEndpoint()
    path = FastPath(stub.url, "us-east-1", endpoint.credentials(), 1.0, 1.0)
    try:
        assert path.call("get_item", GET) is None
        assert stub.requests == []
        endpoint.up = True
        assert path.call("get_item", GET) is not None
    finally:
        path.close()


def test_credentials_that_cannot_be_refreshed_are_a_503_with_retry_after(stub: Stub) -> None:
    store = signing_with(CredentialsEndpoint().credentials(), stub.url)
    api = create_app(store, Settings(retry_after_seconds=7)).test_client()
    try:
        response = api.get("/similar-users/7?model_handle=interests")
    finally:
        assert store.fast_path is not None
        store.fast_path.close()

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json["title"] == "Store unavailable"
    assert stub.requests == []  # neither boto3 nor the fast path sent anything unsigned


def test_a_refused_connection_is_left_to_boto3(fast_path: Callable[[str], FastPath]) -> None:
    path = fast_path(f"http://127.0.0.1:{local.free_port()}")
    assert path.call("get_item", {"TableName": "t"}) is None
    assert path.fallbacks == 1


def test_a_connection_the_store_dropped_is_replaced(
    stub: Stub, fast_path: Callable[[str], FastPath]
) -> None:
    stub.close_after_answer = True
    path = fast_path(stub.url)
    params = GET

    assert path.call("get_item", params) is not None
    # The connection looked alive but the store had closed it: this call goes to boto3 ...
    assert path.call("get_item", params) is None
    # ... and the next one opens a new connection.
    assert path.call("get_item", params) is not None
    assert stub.connections == 2


def test_parameters_json_cannot_carry_are_left_to_boto3(
    stub: Stub, fast_path: Callable[[str], FastPath]
) -> None:
    path = fast_path(stub.url)
    assert path.call("get_item", {"Key": {"b": {"B": b"\x00"}}}) is None
    assert stub.requests == []


def test_no_fast_path_where_boto3_alone_knows_the_way(monkeypatch: pytest.MonkeyPatch) -> None:
    store = DynamoStore.connect(region="us-east-1", endpoint_url="http://127.0.0.1:8000")
    assert store.fast_path is not None
    assert DynamoStore.connect(region="us-east-1", fast_path=False).fast_path is None
    # behind a proxy
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert DynamoStore.connect(region="us-east-1").fast_path is None
    monkeypatch.delenv("HTTPS_PROXY")
    # an endpoint with a path
    assert DynamoStore.connect(region="us-east-1", endpoint_url="http://h:1/x").fast_path is None
    # no credentials at all
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setattr("botocore.credentials.InstanceMetadataProvider.load", lambda self: None)
    monkeypatch.setattr("botocore.credentials.ContainerProvider.load", lambda self: None)
    assert DynamoStore.connect(region="us-east-1").fast_path is None


def test_the_fast_path_takes_the_clients_own_endpoint_and_timeouts() -> None:
    store = DynamoStore.connect(region="eu-west-1", connect_timeout=0.25, read_timeout=0.75)
    assert store.fast_path is not None
    assert store.fast_path.host == "dynamodb.eu-west-1.amazonaws.com"
    assert store.fast_path.scheme == "https"
    assert (store.fast_path.connect_timeout, store.fast_path.read_timeout) == (0.25, 0.75)


# -- against DynamoDB Local -----------------------------------------------------------------------


@pytest.mark.dynamodb_local
def test_the_fast_path_writes_and_reads_what_boto3_reads(local_store: DynamoStore) -> None:
    path = local_store.fast_path
    assert path is not None
    lists = {u: [(u + 1, 0.9), (u + 2, 0.433123)] for u in range(1, 61)}  # three batches
    run = publish_lists(local_store, lists)
    boto3_only = DynamoStore(local_store.client, table_prefix=local_store.table_prefix)

    for user, pairs in lists.items():
        found = local_store.get_list(run, user)
        assert found == boto3_only.get_list(run, user)
        assert found is not None and [(n.user_handle, n.score) for n in found.neighbours] == pairs
    assert local_store.get_list(run, 10_000) is None
    # 3 batch writes, the publish check's read, 61 reads: none went to boto3
    assert (path.calls, path.fallbacks) == (65, 0)


@pytest.mark.dynamodb_local
def test_the_fast_path_reads_mutual_matches_and_items_of_before_as_boto3_does(
    local_store: DynamoStore,
) -> None:
    path = local_store.fast_path
    assert path is not None
    lists = {
        1: [(2, 0.9, True), (3, 0.5, False), (4, 0.25, True)],
        2: [(1, 0.9, True)],
        3: [(9, 0.7, False)],
    }
    run = publish_lists(local_store, lists)
    # An item as runs written before mutual matches were marked hold it: no `mutual` attribute.
    old = NeighbourList(5, (Neighbour(1, 0.75), Neighbour(2, 0.5)))
    local_store.client.put_item(TableName=local_store.results_table, Item=to_item(run, old))
    boto3_only = DynamoStore(local_store.client, table_prefix=local_store.table_prefix)

    for user, entries in lists.items():
        found = local_store.get_list(run, user)
        assert found == boto3_only.get_list(run, user)
        assert found is not None
        assert [(n.user_handle, n.score, n.mutual) for n in found.neighbours] == entries
    assert local_store.get_list(run, 5) == boto3_only.get_list(run, 5) == old
    assert path.fallbacks == 0


@pytest.mark.dynamodb_local
def test_errors_mean_what_they_mean_through_boto3(
    dynamodb_local: local.DynamoDBLocal, table_prefix: str
) -> None:
    store = DynamoStore.connect(
        table_prefix=table_prefix, region="us-east-1", endpoint_url=dynamodb_local.endpoint_url
    )
    run = Run("interests", new_run_id(), "2026-11-23T10:00:00Z", top_n=2)
    with pytest.raises(StoreUnavailableError, match="do not exist"):
        store.get_list(run, 1)  # no tables yet: a 400 answer, repeated through boto3
    assert store.fast_path is not None and store.fast_path.fallbacks == 1


@pytest.mark.dynamodb_local
def test_a_fast_path_to_nowhere_still_answers_through_boto3(
    local_store: DynamoStore, fast_path: Callable[[str], FastPath]
) -> None:
    run = publish_lists(local_store, {2: [(3, 0.9)]})
    nowhere = fast_path(f"http://127.0.0.1:{local.free_port()}")
    store = DynamoStore(
        local_store.client, table_prefix=local_store.table_prefix, fast_path=nowhere
    )

    assert store.get_list(run, 2) == NeighbourList(2, (Neighbour(3, 0.9),))
    assert nowhere.fallbacks == 1


@pytest.mark.dynamodb_local
def test_the_server_answers_again_once_the_credentials_are_refreshed(
    dynamodb_local: local.DynamoDBLocal, local_store: DynamoStore
) -> None:
    run = publish_lists(local_store, {7: [(8, 0.5)]})
    endpoint = CredentialsEndpoint()
    store = signing_with(
        endpoint.credentials(), dynamodb_local.endpoint_url, local_store.table_prefix
    )
    api = create_app(store, Settings(pointer_cache_seconds=0)).test_client()
    try:
        down = api.get("/similar-users/7?model_handle=interests")
        endpoint.up = True
        up = api.get("/similar-users/7?model_handle=interests")
    finally:
        assert store.fast_path is not None
        store.fast_path.close()

    assert down.status_code == 503
    assert up.status_code == 200
    assert up.json["data"]["run_id"] == run.run_id
    assert up.json["data"]["similar_users"] == [{"user_handle": 8, "score": 0.5, "mutual": False}]


@pytest.mark.dynamodb_local
def test_the_server_serves_the_item_asked_for_when_the_endpoint_answers_another(
    local_store: DynamoStore, stub: Stub, fast_path: Callable[[str], FastPath]
) -> None:
    run = publish_lists(local_store, {2: [(3, 0.9)], 3: [(2, 0.4)]})
    # The endpoint answers every read with user 3's item, its checksum right.
    stub.answer = json.dumps(
        {"Item": to_item(run, NeighbourList(3, (Neighbour(2, 0.4),)))}
    ).encode()
    wrong = fast_path(stub.url)
    store = DynamoStore(local_store.client, table_prefix=local_store.table_prefix, fast_path=wrong)
    api = create_app(store, Settings(pointer_cache_seconds=0)).test_client()

    answer = api.get("/similar-users/2?model_handle=interests")

    assert answer.status_code == 200
    assert answer.json["data"]["similar_users"] == [
        {"user_handle": 3, "score": 0.9, "mutual": False}
    ]
    assert wrong.fallbacks == 2  # the pointer and the list, each read again through boto3
