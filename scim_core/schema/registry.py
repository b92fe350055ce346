"""The one schema registry: resource types, their schemas, indexes and attribute paths
(docs/architecture.md, "The schema registry and its indexes")."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scim_core.kinds import Kind
from scim_core.schema.definitions import (
    COMMON_ATTRIBUTES,
    ENTERPRISE_USER,
    GROUP,
    GROUP_TYPE,
    USER,
    USER_TYPE,
)
from scim_core.schema.indexes import IndexSpec, derive_indexes
from scim_core.schema.model import Attribute, ResourceType, Schema


@dataclass(frozen=True)
class AttrPath:
    """A resolved attribute path such as ``name.givenName`` or ``urn:…:User:manager.value``.

    ``container`` is the document key holding the attribute: ``None`` for core attributes
    (they sit at the top level), the extension URN for extension attributes. ``attribute`` is
    ``None`` for attributes no schema defines; those are kept verbatim under ``name``.
    """

    container: str | None
    name: str
    attribute: Attribute | None
    sub_name: str | None = None
    sub: Attribute | None = None

    @property
    def is_extension_root(self) -> bool:
        """The path names a whole extension object (``urn:…:enterprise:2.0:User``)."""
        return self.container is not None and self.name == ""

    @property
    def leaf(self) -> Attribute | None:
        """The definition the path ends at: the sub-attribute when named, else the attribute."""
        return self.sub if self.sub_name is not None else self.attribute

    def __str__(self) -> str:
        text = self.name if self.sub_name is None else f"{self.name}.{self.sub_name}"
        return f"{self.container}:{text}" if self.container else text


class Registry:
    """Resource types and schemas, looked up by name, endpoint or URN, ignoring case."""

    def __init__(self, schemas: Iterable[Schema], resource_types: Iterable[ResourceType]) -> None:
        self._schemas = {s.id.lower(): s for s in schemas}
        self._types = {rt.name.lower(): rt for rt in resource_types}
        self._endpoints = {rt.endpoint.strip("/").lower(): rt for rt in self._types.values()}
        self._common = {a.name.lower(): a for a in COMMON_ATTRIBUTES}
        for rt in self._types.values():
            for urn in (rt.schema, *(u for u, _ in rt.extensions)):
                if urn.lower() not in self._schemas:
                    raise ValueError(f"resource type {rt.name} names unknown schema {urn}")
        self._indexes = {
            name: derive_indexes([
                (None, (*self.core_schema(rt).attributes, *COMMON_ATTRIBUTES)),
                *((s.id, s.attributes) for s in self.extension_schemas(rt)),
            ])
            for name, rt in self._types.items()
        }

    @classmethod
    def default(cls, extension_source: str = "") -> Registry:
        """The built-in schemas plus extensions from ``SCIM_EXTENSION_SCHEMAS`` (a JSON file
        path or inline JSON: a list of RFC 7643 §7 schema documents, each with a
        ``resourceType`` of ``User`` or ``Group``)."""
        schemas = [USER, ENTERPRISE_USER, GROUP]
        extensions: dict[str, list[tuple[str, bool]]] = {kind: [] for kind in Kind}
        for doc in _load_extension_docs(extension_source):
            schema = Schema.from_dict(doc)
            target = str(doc.get("resourceType", Kind.USER))
            if target not in extensions:
                raise ValueError(f"extension {schema.id} targets unknown type {target!r}")
            schemas.append(schema)
            extensions[target].append((schema.id, bool(doc.get("required", False))))
        user = ResourceType(USER_TYPE.name, USER_TYPE.endpoint, USER_TYPE.schema,
                            USER_TYPE.description, (*USER_TYPE.extensions,
                                                    *extensions[Kind.USER]))
        group = ResourceType(GROUP_TYPE.name, GROUP_TYPE.endpoint, GROUP_TYPE.schema,
                             GROUP_TYPE.description, tuple(extensions[Kind.GROUP]))
        return cls(schemas, (user, group))

    # -- lookups ---------------------------------------------------------------------------

    @property
    def resource_types(self) -> list[ResourceType]:
        """Every resource type (User, then Group)."""
        return list(self._types.values())

    @property
    def schemas(self) -> list[Schema]:
        """Every schema, core and extension."""
        return list(self._schemas.values())

    def resource_type(self, name: str) -> ResourceType | None:
        """A resource type by name, ignoring case; None when unknown."""
        return self._types.get(name.lower())

    def by_endpoint(self, segment: str) -> ResourceType | None:
        """The resource type served at an endpoint segment (``Users``), ignoring case."""
        return self._endpoints.get(segment.strip("/").lower())

    def schema(self, urn: str) -> Schema | None:
        """A schema by URN, ignoring case; None when unknown."""
        return self._schemas.get(urn.lower())

    def core_schema(self, rt: ResourceType) -> Schema:
        """The core schema of ``rt``."""
        return self._schemas[rt.schema.lower()]

    def extension_schemas(self, rt: ResourceType) -> list[Schema]:
        """The extension schemas ``rt`` declares, in order."""
        return [self._schemas[urn.lower()] for urn, _ in rt.extensions]

    def extension_urn(self, rt: ResourceType, key: str) -> str | None:
        """The canonical URN when ``key`` names one of ``rt``'s extension schemas."""
        lowered = key.lower()
        for urn, _ in rt.extensions:
            if urn.lower() == lowered:
                return urn
        return None

    def is_unknown_extension(self, rt: ResourceType, key: str) -> bool:
        """``key`` names a whole extension no schema defines: a URN ending in the resource
        type's name, as in ``urn:ietf:params:scim:schemas:extension:Custom:2.0:User``."""
        lowered = key.lower()
        if not lowered.startswith("urn:") or lowered == rt.schema.lower():
            return False
        if self.extension_urn(rt, key) is not None or key.count(":") < 3:
            return False
        if any(c in key for c in "[]\"' "):
            return False
        return key.rpartition(":")[2].lower() == rt.name.lower()

    def indexes(self, rt: ResourceType) -> tuple[IndexSpec, ...]:
        """The indexes resources of ``rt`` are found by, derived from their schemas."""
        return self._indexes[rt.name.lower()]

    def index_for(self, rt: ResourceType, path: AttrPath) -> IndexSpec | None:
        """The index holding the values ``path`` designates: its attribute, or, for a bare
        multi-valued complex attribute (``emails``), that attribute's ``value``."""
        if path.attribute is None:
            return None
        for spec in self.indexes(rt):
            if spec.container == path.container and spec.attribute == path.name and (
                    spec.sub == path.sub_name
                    or (path.sub_name is None and spec.sub == "value" and spec.multi_valued)):
                return spec
        return None

    def top_attribute(self, rt: ResourceType, name: str) -> Attribute | None:
        """A core or common attribute of ``rt`` by name, ignoring case."""
        return self.core_schema(rt).attribute(name) or self._common.get(name.lower())

    # -- path resolution -------------------------------------------------------------------

    def resolve(self, rt: ResourceType, path: str) -> AttrPath:
        """Resolve ``attr``, ``attr.sub``, ``urn:…:attr[.sub]`` or a bare extension URN.

        URN prefixes are matched longest-first, because URNs contain dots and colons
        (``…:2.0:User``). Unknown URNs split at their last colon, so a custom extension's
        attributes are kept under their URN. An unqualified name that only one extension
        defines resolves to it. Raises ``ValueError`` for an empty path.
        """
        path = path.strip()
        if not path:
            raise ValueError("empty attribute path")
        if path.lower().startswith("urn:"):
            return self._resolve_urn(rt, path)
        name, _, sub_name = path.partition(".")
        attribute = self.top_attribute(rt, name)
        if attribute is None:
            # An unqualified name that no core schema defines but exactly one extension
            # does (Entra's 2018 ``manager`` shapes) means that extension's attribute.
            found = [(s.id, a) for s in self.extension_schemas(rt)
                     if (a := s.attribute(name)) is not None]
            if len(found) == 1:
                return self._attr_path(found[0][0], found[0][1], name, sub_name or None)
        return self._attr_path(None, attribute, name, sub_name or None)

    def _resolve_urn(self, rt: ResourceType, path: str) -> AttrPath:
        lowered = path.lower()
        for urn in sorted((rt.schema, *(u for u, _ in rt.extensions)), key=len, reverse=True):
            low_urn = urn.lower()
            if lowered == low_urn:
                if urn == rt.schema:
                    raise ValueError(f"'{path}' names the core schema, not an attribute")
                return AttrPath(urn, "", None)
            if lowered.startswith(low_urn) and lowered[len(low_urn)] in ":.":
                rest = path[len(urn) + 1 :]
                name, _, sub_name = rest.partition(".")
                schema = self._schemas[low_urn]
                attribute = schema.attribute(name) or (
                    self._common.get(name.lower()) if urn == rt.schema else None
                )
                container = None if urn == rt.schema else urn
                return self._attr_path(container, attribute, name, sub_name or None)
        if self.is_unknown_extension(rt, path):
            return AttrPath(path, "", None)
        urn, sep, rest = path.rpartition(":")
        if not sep or not rest or urn.count(":") < 2:
            raise ValueError(f"'{path}' is not a valid attribute path")
        name, _, sub_name = rest.partition(".")
        return AttrPath(urn, name, None, sub_name or None, None)

    @staticmethod
    def _attr_path(container: str | None, attribute: Attribute | None, name: str,
                   sub_name: str | None) -> AttrPath:
        if not name:
            raise ValueError("empty attribute name")
        if attribute is None:
            return AttrPath(container, name, None, sub_name, None)
        sub = attribute.sub(sub_name) if sub_name else None
        canonical_sub = sub.name if sub else sub_name
        return AttrPath(container, attribute.name, attribute, canonical_sub, sub)


def _load_extension_docs(source: str) -> list[dict[str, Any]]:
    if not source:
        return []
    text = source if source.lstrip().startswith(("[", "{")) else Path(source).read_text("utf-8")
    loaded = json.loads(text)
    docs = loaded if isinstance(loaded, list) else [loaded]
    if not all(isinstance(d, dict) for d in docs):
        raise ValueError("SCIM_EXTENSION_SCHEMAS must hold schema objects")
    return docs
