"""Every operation on one tenant's users and groups, and rendering what responses carry
(docs/architecture.md, "The service")."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim_core.errors import Conflict, NotFound, PreconditionFailed
from scim_core.events import drafts
from scim_core.events.model import EventDraft
from scim_core.failures import scim_error, translated
from scim_core.json_keys import get_ci
from scim_core.kinds import Kind
from scim_core.members import parse_members
from scim_core.patch import apply_patch, member_change_alone
from scim_core.projection import Projection
from scim_core.query import Scope, Searcher, SearchParams, SearchResult
from scim_core.resources import index_keys, location, render
from scim_core.retry import DOCUMENT_RACE
from scim_core.schema import Registry, ResourceType
from scim_core.store import (
    Member,
    MemberChange,
    Meta,
    Record,
    TenantStore,
    UnknownMembers,
    VersionMoved,
)
from scim_core.validation import normalise_resource

log = logging.getLogger("scim_core")

Plan = Callable[[Record], tuple[dict[str, Any] | None, MemberChange | None]]


def utc_now() -> str:
    """The current UTC time as ``meta`` holds it (ISO 8601, milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_version() -> str:
    """A fresh weak version (the ETag) for one write."""
    return f'W/"{secrets.token_hex(8)}"'


def version_matches(header: str, version: str) -> bool:
    """An If-Match / If-None-Match header against a weak version (``*`` matches any)."""
    tags = [t.strip() for t in header.split(",")]
    bare = version.removeprefix("W/")
    return any(t == "*" or t.removeprefix("W/") == bare for t in tags)


@dataclass(frozen=True)
class Rendered:
    """What a response carries: the resource as projected (None: answered without a body,
    as Entra expects of a group PATCH), its version (ETag) and its location."""

    resource: dict[str, Any] | None
    version: str
    location: str


class ResourceService:
    """Users and groups of the tenant ``store`` is bound to."""

    def __init__(self, store: TenantStore, registry: Registry, *,
                 clock: Callable[[], str] = utc_now, max_operations: int = 1000) -> None:
        self.store = store
        self.registry = registry
        self._clock = clock
        self._max_operations = max_operations
        self._searcher = Searcher(store, registry)

    # -- operations ------------------------------------------------------------------------

    @translated
    def create(self, rt: ResourceType, body: Any, *, base_url: str,
               projection: Projection) -> Rendered:
        """POST: a new resource with a new id; a group's unknown members are skipped."""
        members = self._members_of_body(rt, body)
        document = normalise_resource(self.registry, rt, body, skip=frozenset({"members"}))
        now = self._clock()
        record = Record(rt.kind, str(uuid.uuid4()), document, Meta(now, now, new_version()))
        indexes = index_keys(self.registry, rt, document)
        events = drafts.created(rt.kind, render(self.registry, rt, record, base_url))
        while True:
            try:
                stored = self.store.create(record, indexes, members or (), events=events)
                break
            except UnknownMembers as unknown:
                gone = self._skip(unknown, [m.value for m in members or ()])
                members = [m for m in members or () if m.value not in gone]
        return self._rendered(rt, stored, base_url, projection,
                              members=members if rt.kind is Kind.GROUP else None)

    @translated
    def get(self, rt: ResourceType, resource_id: str, *, base_url: str,
            projection: Projection) -> Rendered:
        """GET of one resource, with the relations the projection shows, read together
        with it."""
        related = self.store.get_related(
            rt.kind, resource_id,
            members=rt.kind is Kind.GROUP and projection.wants("members"),
            groups=rt.kind is Kind.USER and projection.wants("groups"))
        if related is None:
            raise NotFound(f"{rt.name} {resource_id[:200]} not found.")
        return self._rendered(rt, related.record, base_url, projection,
                              members=related.members, groups=related.groups)

    @translated
    def replace(self, rt: ResourceType, resource_id: str, body: Any, *, base_url: str,
                projection: Projection, if_match: str | None = None) -> Rendered:
        """PUT: the whole resource (and a group's whole member list) replaced."""
        members = self._members_of_body(rt, body)
        document = normalise_resource(self.registry, rt, body, skip=frozenset({"members"}))
        change = (MemberChange(remove_all=True, add=tuple(members or ()))
                  if rt.kind is Kind.GROUP else None)
        record = self._write(rt, resource_id, if_match, lambda _current: (document, change),
                             base_url=base_url)
        return self._with_relations(rt, record, base_url, projection)

    @translated
    def patch(self, rt: ResourceType, resource_id: str, body: Any, *, base_url: str,
              projection: Projection, if_match: str | None = None) -> Rendered:
        """PATCH. A group answers without a body (204) unless attributes were asked for;
        Entra's member PATCH of a group is then one write that does not read the group."""
        if rt.kind is Kind.GROUP and projection.is_identity:
            version = self._patch_quietly(rt, resource_id, body, if_match=if_match,
                                          base_url=base_url)
            return Rendered(None, version, location(base_url, rt, resource_id))

        record = self._write(rt, resource_id, if_match, self._patch_plan(rt, body),
                             base_url=base_url)
        return self._with_relations(rt, record, base_url, projection)

    @translated
    def delete(self, rt: ResourceType, resource_id: str, *, base_url: str,
               if_match: str | None = None) -> None:
        """DELETE; the groups a deleted user belonged to get a new version."""
        expected = None
        if if_match is not None:
            current = self._load(rt, resource_id)
            if not version_matches(if_match, current.meta.version):
                raise PreconditionFailed("The resource has changed (If-Match does not match).")
            expected = current.meta.version

        def events(record: Record) -> list[EventDraft]:
            return drafts.deleted(rt.kind, render(self.registry, rt, record, base_url),
                                  self._clock())

        try:
            self.store.delete(rt.kind, resource_id, expected_version=expected, events=events,
                              stamp=lambda: (self._clock(), new_version()))
        except VersionMoved:
            raise PreconditionFailed("The resource has changed (If-Match does not match)."
                                     ) from None

    @translated
    def search(self, scopes: Sequence[Scope], params: SearchParams, *,
               base_url: str) -> SearchResult:
        """GET on a collection, or POST /.search on one resource type or (root) several."""
        return self._searcher.search(scopes, params, base_url)

    # -- helpers ---------------------------------------------------------------------------

    def _load(self, rt: ResourceType, resource_id: str) -> Record:
        record = self.store.get(rt.kind, resource_id)
        if record is None:
            raise NotFound(f"{rt.name} {resource_id[:200]} not found.")
        return record

    def _rendered(self, rt: ResourceType, record: Record, base_url: str,
                  projection: Projection, *, members: Sequence[Member] | None = None,
                  groups: Sequence[str] | None = None) -> Rendered:
        resource = render(self.registry, rt, record, base_url, members=members, groups=groups)
        return Rendered(projection.apply(resource), record.meta.version,
                        location(base_url, rt, record.id))

    def _with_relations(self, rt: ResourceType, record: Record, base_url: str,
                        projection: Projection) -> Rendered:
        """The rendered record with a group's members when shown, and a user's groups when
        the projection asks for them by name: write responses leave them out, so that
        Entra's writes cost no extra read."""
        members = (list(self.store.members(record.id))
                   if rt.kind is Kind.GROUP and projection.wants("members") else None)
        group_ids = (self.store.groups_of(record.id)
                     if rt.kind is Kind.USER and projection.explicitly_requested("groups")
                     else None)
        return self._rendered(rt, record, base_url, projection, members=members,
                              groups=group_ids)

    def _patch_quietly(self, rt: ResourceType, resource_id: str, body: Any, *,
                       if_match: str | None, base_url: str) -> str:
        """A PATCH answered without a body; returns the new version. Adding and removing
        listed members without If-Match (Entra's member PATCH) does not read the group at
        all: the write itself fails if the group is gone."""
        change = (None if if_match is not None else
                  member_change_alone(self.registry, rt, body,
                                      max_operations=self._max_operations))
        if change is None:
            return self._write(rt, resource_id, if_match, self._patch_plan(rt, body),
                               base_url=base_url, read_back=False).meta.version
        while change:
            version = new_version()
            try:
                if self.store.change_members(resource_id, last_modified=self._clock(),
                                             version=version, members=change) is not None:
                    return version
                break  # it changed no membership, so nothing was written
            except UnknownMembers as unknown:
                change = change.without(self._skip(unknown, [m.value for m in change.add]))
        return self._load(rt, resource_id).meta.version

    def _patch_plan(self, rt: ResourceType, body: Any) -> Plan:
        def plan(current: Record) -> tuple[dict[str, Any] | None, MemberChange | None]:
            result = apply_patch(
                self.registry, rt, current.document, body,
                load_members=lambda: list(self.store.members(current.id)),
                max_operations=self._max_operations,
            )
            document = None if result.document == current.document else result.document
            return document, (result.members or None)

        return plan

    def _write(self, rt: ResourceType, resource_id: str, if_match: str | None,
               plan: Plan, *, base_url: str, read_back: bool = True) -> Record:
        """Read, plan and write with the read's etag; on a lost race read again and replan.

        A plan that changes nothing writes nothing. A member-only change does not rewrite
        the document, so concurrent member edits of one group never contend. Added members
        that are not users of the tenant are skipped. With ``read_back=False`` the caller
        needs only the new meta: a member-only change then skips reading the group back,
        and the returned record holds the document as read before the change.
        """
        skipped: set[str] = set()
        for _ in DOCUMENT_RACE.tries():
            current = self._load(rt, resource_id)
            if if_match is not None and not version_matches(if_match, current.meta.version):
                raise PreconditionFailed("The resource has changed (If-Match does not match).")
            document, change = plan(current)
            if document == current.document:
                document = None  # a PUT of what is stored
            if change is not None and skipped:
                change = change.without(skipped)
            if document is None and not change:
                return current
            meta = Meta(current.meta.created, self._clock(), new_version())
            events = [] if document is None else drafts.changed(
                rt.kind, current.document, document,
                render(self.registry, rt, Record(rt.kind, resource_id, document, meta),
                       base_url))
            try:
                # A member-only change need not wait for an unchanged group, unless the
                # client made it conditional: then the write must see the version read.
                conditional = current.etag if if_match is not None else None
                if document is None and change and not read_back:
                    etag = self.store.change_members(
                        resource_id, last_modified=meta.last_modified, version=meta.version,
                        members=change, expected_etag=conditional, events=events)
                    if etag is None:
                        return current
                    return Record(rt.kind, resource_id, current.document, meta, etag)
                return self.store.update(
                    rt.kind, resource_id, meta=meta,
                    expected_etag=current.etag if document is not None else conditional,
                    document=document,
                    indexes=(index_keys(self.registry, rt, document)
                             if document is not None else None),
                    members=change,
                    events=events,
                    read=current,
                )
            except UnknownMembers as unknown:
                skipped |= self._skip(unknown, [m.value for m in change.add] if change else [])
            except VersionMoved:
                continue
        raise Conflict("The resource is being changed concurrently; retry the request.")

    def _skip(self, unknown: UnknownMembers, added: Sequence[str]) -> set[str]:
        """The ids of ``added`` that the store found no user for, logged as skipped, so the
        rest of the change can apply. When it names none of them, its error stands."""
        gone = set(unknown.ids) & set(added)
        if not gone:
            raise scim_error(unknown) from unknown
        shown = ", ".join(repr(i[:100]) for i in sorted(gone)[:20])
        log.warning("Skipped %d member(s) that are not users of tenant %r: %s", len(gone),
                    self.store.tenant[:100], shown)
        return gone

    def _members_of_body(self, rt: ResourceType, body: Any) -> list[Member] | None:
        if rt.kind is not Kind.GROUP or not isinstance(body, Mapping):
            return None
        return parse_members(get_ci(body, "members"), "members")

