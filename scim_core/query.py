"""Searching: plan a filter onto point reads where possible, evaluate exactly, sort, page.

Entra's lookups (``userName eq``, ``externalId eq``, ``id eq``, group ``displayName eq``,
``emails[type eq "work"].value eq``, membership checks) become index or point reads whose
cost does not grow with the tenant; every other filter scans the tenant's resources of
that kind. Candidates are always re-checked by the exact evaluator, so a plan can only
narrow the work, never change the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from scim_core.errors import InvalidCursor, InvalidFilter
from scim_core.filter import And, Compare, Expr, ValuePath, matches, sort_key, values_at
from scim_core.projection import Projection
from scim_core.resources import (
    DISPLAY_NAME,
    EMAIL,
    EXTERNAL_ID,
    USER_NAME,
    LazyResource,
    fold,
    render,
    render_groups,
    render_members,
)
from scim_core.schema import Registry, ResourceType
from scim_core.store import GROUP, USER, IndexKey, Record, Store
from scim_core.store.cursor import decode_cursor, encode_cursor


@dataclass(frozen=True)
class SearchParams:
    filter: Expr | None = None
    start_index: int = 1
    count: int = 100
    sort_by: str | None = None
    descending: bool = False
    cursor: str | None = None
    """None: index paging. "" or a cursor: RFC 9865 cursor paging."""


@dataclass(frozen=True)
class SearchResult:
    total: int
    resources: list[dict[str, Any]]
    start_index: int
    next_cursor: str | None = None


def _conjuncts(expr: Expr) -> Iterator[Expr]:
    if isinstance(expr, And):
        yield from _conjuncts(expr.left)
        yield from _conjuncts(expr.right)
    else:
        yield expr


class Searcher:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    def search(self, tenant: str, rt: ResourceType, params: SearchParams, base_url: str,
               projection: Projection) -> SearchResult:
        with_members = rt.name == GROUP and projection.wants("members")
        if params.cursor is not None and params.filter is None and params.sort_by is None:
            return self._cursor_page(tenant, rt, params, base_url, projection, with_members)
        records = self._matching(tenant, rt, params.filter, base_url)
        if params.sort_by is not None:
            records = self._sorted(rt, records, params.sort_by, params.descending, base_url)
        total = len(records)
        if params.cursor is not None:
            offset = self._offset(params.cursor)
        else:
            offset = params.start_index - 1
        page = records[offset: offset + params.count]
        next_cursor = None
        if params.cursor is not None and offset + params.count < total:
            next_cursor = encode_cursor(f"offset:{offset + params.count}")
        resources = [self._rendered(tenant, rt, r, base_url, projection, with_members)
                     for r in page]
        return SearchResult(total, resources, offset + 1, next_cursor)

    # -- planning --------------------------------------------------------------------------

    def _matching(self, tenant: str, rt: ResourceType, expr: Expr | None,
                  base_url: str) -> list[Record]:
        if expr is None:
            return list(self.store.scan(tenant, rt.name))
        planned = self._plan(tenant, rt, expr)
        candidates = planned if planned is not None else self.store.scan(tenant, rt.name)
        return [r for r in candidates if self._accepts(tenant, rt, expr, r, base_url)]

    def _plan(self, tenant: str, rt: ResourceType, expr: Expr) -> Iterable[Record] | None:
        """Records from one point read for the first indexable conjunct, or None (scan)."""
        for term in _conjuncts(expr):
            planned = self._point(tenant, rt, term)
            if planned is not None:
                return planned
        return None

    def _point(self, tenant: str, rt: ResourceType, term: Expr) -> list[Record] | None:
        kind = rt.name
        if isinstance(term, Compare):
            if term.op != "eq" or not isinstance(term.value, str):
                return None
            name, sub = self._resolved(rt, term.path)
            value = term.value
            if name == "id" and sub is None:
                record = self.store.get(tenant, kind, value)
                return [record] if record else []
            if name == "externalid" and sub is None:
                return self.store.lookup(tenant, kind, IndexKey(EXTERNAL_ID, value, False))
            if kind == USER and name == "username" and sub is None:
                return self.store.lookup(tenant, kind, IndexKey(USER_NAME, fold(value), True))
            if kind == GROUP and name == "displayname" and sub is None:
                return self.store.lookup(tenant, kind, IndexKey(DISPLAY_NAME, fold(value), True))
            if kind == USER and name == "emails" and sub in (None, "value"):
                return self.store.lookup(tenant, kind, IndexKey(EMAIL, fold(value), False))
            if kind == GROUP and name == "members" and sub in (None, "value"):
                return self._groups_with(tenant, value)
            if kind == USER and name == "groups" and sub in (None, "value"):
                return self._members_of(tenant, value)
            return None
        if isinstance(term, ValuePath):
            name, _ = self._resolved(rt, term.path)
            for inner in _conjuncts(term.filter):
                if (isinstance(inner, Compare) and inner.op == "eq"
                        and isinstance(inner.value, str) and inner.path.lower() == "value"):
                    if kind == USER and name == "emails":
                        return self.store.lookup(tenant, kind,
                                                 IndexKey(EMAIL, fold(inner.value), False))
                    if kind == GROUP and name == "members":
                        return self._groups_with(tenant, inner.value)
                    if kind == USER and name == "groups":
                        return self._members_of(tenant, inner.value)
        return None

    def _resolved(self, rt: ResourceType, path: str) -> tuple[str, str | None]:
        try:
            resolved = self.registry.resolve(rt, path)
        except ValueError as exc:
            raise InvalidFilter(f"Invalid attribute path in filter: {path[:100]}") from exc
        if resolved.container is not None:
            return "", None
        sub = resolved.sub_name.lower() if resolved.sub_name else None
        return resolved.name.lower(), sub

    def _groups_with(self, tenant: str, user_id: str) -> list[Record]:
        found = (self.store.get(tenant, GROUP, g) for g in self.store.groups_of(tenant, user_id))
        return [g for g in found if g is not None]

    def _members_of(self, tenant: str, group_id: str) -> list[Record]:
        found = (self.store.get(tenant, USER, m.value)
                 for m in self.store.members(tenant, group_id))
        return [u for u in found if u is not None]

    # -- evaluation, sorting, paging -------------------------------------------------------

    def _accepts(self, tenant: str, rt: ResourceType, expr: Expr, record: Record,
                 base_url: str) -> bool:
        resource: Any = render(self.registry, rt, record, base_url)
        is_member: Callable[[str], bool] | None = None
        if rt.name == USER:
            resource = LazyResource(resource, "groups", lambda: render_groups(
                base_url, self.store.groups_of(tenant, record.id)))
        if rt.name == GROUP:
            group_id = record.id
            resource = LazyResource(resource, "members", lambda: render_members(
                base_url, self.store.members(tenant, group_id)))

            def is_member(user_id: str) -> bool:
                return self.store.is_member(tenant, group_id, user_id)

        return matches(expr, resource, self.registry, rt, is_member=is_member)

    def _sorted(self, rt: ResourceType, records: list[Record], sort_by: str, descending: bool,
                base_url: str) -> list[Record]:
        def key(record: Record) -> Any:
            values = values_at(render(self.registry, rt, record, base_url), self.registry, rt,
                               sort_by)
            return sort_key(values[0] if values else None)

        ordered = sorted(records, key=key, reverse=descending)
        if descending:
            # Absent values sort last in both directions (RFC 7644 §3.4.2.3).
            present = [r for r in ordered if key(r) != sort_key(None)]
            ordered = present + [r for r in ordered if key(r) == sort_key(None)]
        return ordered

    def _cursor_page(self, tenant: str, rt: ResourceType, params: SearchParams, base_url: str,
                     projection: Projection, with_members: bool) -> SearchResult:
        page, next_cursor = self.store.page(tenant, rt.name, cursor=params.cursor or None,
                                            size=params.count)
        total = sum(1 for _ in self.store.scan(tenant, rt.name))
        resources = [self._rendered(tenant, rt, r, base_url, projection, with_members)
                     for r in page]
        return SearchResult(total, resources, 1, next_cursor)

    @staticmethod
    def _offset(cursor: str) -> int:
        if not cursor:
            return 0
        position = decode_cursor(cursor)
        _, _, number = position.partition("offset:")
        if not number.isdigit():
            raise InvalidCursor("The cursor is not valid for this query.")
        return int(number)

    def _rendered(self, tenant: str, rt: ResourceType, record: Record, base_url: str,
                  projection: Projection, with_members: bool) -> dict[str, Any]:
        members = self.store.members(tenant, record.id) if with_members else None
        groups = (self.store.groups_of(tenant, record.id)
                  if rt.name == USER and projection.explicitly_requested("groups") else None)
        resource = render(self.registry, rt, record, base_url, members=members, groups=groups)
        return projection.apply(resource)
