"""The events a change emits: from a resource before and after it, and from the
memberships a transaction adds and removes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from scim_core.events.model import EventDraft, EventType
from scim_core.kinds import Kind

_NOT_COMPARED = frozenset({"schemas", "id", "meta", "members", "groups"})
_CREATED = {Kind.USER: EventType.USER_CREATED, Kind.GROUP: EventType.GROUP_CREATED}
_UPDATED = {Kind.USER: EventType.USER_UPDATED, Kind.GROUP: EventType.GROUP_UPDATED}
_DELETED = {Kind.USER: EventType.USER_DELETED, Kind.GROUP: EventType.GROUP_DELETED}


def changed_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The attributes whose values differ, by name; an extension's by its URN and name."""
    changed: list[str] = []
    for name in sorted(set(before) | set(after)):
        if name in _NOT_COMPARED:
            continue
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name.startswith("urn:") and (isinstance(old, Mapping) or isinstance(new, Mapping)):
            old_ext = old if isinstance(old, Mapping) else {}
            new_ext = new if isinstance(new, Mapping) else {}
            changed += [f"{name}:{sub}" for sub in changed_attributes(old_ext, new_ext)]
        else:
            changed.append(name)
    return changed


def _is_active(document: Mapping[str, Any]) -> bool:
    return document.get("active") is not False


def created(kind: Kind, resource: Mapping[str, Any]) -> list[EventDraft]:
    """``user.created`` or ``group.created`` of the rendered ``resource``."""
    return [_draft(_CREATED[kind], kind, resource)]


def changed(kind: Kind, before: Mapping[str, Any], after: Mapping[str, Any],
            resource: Mapping[str, Any]) -> list[EventDraft]:
    """The events of a document going from ``before`` to ``after`` (``resource`` is the
    rendered result): a user's activation flip first, then ``*.updated`` naming the rest
    (``active`` too when it changed without a flip: absent to true)."""
    drafts: list[EventDraft] = []
    names = changed_attributes(before, after)
    if kind is Kind.USER and "active" in names and _is_active(before) != _is_active(after):
        names.remove("active")
        flip = EventType.USER_REACTIVATED if _is_active(after) else EventType.USER_DEACTIVATED
        drafts.append(_draft(flip, kind, resource))
    if names:
        drafts.append(_draft(_UPDATED[kind], kind, resource, attributes=tuple(names)))
    return drafts


def deleted(kind: Kind, resource: Mapping[str, Any], time: str) -> list[EventDraft]:
    """``user.deleted`` or ``group.deleted`` at ``time``, with the resource as it was."""
    return [replace(_draft(_DELETED[kind], kind, resource), time=time)]


def membership(group_id: str, *, removed: Iterable[str] = (), added: Iterable[str] = (),
               time: str, version: str) -> list[EventDraft]:
    """``group.members_removed`` then ``group.members_added`` of one group, each only when
    it names someone."""
    drafts = []
    for event_type, users in ((EventType.GROUP_MEMBERS_REMOVED, removed),
                              (EventType.GROUP_MEMBERS_ADDED, added)):
        ids = tuple(sorted(set(users)))
        if ids:
            drafts.append(EventDraft(event_type, time, Kind.GROUP.value, group_id, version,
                                     members=ids))
    return drafts


def tenant_state(state_event: EventType, time: str) -> EventDraft:
    """``tenant.disabled`` or ``tenant.enabled``."""
    return EventDraft(state_event, time)


def _draft(event_type: EventType, kind: Kind, resource: Mapping[str, Any], *,
           attributes: tuple[str, ...] = ()) -> EventDraft:
    meta = resource.get("meta") or {}
    return EventDraft(event_type, str(meta.get("lastModified", "")),
                      kind.value, str(resource.get("id", "")),
                      str(meta.get("version", "")), resource=resource, attributes=attributes)
