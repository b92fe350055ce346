"""Users and Groups operations: create, get, replace, patch, delete and search.

The service owns ids, ``meta`` and versions, enforces uniqueness through the store's
unique index rows, checks that members are existing users, and retries a write that lost
an optimistic-concurrency race, so concurrent PATCHes never lose an update.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim_core.errors import (
    Conflict,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    Uniqueness,
)
from scim_core.patch import apply_patch, member_change_alone
from scim_core.resources import index_keys
from scim_core.schema import Registry, ResourceType
from scim_core.store import (
    GROUP,
    USER,
    DuplicateKey,
    Member,
    MemberChange,
    Meta,
    Record,
    Store,
    UnknownMembers,
    VersionMismatch,
)
from scim_core.validation import normalise_resource

MAX_WRITE_ATTEMPTS = 8


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_version() -> str:
    return f'W/"{secrets.token_hex(8)}"'


def version_matches(header: str, version: str) -> bool:
    """An If-Match / If-None-Match header against a weak version (``*`` matches any)."""
    tags = [t.strip() for t in header.split(",")]
    bare = version.removeprefix("W/")
    return any(t == "*" or t.removeprefix("W/") == bare for t in tags)


@dataclass(frozen=True)
class Loaded:
    """A record with, for a group, its members when they were asked for."""

    record: Record
    members: list[Member] | None = None
    groups: list[str] | None = None


class ResourceService:
    def __init__(self, store: Store, registry: Registry, *,
                 clock: Callable[[], str] = utc_now, max_operations: int = 1000) -> None:
        self.store = store
        self.registry = registry
        self._clock = clock
        self._max_operations = max_operations

    # -- reads -----------------------------------------------------------------------------

    def load(self, tenant: str, rt: ResourceType, resource_id: str) -> Record:
        record = self.store.get(tenant, rt.name, resource_id)
        if record is None:
            raise NotFound(f"{rt.name} {resource_id[:200]} not found.")
        return record

    def get(self, tenant: str, rt: ResourceType, resource_id: str, *, members: bool,
            groups: bool = False) -> Loaded:
        record = self.load(tenant, rt, resource_id)
        return self._with_relations(tenant, record, members=members, groups=groups)

    def _with_relations(self, tenant: str, record: Record, *, members: bool,
                        groups: bool = False) -> Loaded:
        member_list = (list(self.store.members(tenant, record.id))
                       if members and record.kind == GROUP else None)
        group_list = (self.store.groups_of(tenant, record.id)
                      if groups and record.kind != GROUP else None)
        return Loaded(record, member_list, group_list)

    # -- writes ----------------------------------------------------------------------------

    def create(self, tenant: str, rt: ResourceType, body: Any, *, members: bool = True
               ) -> Loaded:
        new_members = self._members_from_body(tenant, rt, body)
        document = normalise_resource(self.registry, rt, body, skip=frozenset({"members"}))
        now = self._clock()
        record = Record(rt.name, str(uuid.uuid4()), document, Meta(now, now, new_version()))
        try:
            stored = self.store.create(tenant, record, index_keys(rt.name, document),
                                       new_members or ())
        except DuplicateKey as exc:
            raise self._uniqueness(exc) from exc
        except UnknownMembers as exc:
            raise self._unknown_members(exc) from exc
        return Loaded(stored, new_members if members and rt.name == GROUP else None)

    def replace(self, tenant: str, rt: ResourceType, resource_id: str, body: Any, *,
                if_match: str | None = None, members: bool = True) -> Loaded:
        new_members = self._members_from_body(tenant, rt, body)
        document = normalise_resource(self.registry, rt, body, skip=frozenset({"members"}))
        change = (MemberChange(remove_all=True, add=tuple(new_members or ()))
                  if rt.name == GROUP else None)
        record = self._write(tenant, rt, resource_id, if_match,
                             lambda _current: (document, change))
        return self._with_relations(tenant, record, members=members)

    def patch(self, tenant: str, rt: ResourceType, resource_id: str, body: Any, *,
              if_match: str | None = None, members: bool = True,
              read_back: bool = True) -> Loaded:
        """Apply a PATCH. With ``read_back=False`` the caller needs only the new meta: a
        member-only change then skips reading the group back, and the returned record holds
        the document as read before the change."""
        def plan(current: Record) -> tuple[dict[str, Any] | None, MemberChange | None]:
            result = apply_patch(
                self.registry, rt, current.document, body,
                load_members=lambda: list(self.store.members(tenant, current.id)),
                max_operations=self._max_operations,
            )
            document = None if result.document == current.document else result.document
            return document, (result.members or None)

        record = self._write(tenant, rt, resource_id, if_match, plan, read_back=read_back)
        return self._with_relations(tenant, record, members=members)

    def patch_quietly(self, tenant: str, rt: ResourceType, resource_id: str, body: Any, *,
                      if_match: str | None = None) -> str:
        """Apply a PATCH answered without a body (204, as Entra expects for groups); returns
        the new version. Adding and removing listed members without If-Match, Entra's member
        PATCH, does not read the group at all: the write itself fails if it is gone."""
        change = (None if if_match is not None else
                  member_change_alone(self.registry, rt, body,
                                      max_operations=self._max_operations))
        if change is None:
            return self.patch(tenant, rt, resource_id, body, if_match=if_match, members=False,
                              read_back=False).record.meta.version
        version = new_version()
        try:
            self.store.change_members(tenant, resource_id, last_modified=self._clock(),
                                      version=version, members=change)
        except UnknownMembers as exc:
            raise self._unknown_members(exc) from exc
        return version

    def delete(self, tenant: str, rt: ResourceType, resource_id: str, *,
               if_match: str | None = None) -> None:
        if if_match is not None:
            current = self.load(tenant, rt, resource_id)
            if not version_matches(if_match, current.meta.version):
                raise PreconditionFailed("The resource has changed (If-Match does not match).")
        groups = self.store.groups_of(tenant, resource_id) if rt.name == USER else []
        self.store.delete(tenant, rt.name, resource_id)
        for group_id in groups:
            self._touch_group(tenant, group_id)

    def _touch_group(self, tenant: str, group_id: str) -> None:
        """A new version for a group whose member list changed without a write to it (a
        member user was deleted), so ETags and If-None-Match see the change. Best effort:
        the delete has happened, so neither a vanished group nor a storage fault fails it."""
        with contextlib.suppress(NotFound, ServiceUnavailable):
            self.store.change_members(tenant, group_id, last_modified=self._clock(),
                                      version=new_version(), members=MemberChange())

    # -- helpers ---------------------------------------------------------------------------

    def _write(self, tenant: str, rt: ResourceType, resource_id: str, if_match: str | None,
               plan: Callable[[Record], tuple[dict[str, Any] | None, MemberChange | None]],
               *, read_back: bool = True) -> Record:
        """Read, plan and write with the read's etag; on a lost race read again and replan.

        A plan that changes nothing writes nothing. A member-only change does not rewrite
        the document, so concurrent member edits of one group never contend.
        """
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.load(tenant, rt, resource_id)
            if if_match is not None and not version_matches(if_match, current.meta.version):
                raise PreconditionFailed("The resource has changed (If-Match does not match).")
            document, change = plan(current)
            if document is None and not change:
                return current
            meta = self._renewed(current.meta)
            try:
                if document is None and change and not read_back:
                    etag = self.store.change_members(
                        tenant, resource_id, last_modified=meta.last_modified,
                        version=meta.version, members=change)
                    return Record(rt.name, resource_id, current.document, meta, etag)
                stored = self.store.update(
                    tenant, rt.name, resource_id, meta=meta,
                    expected_etag=current.etag if document is not None else None,
                    document=document,
                    indexes=index_keys(rt.name, document) if document is not None else None,
                    members=change,
                )
            except DuplicateKey as exc:
                raise self._uniqueness(exc) from exc
            except UnknownMembers as exc:
                raise self._unknown_members(exc) from exc
            except VersionMismatch:
                continue
            return stored
        raise Conflict("The resource is being changed concurrently; retry the request.")

    def _renewed(self, meta: Meta) -> Meta:
        """The meta of a changed resource: same creation time, now, a new version."""
        return Meta(meta.created, self._clock(), new_version())

    def _members_from_body(self, tenant: str, rt: ResourceType, body: Any
                           ) -> list[Member] | None:
        if rt.name != GROUP or not isinstance(body, Mapping):
            return None
        raw = next((v for k, v in body.items() if k.lower() == "members"), None)
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise InvalidValue("'members' must be a list of {\"value\": \"<user id>\"}.")
        found: dict[str, Member] = {}
        for item in raw:
            value = item.get("value") if isinstance(item, Mapping) else None
            if not isinstance(value, str) or not value:
                raise InvalidValue("Each member needs a 'value' holding a user id.")
            display = item.get("display")
            found[value] = Member(value, display if isinstance(display, str) else None)
        return list(found.values())

    @staticmethod
    def _unknown_members(exc: UnknownMembers) -> InvalidValue:
        shown = ", ".join(m[:100] for m in exc.ids[:5])
        more = f" and {len(exc.ids) - 5} more" if len(exc.ids) > 5 else ""
        return InvalidValue(f"Members must be existing users; unknown id(s): {shown}{more}.")

    @staticmethod
    def _uniqueness(exc: DuplicateKey) -> Uniqueness:
        return Uniqueness(f"{exc.key.name} '{exc.key.value[:200]}' is already in use by "
                          "another resource (compared case-insensitively).")
