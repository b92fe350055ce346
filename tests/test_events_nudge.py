"""The events queue nudge (scim_core/events/nudge.py) against Azurite's queue service, with
the real QueueClient."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.credentials import AccessToken
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue import (
    AccountSasPermissions,
    QueueClient,
    ResourceTypes,
    TextBase64EncodePolicy,
    generate_account_sas,
)

from scim_core import Settings
from scim_core.app import build_store
from scim_core.config import SettingsError
from scim_core.events.nudge import QueueNudge, needs_credential, queue_client, queue_nudge
from scim_core.store import MemoryStore
from scim_core.store.tables import TableStore
from tests.azurite import (
    ACCOUNT_KEY,
    ACCOUNT_NAME,
    Azurite,
    AzuriteQueue,
    connection_string,
    serve_queue,
)
from tests.conftest import make_api
from tests.support import FunctionClient, use_api

pytestmark = pytest.mark.timeout(120)

FAST: dict[str, Any] = {"retry_total": 0, "connection_timeout": 1, "read_timeout": 3}
"""Client options for tests: no retries, short timeouts."""


@pytest.fixture(scope="module")
def queue_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteQueue]:
    """Azurite's queue service for this module, on a free 127.0.0.1 port."""
    yield from serve_queue(tmp_path_factory.mktemp("azurite-queue"))


@pytest.fixture
def queue_name() -> str:
    """A fresh queue name; the nudge creates the queue on first use."""
    return "nudge-" + uuid.uuid4().hex[:16]


def reader(service: AzuriteQueue, queue: str) -> QueueClient:
    """A client that reads the raw message text (no decoding), as stored."""
    return QueueClient.from_connection_string(service.connection_string, queue, **FAST)


def raw_messages(service: AzuriteQueue, queue: str) -> list[str]:
    with reader(service, queue) as client:
        return [str(message.content) for message in client.peek_messages(max_messages=32)]


def decoded(service: AzuriteQueue, queue: str) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(text)) for text in raw_messages(service, queue)]


def nudge_on(service: AzuriteQueue, queue: str, **options: Any) -> QueueNudge:
    client = QueueClient.from_connection_string(
        service.connection_string, queue, message_encode_policy=TextBase64EncodePolicy(), **FAST)
    return QueueNudge(client, **{"retry_pause": 0.1, **options})


class GatedQueueClient(QueueClient):
    """The real client; its first send waits until the test opens ``gate``."""

    gate: threading.Event
    entered: threading.Event

    def send_message(self, content: Any, **kwargs: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(30)
        return super().send_message(content, **kwargs)


class FakeCredential:
    """A TokenCredential that hands out a fixed token and never calls anything."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


# --- sending ------------------------------------------------------------------------------------


def test_a_nudge_puts_one_base64_json_message_naming_tenant_and_position(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """One nudge creates the missing queue and puts one Base64 JSON message {tenant, position}."""
    nudge = nudge_on(queue_service, queue_name)
    try:
        nudge("acme", 7)
        assert nudge.flush(30)
    finally:
        nudge.close()
    [text] = raw_messages(queue_service, queue_name)
    assert json.loads(base64.b64decode(text, validate=True)) == {"tenant": "acme", "position": 7}


def test_the_message_decodes_as_a_queue_triggered_function_sees_it(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """The host's Base64 decoding and azure.functions' queue converter give the JSON nudge."""
    nudge = nudge_on(queue_service, queue_name)
    try:
        nudge("default", 3)
        assert nudge.flush(30)
    finally:
        nudge.close()
    with reader(queue_service, queue_name) as client:
        [message] = list(client.receive_messages(max_messages=1))
    body = base64.b64decode(str(message.content)).decode()  # the host's messageEncoding base64
    trigger_metadata = {"Id": meta.Datum(message.id, "string"),
                        "DequeueCount": meta.Datum(message.dequeue_count, "int"),
                        "PopReceipt": meta.Datum(message.pop_receipt, "string")}
    seen = QueueMessageInConverter.decode(meta.Datum(body, "string"),
                                          trigger_metadata=trigger_metadata)
    assert isinstance(seen, func.QueueMessage)
    assert seen.id == message.id and seen.dequeue_count == 1
    assert seen.get_json() == {"tenant": "default", "position": 3}


def test_a_burst_of_one_tenant_before_a_send_becomes_one_message_with_the_highest_position(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """Writes of one tenant while the sender is busy coalesce into one message, the highest."""
    client = GatedQueueClient.from_connection_string(
        queue_service.connection_string, queue_name,
        message_encode_policy=TextBase64EncodePolicy(), **FAST)
    client.gate, client.entered = threading.Event(), threading.Event()
    nudge = QueueNudge(client)
    try:
        nudge("warm-up", 1)
        assert client.entered.wait(30)  # the sender is now inside its first send
        for position in (4, 5, 9, 6):  # 6 after 9: an older commit's late call
            nudge("acme", position)
        client.gate.set()
        assert nudge.flush(30)
    finally:
        client.gate.set()
        nudge.close()
    assert decoded(queue_service, queue_name) == [{"tenant": "warm-up", "position": 1},
                                                  {"tenant": "acme", "position": 9}]


def test_two_tenants_get_separate_messages(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """Nudges of two tenants stay two messages, each with its own tenant's position."""
    nudge = nudge_on(queue_service, queue_name)
    try:
        nudge("acme", 12)
        nudge("globex", 5)
        assert nudge.flush(30)
    finally:
        nudge.close()
    found = decoded(queue_service, queue_name)
    assert sorted(found, key=lambda m: str(m["tenant"])) == [
        {"tenant": "acme", "position": 12}, {"tenant": "globex", "position": 5}]


def test_close_sends_what_is_pending_then_takes_no_more(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """close() lets the pending nudge go out; a nudge after close is ignored without error."""
    nudge = nudge_on(queue_service, queue_name)
    nudge("acme", 2)
    nudge.close(timeout=30)
    nudge("acme", 3)
    assert nudge.flush(1)
    assert decoded(queue_service, queue_name) == [{"tenant": "acme", "position": 2}]


def test_a_refused_queue_creation_still_sends(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """With a credential that may only add messages, creating the queue gets 403 and the
    nudge is sent all the same, with no warning."""
    with reader(queue_service, queue_name) as admin:
        admin.create_queue()
    sas = generate_account_sas(ACCOUNT_NAME, ACCOUNT_KEY, ResourceTypes(object=True),
                               AccountSasPermissions(add=True),
                               expiry=datetime.now(UTC) + timedelta(hours=1))
    client = QueueClient(queue_service.endpoint, queue_name, credential=sas,
                         message_encode_policy=TextBase64EncodePolicy(), **FAST)
    with pytest.raises(Exception) as refused:
        client.create_queue()
    assert getattr(refused.value, "status_code", None) == 403
    nudge = QueueNudge(client)
    try:
        nudge("acme", 4)
        assert nudge.flush(30)
    finally:
        nudge.close()
    assert decoded(queue_service, queue_name) == [{"tenant": "acme", "position": 4}]


@pytest.fixture
def own_queue_service(tmp_path: Path) -> Iterator[AzuriteQueue]:
    """An Azurite queue service of the test's own, which it may stop and start."""
    yield from serve_queue(tmp_path)


def test_a_stopped_queue_service_neither_blocks_nor_raises_and_its_nudge_arrives_later(
        own_queue_service: AzuriteQueue, caplog: pytest.LogCaptureFixture) -> None:
    """With Azurite's queue service down, nudges return at once and raise nothing, one
    warning (no key, no connection string) covers the whole outage, and after a restart the
    outage's last position arrives without any new write."""
    service, queue = own_queue_service, "outage"
    nudge = nudge_on(service, queue, retry_pause=0.05)
    try:
        nudge("acme", 1)
        assert nudge.flush(30)
        service.stop()
        caplog.set_level(logging.INFO, logger="scim_core.events.nudge")
        slowest = 0.0
        for position in range(2, 30):
            started = time.monotonic()
            nudge("acme", position)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        assert not nudge.flush(0.5)  # kept, not dropped
        assert slowest < 0.05, slowest
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        text = warnings[0].getMessage()
        assert "acme" in text and "connection failed" in text
        assert ACCOUNT_KEY not in caplog.text and "AccountKey" not in caplog.text
        service.start()
        assert nudge.flush(60)
    finally:
        nudge.close()
    positions = [message["position"] for message in decoded(service, queue)]
    assert positions == [1, 29]
    assert "sent again" in caplog.text


def test_a_client_without_base64_encoding_is_refused() -> None:
    """QueueNudge refuses a client that would put the JSON unencoded (no trigger reads it)."""
    client = QueueClient("http://127.0.0.1:1/devstoreaccount1", "q-plain",
                         credential={"account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY})
    with client, pytest.raises(ValueError, match="TextBase64EncodePolicy"):
        QueueNudge(client)


# --- queue_nudge: from the settings -------------------------------------------------------------


def test_no_events_queue_means_no_nudge() -> None:
    """Without SCIM_EVENTS_QUEUE, queue_nudge returns None whatever else is set."""
    settings = Settings.from_env({"SCIM_TABLES_CONNECTION": "UseDevelopmentStorage=true",
                                  "SCIM_QUEUES_ENDPOINT": "https://a.queue.core.windows.net"})
    assert settings.events_queue == ""
    assert queue_nudge(settings, credential=None) is None


def test_a_table_only_azurite_connection_with_queues_endpoint_sends_there(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """A connection string carrying only TableEndpoint plus SCIM_QUEUES_ENDPOINT: the queue
    at that endpoint, signed with the string's account key, receives the nudge."""
    settings = Settings.from_env({
        "SCIM_TABLES_CONNECTION": connection_string(10002),
        "SCIM_QUEUES_ENDPOINT": queue_service.endpoint + "/",
        "SCIM_EVENTS_QUEUE": queue_name,
    })
    nudge = queue_nudge(settings, credential=None, **FAST)
    assert nudge is not None
    try:
        assert nudge.client.url == f"{queue_service.endpoint}/{queue_name}"
        nudge("acme", 21)
        assert nudge.flush(30)
    finally:
        nudge.close()
    assert decoded(queue_service, queue_name) == [{"tenant": "acme", "position": 21}]


def test_a_connection_string_with_queue_endpoint_sends_there(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """A connection string's own QueueEndpoint locates the queue."""
    settings = Settings(tables_connection=queue_service.connection_string,
                        events_queue=queue_name)
    nudge = queue_nudge(settings, credential=None, **FAST)
    assert nudge is not None
    try:
        nudge("acme", 1)
        assert nudge.flush(30)
    finally:
        nudge.close()
    assert decoded(queue_service, queue_name) == [{"tenant": "acme", "position": 1}]


@pytest.mark.parametrize(
    ("connection", "url"),
    [
        ("UseDevelopmentStorage=true", "http://127.0.0.1:10001/devstoreaccount1/scim-events"),
        ("DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=a2V5;"
         "EndpointSuffix=core.windows.net",
         "https://contoso.queue.core.windows.net/scim-events"),
        ("DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=a2V5;"
         "TableEndpoint=https://contoso.table.core.windows.net/",
         "https://contoso.queue.core.windows.net/scim-events"),
        ("AccountName=contoso;AccountKey=a2V5;"
         "QueueEndpoint=https://queues.contoso.example/;TableEndpoint=https://t.example",
         "https://queues.contoso.example/scim-events"),
    ],
)
def test_the_queue_is_located_from_each_kind_of_connection_string(
        connection: str, url: str) -> None:
    """Development storage, account-key strings (with or without endpoints) locate the queue
    service the string names; only the built client's URL is checked, nothing is sent."""
    nudge = queue_nudge(Settings(tables_connection=connection, events_queue="scim-events"),
                        credential=None)
    assert nudge is not None
    with nudge.client as client:
        assert client.url == url


def test_development_storage_with_a_queues_endpoint_uses_that_endpoint() -> None:
    """UseDevelopmentStorage=true with SCIM_QUEUES_ENDPOINT: Azurite's account on that port."""
    settings = Settings(tables_connection="UseDevelopmentStorage=true",
                        queues_endpoint="http://127.0.0.1:40001/devstoreaccount1",
                        events_queue="scim-events")
    with queue_client(settings, credential=None) as client:
        assert client.url == "http://127.0.0.1:40001/devstoreaccount1/scim-events"
        assert client.account_name == ACCOUNT_NAME


def test_queues_endpoint_with_a_credential() -> None:
    """SCIM_QUEUES_ENDPOINT without a connection string: that endpoint with the given
    credential (the managed identity in Azure; a fake here)."""
    credential = FakeCredential()
    settings = Settings.from_env({"SCIM_QUEUES_ENDPOINT": "https://contoso.queue.core.windows.net/",
                                  "SCIM_TABLES_ENDPOINT": "https://other.table.core.windows.net",
                                  "SCIM_EVENTS_QUEUE": "scim-events"})
    nudge = queue_nudge(settings, credential=credential)
    assert nudge is not None
    with nudge.client as client:
        assert client.url == "https://contoso.queue.core.windows.net/scim-events"
        assert client.credential is credential


def test_tables_endpoint_gives_its_queue_twin_with_the_credential() -> None:
    """Only SCIM_TABLES_ENDPOINT: its .table. host becomes .queue., with the credential."""
    credential = FakeCredential()
    settings = Settings(tables_endpoint="https://contoso.table.core.windows.net",
                        events_queue="scim-events")
    nudge = queue_nudge(settings, credential=credential)
    assert nudge is not None
    with nudge.client as client:
        assert client.url == "https://contoso.queue.core.windows.net/scim-events"
        assert client.credential is credential


def test_an_endpoint_without_a_credential_is_refused_and_none_is_built() -> None:
    """A queue reached by endpoint needs the credential the app gives; given none,
    queue_nudge raises SettingsError instead of making a managed identity of its own."""
    settings = Settings(tables_endpoint="https://contoso.table.core.windows.net",
                        events_queue="scim-events")
    assert needs_credential(settings)
    assert not needs_credential(Settings(tables_connection="UseDevelopmentStorage=true",
                                         events_queue="scim-events"))
    with pytest.raises(SettingsError, match="none was given"):
        queue_nudge(settings, credential=None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(events_queue="scim-events"), "cannot be located"),
        (Settings(tables_endpoint="http://127.0.0.1:10002/devstoreaccount1",
                  events_queue="scim-events"), "cannot be located"),
        (Settings(tables_connection=connection_string(10002), events_queue="scim-events"),
         "SCIM_QUEUES_ENDPOINT"),
        (Settings(tables_connection="TableEndpoint=https://contoso.table.core.windows.net",
                  events_queue="scim-events"), "AccountKey"),
        (Settings(queues_endpoint="https://contoso.queue.core.windows.net",
                  events_queue="Bad_Name"), "SCIM_EVENTS_QUEUE must be"),
        (Settings(queues_endpoint="https://contoso.queue.core.windows.net",
                  events_queue="two--dashes"), "SCIM_EVENTS_QUEUE must be"),
    ],
)
def test_a_queue_that_cannot_be_located_is_a_settings_error(
        settings: Settings, message: str) -> None:
    """No way to the queue service, a connection string without a key, or a bad queue name
    raise SettingsError saying what to set, at start-up."""
    with pytest.raises(SettingsError, match=message) as raised:
        queue_nudge(settings, credential=FakeCredential())
    assert ACCOUNT_KEY not in str(raised.value)


# --- end to end ---------------------------------------------------------------------------------


def test_writes_through_the_api_nudge_with_the_feed_position(
        queue_service: AzuriteQueue, queue_name: str) -> None:
    """MemoryStore(on_commit=nudge): SCIM writes through the function put messages whose
    last position is the tenant's feed position."""
    nudge = nudge_on(queue_service, queue_name)
    try:
        store = MemoryStore(on_commit=nudge)
        use_api(make_api(store))
        client = FunctionClient()
        user = client.create_user("alice@contoso.com")
        result = client.patch_ops(f"/Users/{user['id']}",
                                  {"op": "replace", "path": "active", "value": False})
        assert result.status == 200, result.body
        client.create_group("Staff", members=[{"value": user["id"]}])
        assert nudge.flush(30)
    finally:
        nudge.close()
    found = decoded(queue_service, queue_name)
    position = store.tenant("default").position()
    assert position >= 4  # created, deactivated, group created, members added
    assert {message["tenant"] for message in found} == {"default"}
    assert found[-1]["position"] == position
    assert [m["position"] for m in found] == sorted(m["position"] for m in found)


def test_an_app_built_from_settings_nudges_the_queue_on_table_writes(
        azurite: Azurite, queue_service: AzuriteQueue, queue_name: str) -> None:
    """With SCIM_EVENTS_QUEUE set, the app's own store (Azurite tables, built by
    ``build_store``) nudges the queue with the tenant's feed position after each write."""
    settings = Settings.from_env({
        "SCIM_TABLES_CONNECTION": azurite.connection_string,
        "SCIM_TABLE_NAME": "t" + uuid.uuid4().hex,
        "SCIM_QUEUES_ENDPOINT": queue_service.endpoint,
        "SCIM_EVENTS_QUEUE": queue_name,
    })
    store = build_store(settings)
    assert isinstance(store, TableStore)
    nudge = store.feeds.on_commit
    assert isinstance(nudge, QueueNudge)
    try:
        use_api(make_api(store))
        user = FunctionClient().create_user("nudged@contoso.com")
        assert FunctionClient().delete(f"/Users/{user['id']}").status == 204
        assert nudge.flush(30)
    finally:
        nudge.close()
        store.table.delete_table()
        store.close()
    positions = [m["position"] for m in decoded(queue_service, queue_name)]
    assert positions and positions[-1] == 2 and positions == sorted(positions)
