"""What the reader returns: users, groups, members, tenants and events, built from table
rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scim_reader.errors import UnreadableRow
from scim_reader.layout import document_of, names_of, resource_of


@dataclass(frozen=True)
class Meta:
    """SCIM ``meta``: ISO-8601 UTC times and the version (the ETag the endpoint serves)."""

    created: str
    last_modified: str
    version: str


@dataclass(frozen=True)
class Email:
    """One of a user's ``emails``."""

    value: str | None
    type: str | None = None
    primary: bool = False


@dataclass(frozen=True)
class User:
    """A user as the SCIM endpoint stores it. ``attributes`` is the whole attribute document
    (core and extension attributes, extensions under their schema URN): the SCIM resource
    without ``schemas``, ``id``, ``meta`` and ``groups``."""

    id: str
    user_name: str
    active: bool | None
    display_name: str | None
    emails: tuple[Email, ...]
    external_id: str | None
    attributes: dict[str, Any] = field(hash=False)
    meta: Meta

    @property
    def primary_email(self) -> str | None:
        """The primary email's value, else the first one's, else None."""
        chosen = next((e for e in self.emails if e.primary), None) or next(iter(self.emails),
                                                                            None)
        return None if chosen is None else chosen.value


@dataclass(frozen=True)
class Group:
    """A group as the SCIM endpoint stores it, without its members (``members`` lists
    them). ``attributes`` is the SCIM resource without ``schemas``, ``id``, ``meta`` and
    ``members``."""

    id: str
    display_name: str
    external_id: str | None
    attributes: dict[str, Any] = field(hash=False)
    meta: Meta


@dataclass(frozen=True)
class Member:
    """A direct member of a group: the user's id and the ``display`` the client sent."""

    user_id: str
    display: str | None = None


@dataclass(frozen=True)
class Tenant:
    """A tenant of the deployment. ``state`` is ``enabled``, ``disabled`` (answers 403,
    keeps its data) or ``deleting``."""

    id: str
    name: str
    state: str
    created: str
    changed: str

    @property
    def enabled(self) -> bool:
        """Whether the tenant's Tenant URL serves SCIM requests."""
        return self.state == "enabled"


@dataclass(frozen=True)
class Event:
    """One event of a tenant's change feed (docs/events.md). ``position`` is its place in
    the tenant's commit order (1, 2, 3, ... with no gaps) and the cursor after it; ``id`` is
    ``<tenant>:<position>``. ``type`` is a string such as ``user.created`` (a newer endpoint
    may add types: skip those you do not know). ``resource`` is the user or group as the
    API rendered it after the change (as it was, for a deletion; groups without members),
    None for membership and tenant events; ``attributes`` names what a ``*.updated``
    changed; ``members`` the user ids a membership event added or removed."""

    id: str
    tenant: str
    position: int
    type: str
    time: str
    resource_type: str
    resource_id: str
    version: str
    resource: dict[str, Any] | None = field(hash=False)
    attributes: tuple[str, ...]
    members: tuple[str, ...]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _meta(entity: Mapping[str, Any]) -> Meta:
    return Meta(str(entity["created"]), str(entity["lastModified"]), str(entity["version"]))


def _document(entity: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return document_of(entity)
    except (KeyError, ValueError, TypeError) as error:
        raise UnreadableRow(f"row {entity.get('RowKey')!r}: {error}") from error


def _emails(document: Mapping[str, Any]) -> tuple[Email, ...]:
    items = document.get("emails")
    if not isinstance(items, list):
        return ()
    return tuple(Email(_text(item.get("value")), _text(item.get("type")),
                       item.get("primary") is True)
                 for item in items if isinstance(item, dict))


def user_from_row(entity: Mapping[str, Any]) -> User:
    """The user a ``user:`` row holds."""
    document = _document(entity)
    active = document.get("active")
    return User(id=str(entity["id"]), user_name=str(document.get("userName", "")),
                active=active if isinstance(active, bool) else None,
                display_name=_text(document.get("displayName")), emails=_emails(document),
                external_id=_text(document.get("externalId")), attributes=document,
                meta=_meta(entity))


def group_from_row(entity: Mapping[str, Any]) -> Group:
    """The group a ``group:`` row holds."""
    document = _document(entity)
    return Group(id=str(entity["id"]), display_name=str(document.get("displayName", "")),
                 external_id=_text(document.get("externalId")), attributes=document,
                 meta=_meta(entity))


def member_from_row(entity: Mapping[str, Any]) -> Member:
    """The member a ``member:`` row names."""
    return Member(str(entity["userId"]), _text(entity.get("display")))


def tenant_from_row(entity: Mapping[str, Any]) -> Tenant:
    """The tenant a registry row holds."""
    created = str(entity.get("created", ""))
    return Tenant(str(entity["RowKey"]), str(entity["name"]), str(entity["state"]), created,
                  str(entity.get("changed", created)))


def event_from_row(entity: Mapping[str, Any]) -> Event:
    """The event an ``event:`` row holds."""
    try:
        return Event(id=str(entity["id"]), tenant=str(entity["tenant"]),
                     position=int(entity["position"]), type=str(entity["type"]),
                     time=str(entity["time"]),
                     resource_type=str(entity.get("resourceType") or ""),
                     resource_id=str(entity.get("resourceId") or ""),
                     version=str(entity.get("version") or ""), resource=resource_of(entity),
                     attributes=names_of(entity, "attributes"),
                     members=names_of(entity, "members"))
    except (KeyError, ValueError, TypeError) as error:
        raise UnreadableRow(f"row {entity.get('RowKey')!r}: {error!r}") from error
