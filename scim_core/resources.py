"""Rendering stored records as SCIM resources, and the index keys a document is found by."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from scim_core.kinds import Kind
from scim_core.schema import Registry, ResourceType
from scim_core.store import IndexKey, Member, Record


def index_keys(registry: Registry, rt: ResourceType, document: Mapping[str, Any]
               ) -> list[IndexKey]:
    """The index entries of a document, one per value of each index the registry derives
    for ``rt`` (normalised as the index compares)."""
    return [IndexKey(spec.name, value, spec.unique)
            for spec in registry.indexes(rt) for value in spec.values(document)]


def location(base_url: str, rt: ResourceType, resource_id: str) -> str:
    """The URL of a resource."""
    return f"{base_url}{rt.endpoint}/{resource_id}"


def render_members(base_url: str, members: Iterable[Member]) -> list[dict[str, Any]]:
    """A group's ``members`` as the API shows them."""
    rendered = []
    for member in members:
        item: dict[str, Any] = {"value": member.value, "$ref": f"{base_url}/Users/{member.value}",
                                "type": "User"}
        if member.display:
            item["display"] = member.display
        rendered.append(item)
    return rendered


def render_groups(base_url: str, group_ids: Iterable[str]) -> list[dict[str, Any]]:
    """A user's ``groups`` as the API shows them."""
    return [{"value": g, "$ref": f"{base_url}/Groups/{g}", "type": "direct"} for g in group_ids]


def render(registry: Registry, rt: ResourceType, record: Record, base_url: str, *,
           members: Iterable[Member] | None = None,
           groups: Iterable[str] | None = None) -> dict[str, Any]:
    """The full SCIM representation of a record (before attribute projection)."""
    document = record.document
    schemas = [rt.schema]
    schemas.extend(urn for urn, _ in rt.extensions if urn in document)
    # Extensions no schema defines are kept verbatim under their URN; declare them too
    # (RFC 7643 §3: "schemas" names the schemas of every attribute present).
    known = {urn.lower() for urn in schemas}
    schemas.extend(key for key, value in document.items()
                   if isinstance(value, dict) and key[:4].lower() == "urn:"
                   and key.lower() not in known)
    resource: dict[str, Any] = {"schemas": schemas, "id": record.id}
    if "externalId" in document:
        resource["externalId"] = document["externalId"]
    for key, value in document.items():
        if key != "externalId":
            resource[key] = value
    if members is not None and rt.kind is Kind.GROUP:
        resource["members"] = render_members(base_url, members)
    if groups:
        resource["groups"] = render_groups(base_url, groups)
    resource["meta"] = {
        "resourceType": rt.name,
        "created": record.meta.created,
        "lastModified": record.meta.last_modified,
        "location": location(base_url, rt, record.id),
        "version": record.meta.version,
    }
    return resource


class LazyResource(Mapping[str, Any]):
    """A rendered resource whose relation (a group's ``members``, a user's ``groups``) is
    read from the store only if looked at, so a filter that never inspects it does not
    load 100,000 rows."""

    def __init__(self, resource: dict[str, Any], relation: str,
                 load: Callable[[], list[dict[str, Any]]]) -> None:
        self._resource = resource
        self._relation = relation
        self._load = load
        self._loaded: list[dict[str, Any]] | None = None

    def __getitem__(self, key: str) -> Any:
        if key == self._relation:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded
        return self._resource[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._resource
        if self._relation not in self._resource:
            yield self._relation

    def __len__(self) -> int:
        return len(self._resource) + (0 if self._relation in self._resource else 1)
