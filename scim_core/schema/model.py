"""Attribute, schema and resource-type definitions (RFC 7643 §7), as frozen values."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from scim_core.kinds import Kind

STRING = "string"
BOOLEAN = "boolean"
DECIMAL = "decimal"
INTEGER = "integer"
DATETIME = "dateTime"
BINARY = "binary"
REFERENCE = "reference"
COMPLEX = "complex"
TYPES = frozenset({STRING, BOOLEAN, DECIMAL, INTEGER, DATETIME, BINARY, REFERENCE, COMPLEX})


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str = STRING
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    index: str | None = None
    """The name of the index that finds resources by this attribute's value; None when it
    is not looked up by value (a unique attribute always is: see ``Registry.indexes``)."""
    _by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({sub.name.lower(): sub for sub in self.sub_attributes})

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called ``name``, ignoring case."""
        return self._by_lower.get(name.lower())

    @property
    def read_only(self) -> bool:
        """Whether only the server sets it (``mutability: readOnly``)."""
        return self.mutability == "readOnly"

    @property
    def unique(self) -> bool:
        """Whether the service keeps its values unique among the resources of its type."""
        return self.uniqueness in ("server", "global")

    def to_dict(self) -> dict[str, Any]:
        """The RFC 7643 §7 JSON form, as /Schemas shows it."""
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.sub_attributes:
            doc["subAttributes"] = [sub.to_dict() for sub in self.sub_attributes]
        if self.canonical_values:
            doc["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Attribute:
        """An attribute from its RFC 7643 §7 JSON form (used for configured extensions)."""
        kind = doc.get("type", STRING)
        name = doc.get("name")
        if not isinstance(name, str) or not name or kind not in TYPES:
            raise ValueError(f"invalid attribute definition: {doc!r}")
        return cls(
            name=name,
            type=kind,
            multi_valued=bool(doc.get("multiValued", False)),
            required=bool(doc.get("required", False)),
            case_exact=bool(doc.get("caseExact", False)),
            mutability=str(doc.get("mutability", "readWrite")),
            returned=str(doc.get("returned", "default")),
            uniqueness=str(doc.get("uniqueness", "none")),
            description=str(doc.get("description", "")),
            sub_attributes=tuple(cls.from_dict(s) for s in doc.get("subAttributes", ())),
            canonical_values=tuple(doc.get("canonicalValues", ())),
            reference_types=tuple(doc.get("referenceTypes", ())),
        )


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    _by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({attr.name.lower(): attr for attr in self.attributes})

    def attribute(self, name: str) -> Attribute | None:
        """The top-level attribute called ``name``, ignoring case."""
        return self._by_lower.get(name.lower())

    def to_dict(self, location: str) -> dict[str, Any]:
        """The /Schemas document of this schema at ``location``."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attr.to_dict() for attr in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Schema:
        """A schema from its RFC 7643 §7 JSON form (used for configured extensions)."""
        schema_id = doc.get("id")
        if not isinstance(schema_id, str) or not schema_id.startswith("urn:"):
            raise ValueError("a schema needs an 'id' that is a URN")
        return cls(
            id=schema_id,
            name=str(doc.get("name", schema_id.rsplit(":", 1)[-1])),
            description=str(doc.get("description", "")),
            attributes=tuple(Attribute.from_dict(a) for a in doc.get("attributes", ())),
        )


@dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    schema: str
    description: str
    extensions: tuple[tuple[str, bool], ...] = ()

    @functools.cached_property
    def kind(self) -> Kind:
        """What the store keeps resources of this type as."""
        return Kind(self.name)

    def to_dict(self, location: str) -> dict[str, Any]:
        """The /ResourceTypes document of this type at ``location``."""
        doc: dict[str, Any] = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema,
            "meta": {"resourceType": "ResourceType", "location": location},
        }
        if self.extensions:
            doc["schemaExtensions"] = [
                {"schema": urn, "required": required} for urn, required in self.extensions
            ]
        return doc
