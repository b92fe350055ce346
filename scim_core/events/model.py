"""Events: what a committed change tells the host app, and the types it may be."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_DELETED = "user.deleted"
    GROUP_CREATED = "group.created"
    GROUP_UPDATED = "group.updated"
    GROUP_DELETED = "group.deleted"
    GROUP_MEMBERS_ADDED = "group.members_added"
    GROUP_MEMBERS_REMOVED = "group.members_removed"
    TENANT_DISABLED = "tenant.disabled"
    TENANT_ENABLED = "tenant.enabled"


EVENT_TYPES = frozenset(EventType)


@dataclass(frozen=True)
class EventDraft:
    """An event as a change emits it, before the store gives it its place in the feed.

    ``resource`` is the resource as the API renders it (members left out); ``attributes``
    names what a ``*.updated`` event changed; ``members`` holds the user ids a membership
    event added or removed."""

    type: EventType
    time: str
    resource_type: str = ""
    resource_id: str = ""
    version: str = ""
    resource: Mapping[str, Any] | None = field(default=None, compare=False)
    attributes: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Event(EventDraft):
    """An event in a tenant's feed: its ``position`` is its place in commit order (1, 2,
    3, ... with no gaps), and the cursor of a reader that has read it."""

    tenant: str
    position: int

    @property
    def id(self) -> str:
        """Unique across tenants and stable: ``<tenant>:<position>``."""
        return f"{self.tenant}:{self.position}"

    @classmethod
    def placed(cls, draft: EventDraft, tenant: str, position: int) -> Event:
        """``draft`` at ``position`` of ``tenant``'s feed."""
        return cls(**{f.name: getattr(draft, f.name) for f in fields(EventDraft)},
                   tenant=tenant, position=position)
