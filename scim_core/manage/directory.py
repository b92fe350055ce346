"""The directory and the change feed as the management API shows them: the reader
library's results (``scim_reader``) as JSON, over the same table the SCIM API writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from scim_reader import DirectoryReader, EventPage, TenantReader
from scim_reader.listing import Listing
from scim_reader.models import Event, Group, Member, Meta, User

T = TypeVar("T")

MAX_WAIT_SECONDS = 25.0
POLL_SECONDS = 0.25


def meta(found: Meta) -> dict[str, str]:
    return {"created": found.created, "lastModified": found.last_modified,
            "version": found.version}


def user(found: User) -> dict[str, Any]:
    """A user: the reader's fields, and its whole attribute document."""
    return {"id": found.id, "userName": found.user_name, "active": found.active,
            "displayName": found.display_name, "externalId": found.external_id,
            "primaryEmail": found.primary_email, "attributes": found.attributes,
            "meta": meta(found.meta)}


def group(found: Group) -> dict[str, Any]:
    """A group, without its members (``…/members`` lists them)."""
    return {"id": found.id, "displayName": found.display_name,
            "externalId": found.external_id, "attributes": found.attributes,
            "meta": meta(found.meta)}


def member(found: Member) -> dict[str, Any]:
    return {"userId": found.user_id, "display": found.display}


def event(found: Event) -> dict[str, Any]:
    """One event of the feed, as docs/events.md describes it."""
    return {"id": found.id, "position": found.position, "type": found.type,
            "time": found.time, "resourceType": found.resource_type,
            "resourceId": found.resource_id, "version": found.version,
            "resource": found.resource, "attributes": list(found.attributes),
            "members": list(found.members)}


def first_page(listing: Listing[T], convert: Callable[[T], Any]) -> dict[str, Any]:
    """The listing's first page and the cursor after it (None at the end)."""
    for page in listing.pages():
        return {"items": [convert(item) for item in page.items], "next": page.cursor}
    return {"items": [], "next": None}


class Directory:
    """Tenant readers over the store's table, and a bounded number of event waiters."""

    def __init__(self, table_client: Any, *, max_waiters: int = 8,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self._reader = DirectoryReader.from_table_client(table_client)
        self._waiters = threading.BoundedSemaphore(max_waiters)
        self.max_waiters = max_waiters
        self._clock = clock
        self._sleep = sleep

    def tenant(self, tenant_id: str) -> TenantReader:
        return self._reader.tenant(tenant_id)

    def events(self, tenant_id: str, after: str | None, limit: int, wait: float
               ) -> tuple[EventPage, bool]:
        """A page of events after ``after``; with ``wait`` > 0, read again until an event
        is there or ``wait`` seconds passed. Only ``max_waiters`` requests of the process
        wait at once; another answers at once. Returns the page and whether it waited."""
        reader = self._reader.tenant(tenant_id)
        page = reader.events(after, limit=limit)
        if page.events or wait <= 0 or not self._waiters.acquire(blocking=False):
            return page, False
        try:
            deadline = self._clock() + min(wait, MAX_WAIT_SECONDS)
            while not page.events and self._clock() < deadline:
                self._sleep(min(POLL_SECONDS, max(0.0, deadline - self._clock())))
                page = reader.events(after, limit=limit)
            return page, True
        finally:
            self._waiters.release()
