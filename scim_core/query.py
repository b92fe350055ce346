"""Searching: plan a filter onto point reads where possible, evaluate exactly, sort, page
(docs/architecture.md, "Searching")."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from scim_core.errors import InvalidCursor, InvalidFilter
from scim_core.filter import And, Compare, Expr, ValuePath, matches, sort_key, values_at
from scim_core.filter.budget import metered
from scim_core.kinds import Kind
from scim_core.projection import Projection
from scim_core.resources import LazyResource, render, render_groups, render_members
from scim_core.schema import AttrPath, Registry, ResourceType
from scim_core.store import IndexKey, Record, TenantStore
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


@dataclass(frozen=True)
class Scope:
    """One resource type a search covers, with the projection its resources get."""

    rt: ResourceType
    projection: Projection


def _conjuncts(expr: Expr) -> Iterator[Expr]:
    if isinstance(expr, And):
        yield from _conjuncts(expr.left)
        yield from _conjuncts(expr.right)
    else:
        yield expr


class Searcher:
    """Searches one tenant's resources."""

    def __init__(self, store: TenantStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    @metered
    def search(self, scopes: Sequence[Scope], params: SearchParams,
               base_url: str) -> SearchResult:
        """The page of resources of ``scopes``' types (in that order) matching ``params``;
        evaluating the filter may spend at most ``MAX_WORK`` units (else 400 tooMany)."""
        if (len(scopes) == 1 and params.cursor is not None and params.filter is None
                and params.sort_by is None):
            return self._cursor_page(scopes[0], params, base_url)
        found = [(scope, record) for scope in scopes
                 for record in self._matching(scope.rt, params.filter, base_url)]
        if params.sort_by is not None:
            found = self._sorted(found, params.sort_by, params.descending, base_url)
        total = len(found)
        offset = (self._offset(params.cursor) if params.cursor is not None
                  else params.start_index - 1)
        page = found[offset: offset + params.count]
        next_cursor = None
        if params.cursor is not None and offset + params.count < total:
            next_cursor = encode_cursor(f"offset:{offset + params.count}")
        resources = [self._rendered(scope, record, base_url) for scope, record in page]
        return SearchResult(total, resources, offset + 1, next_cursor)

    # -- planning --------------------------------------------------------------------------

    def _matching(self, rt: ResourceType, expr: Expr | None, base_url: str) -> list[Record]:
        if expr is None:
            return list(self.store.scan(rt.kind))
        planned = self._plan(rt, expr)
        candidates = planned if planned is not None else self.store.scan(rt.kind)
        return [r for r in candidates if self._accepts(rt, expr, r, base_url)]

    def _plan(self, rt: ResourceType, expr: Expr) -> Iterable[Record] | None:
        """Records from one point read for the first plannable conjunct, or None (scan)."""
        for term in _conjuncts(expr):
            planned = self._point(rt, term)
            if planned is not None:
                return planned
        return None

    def _point(self, rt: ResourceType, term: Expr) -> list[Record] | None:
        if isinstance(term, Compare):
            if term.op != "eq" or not isinstance(term.value, str):
                return None
            return self._equal(rt, self._resolved(rt, term.path), term.value)
        if isinstance(term, ValuePath):
            path = self._resolved(rt, term.path)
            for inner in _conjuncts(term.filter):
                if (isinstance(inner, Compare) and inner.op == "eq"
                        and isinstance(inner.value, str) and inner.path.lower() == "value"):
                    planned = self._equal(rt, AttrPath(path.container, path.name,
                                                       path.attribute, "value"), inner.value)
                    if planned is not None:
                        return planned
        return None

    def _equal(self, rt: ResourceType, path: AttrPath, value: str) -> list[Record] | None:
        """The records whose ``path`` equals ``value``, when one read finds them."""
        if path.container is None and path.sub_name in (None, "value"):
            name = path.name.lower()
            if name == "id" and path.sub_name is None:
                record = self.store.get(rt.kind, value)
                return [record] if record else []
            if rt.kind is Kind.GROUP and name == "members":
                return self._groups_with(value)
            if rt.kind is Kind.USER and name == "groups":
                return self._members_of(value)
        spec = self.registry.index_for(rt, path)
        if spec is None:
            return None
        return self.store.lookup(rt.kind, IndexKey(spec.name, spec.normalised(value),
                                                   spec.unique))

    def _resolved(self, rt: ResourceType, path: str) -> AttrPath:
        try:
            return self.registry.resolve(rt, path)
        except ValueError as exc:
            raise InvalidFilter(f"Invalid attribute path in filter: {path[:100]}") from exc

    def _groups_with(self, user_id: str) -> list[Record]:
        found = (self.store.get(Kind.GROUP, g) for g in self.store.groups_of(user_id))
        return [g for g in found if g is not None]

    def _members_of(self, group_id: str) -> list[Record]:
        found = (self.store.get(Kind.USER, m.value) for m in self.store.members(group_id))
        return [u for u in found if u is not None]

    # -- evaluation, sorting, paging -------------------------------------------------------

    def _accepts(self, rt: ResourceType, expr: Expr, record: Record, base_url: str) -> bool:
        resource: Any = render(self.registry, rt, record, base_url)
        is_member: Callable[[str], bool] | None = None
        if rt.kind is Kind.USER:
            resource = LazyResource(resource, "groups", lambda: render_groups(
                base_url, self.store.groups_of(record.id)))
        else:
            group_id = record.id
            resource = LazyResource(resource, "members", lambda: render_members(
                base_url, self.store.members(group_id)))

            def is_member(user_id: str) -> bool:
                return self.store.is_member(group_id, user_id)

        return matches(expr, resource, self.registry, rt, is_member=is_member)

    def _sorted(self, found: list[tuple[Scope, Record]], sort_by: str, descending: bool,
                base_url: str) -> list[tuple[Scope, Record]]:
        def key(item: tuple[Scope, Record]) -> Any:
            rt = item[0].rt
            values = values_at(render(self.registry, rt, item[1], base_url), self.registry,
                               rt, sort_by)
            return sort_key(values[0] if values else None)

        ordered = sorted(found, key=key, reverse=descending)
        if descending:
            # Absent values sort last in both directions (RFC 7644 §3.4.2.3).
            present = [r for r in ordered if key(r) != sort_key(None)]
            ordered = present + [r for r in ordered if key(r) == sort_key(None)]
        return ordered

    def _cursor_page(self, scope: Scope, params: SearchParams, base_url: str) -> SearchResult:
        kind = scope.rt.kind
        page, next_cursor = self.store.page(kind, cursor=params.cursor or None,
                                            size=params.count)
        total = self.store.count(kind)
        resources = [self._rendered(scope, r, base_url) for r in page]
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

    def _rendered(self, scope: Scope, record: Record, base_url: str) -> dict[str, Any]:
        rt, projection = scope.rt, scope.projection
        members = (self.store.members(record.id)
                   if rt.kind is Kind.GROUP and projection.wants("members") else None)
        groups = (self.store.groups_of(record.id)
                  if rt.kind is Kind.USER and projection.explicitly_requested("groups")
                  else None)
        resource = render(self.registry, rt, record, base_url, members=members, groups=groups)
        return projection.apply(resource)
