"""The one place where Azure Table Storage failures are decoded; no Azure exception leaves
the store (docs/architecture.md, "Storage errors")."""

from __future__ import annotations

import email.utils
import http.client
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from scim_core.store.errors import StorageUnavailable, StoreError, TooLarge

_LOG = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 5
"""Seconds a client is asked to wait when storage gave no Retry-After of its own."""

ACCESS_DENIED_RETRY_AFTER = 60
MAX_RETRY_AFTER = 3600
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_UNAVAILABLE = "Storage is unavailable; retry later."


class Failure(Enum):
    """What a storage answer means to the store."""

    MISSING = "an entity the operation needs is not there"
    TABLE_MISSING = "the table itself is gone"
    TAKEN = "an entity to insert already exists"
    MOVED = "an If-Match condition failed"
    OTHER = "anything else"


class StepFailed(Exception):
    """A transaction failed at one of the operations the store gave ``batches.submit``:
    ``index`` names it among those (the SDK's ``TableTransactionError``, the cause, names it
    in the batch as sent, which may have been shortened); ``status_code`` and
    ``error_code`` are the cause's, so ``failure_of`` reads either."""

    def __init__(self, index: int, cause: HttpResponseError) -> None:
        self.index = index
        self.status_code = cause.status_code
        self.error_code = getattr(cause, "error_code", None)
        super().__init__(f"operation {index} of the transaction failed "
                         f"({self.status_code} {self.error_code})")


def failure_of(error: BaseException) -> Failure:
    """The meaning of a storage error, by its status and error code."""
    status = getattr(error, "status_code", None)
    if getattr(error, "error_code", None) == "TableNotFound":
        return Failure.TABLE_MISSING
    if status == 404:
        return Failure.MISSING
    if status == 409:
        return Failure.TAKEN
    if status == 412:
        return Failure.MOVED
    return Failure.OTHER


def _parse_seconds(raw: str) -> float | None:
    raw = raw.strip()
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def retry_after_seconds(error: HttpResponseError) -> int:
    """Whole seconds from the response's Retry-After (or the millisecond variants storage
    and Cosmos DB send); ``DEFAULT_RETRY_AFTER`` when there is none."""
    headers = getattr(error.response, "headers", None) or {}
    seconds: float | None = None
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0),
                        ("Retry-After", 1.0)):
        raw = headers.get(name)
        if raw:
            parsed = _parse_seconds(raw)
            if parsed is not None:
                seconds = parsed / scale
                break
    if seconds is None:
        return DEFAULT_RETRY_AFTER
    return max(1, min(MAX_RETRY_AFTER, math.ceil(seconds)))


def unavailable(error: BaseException) -> StoreError:
    """The store's failure for a storage error it did not expect."""
    if isinstance(error, ClientAuthenticationError):
        _LOG.error("storage refused the credentials: %s", error)
        return StorageUnavailable(_UNAVAILABLE, retry_after=ACCESS_DENIED_RETRY_AFTER)
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        status = error.status_code
        if status == 413:
            return TooLarge("The change is too large for one storage transaction.")
        if status in _TRANSIENT_STATUSES:
            _LOG.warning("storage is throttling or failing (%s %s)", status,
                         getattr(error, "error_code", None))
            return StorageUnavailable(_UNAVAILABLE, retry_after=retry_after_seconds(error))
        if status in (401, 403):
            _LOG.error("storage denied access (%s): check the identity's role on the table: %s",
                       status, error)
            return StorageUnavailable(_UNAVAILABLE, retry_after=ACCESS_DENIED_RETRY_AFTER)
        _LOG.error("unexpected storage answer %s: %s", status, error)
        return StorageUnavailable(_UNAVAILABLE, retry_after=retry_after_seconds(error))
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        _LOG.warning("storage cannot be reached: %s", error)
    else:
        _LOG.error("storage call failed: %r", error)
    return StorageUnavailable(_UNAVAILABLE, retry_after=DEFAULT_RETRY_AFTER)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn any storage failure raised inside the block into the store's own failure.

    Connection failures and timeouts (``ServiceRequestError``/``ServiceResponseError``),
    throttling and server faults (408/429/5xx), refused credentials and any other storage
    answer the store did not handle become ``StorageUnavailable``; a 413 becomes
    ``TooLarge``. ``OSError`` and ``http.client.HTTPException`` are included: a
    connection dropped while a batch response is being parsed surfaces as those.
    """
    try:
        yield
    except StepFailed as failed:
        cause = failed.__cause__
        raise unavailable(cause if cause is not None else failed) from failed
    except (AzureError, OSError, http.client.HTTPException) as error:
        raise unavailable(error) from error
