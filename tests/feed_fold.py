"""A tenant's change feed folded into the directory it describes, and the directory as the
store holds it, in the same shape, so that a test can compare the two (docs/events.md).

``fold`` applies each event the way a host app following the feed would: ``user.created``,
``user.updated``, ``user.deactivated`` and ``user.reactivated`` set the user from the
event's ``resource``; ``user.deleted`` removes the user and its memberships; the group
events likewise; ``group.members_added`` and ``group.members_removed`` edit memberships and
carry the group's new ``meta.version`` and ``meta.lastModified``. It also notes every event
that contradicts what came before (a second create, an update of a missing resource, a
member added who is not a user, ...): a correct feed folds without one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from scim_core.resources import render
from scim_core.schema import Registry
from scim_core.store import GROUP, USER, Store

__all__ = ["Directory", "FeedEvent", "Fold", "comparable", "differences", "directory_of",
           "fold"]

REGISTRY = Registry.default()
_USER_SETS = {"user.created", "user.updated", "user.deactivated", "user.reactivated"}
_GROUP_SETS = {"group.created", "group.updated"}
_MEMBERSHIP = {"group.members_added", "group.members_removed"}


class FeedEvent(Protocol):
    """What the fold reads of an event: ``scim_core``'s and ``scim_reader``'s both fit."""

    @property
    def position(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def time(self) -> str: ...
    @property
    def resource_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def resource(self) -> Mapping[str, Any] | None: ...
    @property
    def members(self) -> tuple[str, ...]: ...


@dataclass
class Directory:
    """Users and groups by id (as the API renders them, groups without members) and the
    memberships as (group id, user id) pairs."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Fold:
    directory: Directory
    anomalies: list[str]
    """Events that contradict the feed before them; empty for a correct feed."""
    absent_removals: int = 0
    """Members a ``group.members_removed`` named right after their ``user.deleted`` (the
    same transaction: a deleted user's memberships go with it, and its groups' removal
    events follow)."""


def fold(events: Iterable[FeedEvent]) -> Fold:
    """The directory that ``events``, read from the first position on, describe."""
    directory = Directory()
    result = Fold(directory, [])
    just_deleted: set[str] = set()

    def note(event: FeedEvent, problem: str) -> None:
        result.anomalies.append(f"{event.position} {event.type} {event.resource_id}: {problem}")

    for event in events:
        kind = str(event.type)
        if kind not in ("user.deleted", "group.members_removed"):
            just_deleted.clear()
        if kind in _USER_SETS | _GROUP_SETS or kind in ("user.deleted", "group.deleted"):
            _check_resource(event, note)
        if kind in _USER_SETS:
            present = event.resource_id in directory.users
            if (kind == "user.created") == present:
                note(event, "created twice" if present else "changed before it was created")
            if kind in ("user.deactivated", "user.reactivated"):
                active = (event.resource or {}).get("active") is not False
                if active != (kind == "user.reactivated"):
                    note(event, f"its resource has active={active}")
            directory.users[event.resource_id] = dict(event.resource or {})
        elif kind in _GROUP_SETS:
            present = event.resource_id in directory.groups
            if (kind == "group.created") == present:
                note(event, "created twice" if present else "changed before it was created")
            if event.resource is not None and "members" in event.resource:
                note(event, "a group event carries members")
            directory.groups[event.resource_id] = dict(event.resource or {})
        elif kind == "user.deleted":
            if directory.users.pop(event.resource_id, None) is None:
                note(event, "deleted but not there")
            just_deleted.add(event.resource_id)
            directory.memberships = {p for p in directory.memberships
                                     if p[1] != event.resource_id}
        elif kind == "group.deleted":
            if directory.groups.pop(event.resource_id, None) is None:
                note(event, "deleted but not there")
            directory.memberships = {p for p in directory.memberships
                                     if p[0] != event.resource_id}
        elif kind in _MEMBERSHIP:
            _fold_members(event, directory, just_deleted, result, note)
        elif not kind.startswith("tenant."):
            note(event, "unknown event type")
    return result


def _check_resource(event: FeedEvent, note: Any) -> None:
    resource = event.resource
    if resource is None:
        note(event, "no resource")
        return
    meta = resource.get("meta") or {}
    if resource.get("id") != event.resource_id:
        note(event, f"its resource is {resource.get('id')!r}")
    if meta.get("version") != event.version:
        note(event, f"version {event.version!r} but its resource has {meta.get('version')!r}")


def _fold_members(event: FeedEvent, directory: Directory, just_deleted: set[str],
                  result: Fold, note: Any) -> None:
    group_id = event.resource_id
    group = directory.groups.get(group_id)
    if group is None:
        note(event, "the group is not there")
        return
    if not event.members:
        note(event, "names no member")
    for user_id in event.members:
        pair = (group_id, user_id)
        if str(event.type) == "group.members_added":
            if user_id not in directory.users:
                note(event, f"added {user_id}, who is not a user")
            directory.memberships.add(pair)
        elif pair in directory.memberships:
            directory.memberships.discard(pair)
        elif user_id in just_deleted:
            result.absent_removals += 1
        else:
            note(event, f"removed {user_id}, who was not a member")
    meta = dict(group.get("meta") or {})
    meta["version"], meta["lastModified"] = event.version, event.time
    group["meta"] = meta


def directory_of(store: Store, tenant: str, base_url: str) -> tuple[Directory, list[str]]:
    """The directory ``store`` holds for ``tenant``, rendered as the API renders it at
    ``base_url``; and where its two directions of membership disagree (a group's members
    against each user's groups)."""
    view = store.tenant(tenant)
    user_type, group_type = REGISTRY.resource_type(USER), REGISTRY.resource_type(GROUP)
    assert user_type is not None and group_type is not None
    users = {r.id: render(REGISTRY, user_type, r, base_url) for r in view.scan(USER)}
    groups = {r.id: render(REGISTRY, group_type, r, base_url) for r in view.scan(GROUP)}
    forward = {(g, m.value) for g in groups for m in view.members(g)}
    reverse = {(g, u) for u in users for g in view.groups_of(u)}
    problems = [f"member {g} -> {u} without its memberOf row" for g, u in forward - reverse]
    problems += [f"memberOf {u} -> {g} without its member row" for g, u in reverse - forward]
    return Directory(users, groups, forward | reverse), problems


def comparable(resource: Mapping[str, Any], *,
               without_meta: Iterable[str] = ("location",)) -> dict[str, Any]:
    """``resource`` without the ``meta`` sub-attributes named (by default its location,
    which depends on the URL a request came in on)."""
    copied = copy.deepcopy(dict(resource))
    meta = copied.get("meta")
    if isinstance(meta, dict):
        for name in without_meta:
            meta.pop(name, None)
    return copied


def differences(folded: Directory, stored: Directory) -> list[str]:
    """Where the two directories differ: ids, memberships and each resource's document
    (meta included, without meta.location)."""
    found: list[str] = []
    for kind, ours, theirs in ((USER, folded.users, stored.users),
                               (GROUP, folded.groups, stored.groups)):
        for missing in sorted(set(theirs) - set(ours)):
            found.append(f"{kind.value} {missing} is stored but the feed has none")
        for extra in sorted(set(ours) - set(theirs)):
            found.append(f"{kind.value} {extra} is in the feed but not stored")
        for resource_id in sorted(set(ours) & set(theirs)):
            a = comparable(ours[resource_id], without_meta=("location",))
            b = comparable(theirs[resource_id], without_meta=("location",))
            if a != b:
                found.append(f"{kind.value} {resource_id}: feed {a} != stored {b}")
    for group_id, user_id in sorted(stored.memberships - folded.memberships):
        found.append(f"membership {group_id} -> {user_id} is stored but not in the feed")
    for group_id, user_id in sorted(folded.memberships - stored.memberships):
        found.append(f"membership {group_id} -> {user_id} is in the feed but not stored")
    return found
