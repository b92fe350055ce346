"""A nudge per committed write on an Azure Storage Queue (``SCIM_EVENTS_QUEUE``), so a
queue-triggered function in the host app wakes up without polling every tenant
(docs/host-app.md). A nudge is a hint: losing or repeating one never loses an event."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.queue import LinearRetry, QueueClient, TextBase64EncodePolicy

from scim_core.config import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = ["NUDGE_CLIENT_OPTIONS", "QueueNudge", "needs_credential", "nudge_body", "queue_client",
           "queue_nudge"]

log = logging.getLogger(__name__)

NUDGE_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 5,
}
"""Keyword options for the ``QueueClient``: a nudge is worth little, so it fails fast (two
retries one second apart, see ``queue_client``) rather than holding the sender thread."""

_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


MAX_RETRY_PAUSE = 30.0
"""Longest wait, in seconds, between attempts to send to a queue that keeps failing."""


def nudge_body(tenant: str, position: int) -> str:
    """The message text (before Base64): ``{"tenant": ..., "position": ...}``."""
    return json.dumps({"tenant": tenant, "position": position}, separators=(",", ":"))


def _status(exc: BaseException) -> str:
    """What a failed send says about itself, without URLs, headers or credentials."""
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = getattr(exc, "error_code", None)
        return f"HTTP {exc.status_code}{f' {code}' if code else ''}"
    if isinstance(exc, ServiceRequestError):
        return "connection failed"
    if isinstance(exc, ServiceResponseError):
        return "no response"
    return type(exc).__name__


class QueueNudge:
    """``nudge(tenant, position)`` after each committed write; a daemon thread sends.

    The call only records the tenant's highest position in a pending map (several writes
    of one tenant before a send become one message naming the highest) and never touches
    the network or raises. The sender puts one message per pending tenant; what it could
    not send stays pending and is tried again, after a pause that doubles up to
    ``MAX_RETRY_PAUSE`` (one warning per run of failures), so each committed write is
    followed by a message naming its position or a later one, for as long as the process
    runs. The
    queue is created on first use (``create_queue``); a 403 on creating it (an identity
    that may only send) is taken to mean it exists.

    ``client`` must encode messages as Base64 text (``TextBase64EncodePolicy``), which a
    Functions queue trigger decodes by default; ``queue_client`` builds such a client.
    ``retry_pause`` is how long the sender first waits after a failed send (nudges arriving
    meanwhile are kept and coalesced). ``time_to_live`` is each message's
    lifetime in seconds (None: the service's default, 7 days)."""

    def __init__(self, client: QueueClient, *, create_queue: bool = True,
                 retry_pause: float = 1.0, time_to_live: int | None = None) -> None:
        policy = getattr(client, "_message_encode_policy", None)
        if policy is not None and not isinstance(policy, TextBase64EncodePolicy):
            raise ValueError("QueueNudge needs a QueueClient built with "
                             "message_encode_policy=TextBase64EncodePolicy()")
        self._client = client
        self._create = create_queue
        self._retry_pause = retry_pause
        self._time_to_live = time_to_live
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[str, int] = {}
        self._sending = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._queue_ready = not create_queue
        self._failing = False
        self._pauses = 0
        self._create_refused = False

    @property
    def client(self) -> QueueClient:
        """The queue client the sender puts messages with."""
        return self._client

    def __call__(self, tenant: str, position: int) -> None:
        """Note that ``tenant``'s feed reached ``position``; returns at once, never raises."""
        try:
            with self._cond:
                if self._closed:
                    return
                if position > self._pending.get(tenant, 0):
                    self._pending[tenant] = position
                if self._thread is None or not self._thread.is_alive():
                    # (again after a fork: the parent's thread does not run in the child)
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="scim-events-nudge")
                    self._thread.start()
                self._cond.notify_all()
        except Exception:  # a nudge must never fail the write that made it
            log.debug("Events queue nudge not recorded", exc_info=True)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every recorded nudge was sent;
        True when none is left."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._sending,
                                       timeout)

    def close(self, *, timeout: float = 5.0) -> None:
        """Take no more nudges, let the sender finish what is pending for up to ``timeout``
        seconds, then close the client."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._client.close()

    # -- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if not self._pending:
                    return
                batch, self._pending = self._pending, {}
                self._sending = True
            unsent: dict[str, int] = dict(batch)
            try:
                unsent = self._send_all(batch)
            finally:
                with self._cond:
                    self._sending = False
                    if self._closed:
                        unsent = {}  # closing: nothing will retry
                    for tenant, position in unsent.items():
                        if position > self._pending.get(tenant, 0):
                            self._pending[tenant] = position
                    self._cond.notify_all()
            if unsent:
                self._pauses += 1
                pause = min(MAX_RETRY_PAUSE, self._retry_pause * 2 ** (self._pauses - 1))
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, pause)
            else:
                self._pauses = 0

    def _send_all(self, batch: Mapping[str, int]) -> dict[str, int]:
        """Send one message per tenant of ``batch``; after a failure stop (the queue serves
        them all, so the rest would fail alike). Returns what was not sent."""
        items = list(batch.items())
        for done, (tenant, position) in enumerate(items):
            try:
                self._send(tenant, position)
            except Exception as exc:
                self._failed(tenant, exc)
                return dict(items[done:])
        if self._failing:
            log.info("Events queue nudges are sent again")
            self._failing = False
        return {}

    def _send(self, tenant: str, position: int) -> None:
        if not self._queue_ready:
            self._ensure_queue()
        try:
            self._client.send_message(nudge_body(tenant, position),
                                      time_to_live=self._time_to_live)
        except ResourceNotFoundError:
            if not self._create:
                raise
            self._queue_ready = False  # deleted since: create it again, send once more
            self._ensure_queue()
            self._client.send_message(nudge_body(tenant, position),
                                      time_to_live=self._time_to_live)

    def _ensure_queue(self) -> None:
        try:
            self._client.create_queue()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
            if not self._create_refused:
                self._create_refused = True
                log.info("Events queue: not allowed to create it (HTTP 403); sending to it "
                         "as it is")
        self._queue_ready = True

    def _failed(self, tenant: str, exc: BaseException) -> None:
        if self._failing:
            return
        self._failing = True
        log.warning("Events queue nudge for tenant %s not sent (%s); retrying until the "
                    "queue answers again (the events themselves are kept)",
                    tenant, _status(exc))


# -- building the client from settings -----------------------------------------------------


def _fields(connection: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in connection.split(";") if "=" in part)
    return {key.strip().lower(): value.strip() for key, value in pairs}


def _is_development_storage(fields: Mapping[str, str]) -> bool:
    return fields.get("usedevelopmentstorage", "").lower() == "true"


def _queue_url_of_table(table_endpoint: str) -> str | None:
    """``https://<account>.table.<suffix>`` -> ``https://<account>.queue.<suffix>``; None
    when the host does not name the table service (Azurite's ``127.0.0.1:<port>``)."""
    parts = urlsplit(table_endpoint)
    if ".table." not in parts.netloc:
        return None
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(".table.", ".queue.", 1)))


def _shared_credential(fields: Mapping[str, str]) -> AzureNamedKeyCredential | AzureSasCredential:
    if fields.get("accountname") and fields.get("accountkey"):
        return AzureNamedKeyCredential(fields["accountname"], fields["accountkey"])
    if fields.get("sharedaccesssignature"):
        return AzureSasCredential(fields["sharedaccesssignature"])
    raise SettingsError("SCIM_TABLES_CONNECTION has neither AccountName and AccountKey nor "
                        "SharedAccessSignature, so SCIM_EVENTS_QUEUE cannot use it")


def _not_located() -> SettingsError:
    return SettingsError(
        "SCIM_EVENTS_QUEUE is set but its queue service cannot be located: give "
        "SCIM_TABLES_CONNECTION a QueueEndpoint, or set SCIM_QUEUES_ENDPOINT "
        "(https://<account>.queue.core.windows.net) or SCIM_TABLES_ENDPOINT")


def needs_credential(settings: Settings) -> bool:
    """Whether ``queue_client(settings)`` reaches the queue by endpoint, with a credential
    (``SCIM_EVENTS_QUEUE`` set, no connection string, and an endpoint to reach)."""
    return (bool(settings.events_queue) and not settings.tables_connection
            and _endpoint_url(settings) is not None)


def _endpoint_url(settings: Settings) -> str | None:
    return settings.queues_endpoint or (
        _queue_url_of_table(settings.tables_endpoint) if settings.tables_endpoint else None)


def queue_client(settings: Settings, *, credential: TokenCredential | None,
                 **client_kwargs: Any) -> QueueClient:
    """The client of ``settings.events_queue`` (Base64 text messages), located from, in
    order: ``SCIM_TABLES_CONNECTION`` (its QueueEndpoint, the queue endpoint the SDK
    derives from an account-key string or ``UseDevelopmentStorage=true``, else
    ``SCIM_QUEUES_ENDPOINT`` or the TableEndpoint's ``.queue.`` twin with the string's
    key or SAS); ``SCIM_QUEUES_ENDPOINT`` with ``credential``; ``SCIM_TABLES_ENDPOINT``
    with ``.table.`` replaced by ``.queue.`` and ``credential`` (the composition root's;
    see ``needs_credential``). ``client_kwargs`` override ``NUDGE_CLIENT_OPTIONS``."""
    queue = settings.events_queue
    if not _QUEUE_NAME.fullmatch(queue):
        raise SettingsError("SCIM_EVENTS_QUEUE must be 3-63 lowercase letters, digits and "
                            f"single dashes, starting and ending with a letter or digit, not "
                            f"{queue!r}")
    options: dict[str, Any] = {
        "retry_policy": LinearRetry(backoff=1, random_jitter_range=1, retry_total=2),
        **NUDGE_CLIENT_OPTIONS, **client_kwargs,
        "message_encode_policy": TextBase64EncodePolicy(),
    }
    if settings.tables_connection:
        return _from_connection(settings, queue, options)
    url = _endpoint_url(settings)
    if not url:
        raise _not_located()
    if credential is None:
        raise SettingsError("SCIM_EVENTS_QUEUE's endpoint is reached with an Entra credential, "
                            "and none was given: build the store through scim_core.app, or "
                            "set SCIM_TABLES_CONNECTION")
    return QueueClient(url, queue, credential=credential, **options)


def _from_connection(settings: Settings, queue: str, options: dict[str, Any]) -> QueueClient:
    connection = settings.tables_connection
    fields = _fields(connection)
    if _is_development_storage(fields):
        client = QueueClient.from_connection_string("UseDevelopmentStorage=true", queue,
                                                    **options)
        if not settings.queues_endpoint:
            return client
        key = client.credential  # Azurite's well-known account, as the SDK spells it
        client.close()
        fields = {"accountname": key.account_name, "accountkey": key.account_key}
    elif not settings.queues_endpoint and (
            "queueendpoint" in fields
            or not any(name.endswith("endpoint") for name in fields)):
        return QueueClient.from_connection_string(connection, queue, **options)
    url = settings.queues_endpoint or _queue_url_of_table(fields.get("tableendpoint", ""))
    if not url:
        raise _not_located()
    return QueueClient(url, queue, credential=_shared_credential(fields), **options)


def queue_nudge(settings: Settings, *, credential: TokenCredential | None,
                **client_kwargs: Any) -> QueueNudge | None:
    """The nudge for ``settings``: None without ``SCIM_EVENTS_QUEUE``, else a ``QueueNudge``
    on ``queue_client(settings, credential=credential, **client_kwargs)``. Raises
    ``SettingsError`` when the queue cannot be located."""
    if not settings.events_queue:
        return None
    return QueueNudge(queue_client(settings, credential=credential, **client_kwargs))
