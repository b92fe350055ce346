"""Checking and normalising attribute values against the schema registry
(docs/architecture.md, "Validation, filters and PATCH")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scim_core.errors import InvalidSyntax, InvalidValue
from scim_core.schema import Attribute, Registry, ResourceType
from scim_core.schema.model import (
    BINARY,
    BOOLEAN,
    COMPLEX,
    DATETIME,
    DECIMAL,
    INTEGER,
    REFERENCE,
    STRING,
)

SERVER_OWNED = frozenset({"id", "meta", "schemas"})
MAX_STRING = 65_536


def parse_bool(value: Any, where: str) -> bool:
    """JSON booleans, or the strings ``true``/``false`` in any case (Entra sends "False")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    raise InvalidValue(f"'{where}' must be a Boolean (true or false).")


def parse_datetime(value: str) -> datetime | None:
    """An RFC 3339 / xsd:dateTime instant, or None when ``value`` is not one."""
    text = value.strip()
    if len(text) < 10 or len(text) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed


def _scalar(attr: Attribute, value: Any, where: str) -> Any:
    kind = attr.type
    if kind == BOOLEAN:
        return parse_bool(value, where)
    if kind in (STRING, REFERENCE, BINARY):
        if not isinstance(value, str):
            raise InvalidValue(f"'{where}' must be a string.")
        if len(value) > MAX_STRING:
            raise InvalidValue(f"'{where}' is longer than {MAX_STRING} characters.")
        return value
    if kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"'{where}' must be an integer.")
        return value
    if kind == DECIMAL:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"'{where}' must be a number.")
        return value
    if kind == DATETIME:
        if not isinstance(value, str) or parse_datetime(value) is None:
            raise InvalidValue(f"'{where}' must be an xsd:dateTime such as 2026-01-31T12:00:00Z.")
        return value
    raise InvalidValue(f"'{where}' has an unsupported type.")


def coerce_complex(attr: Attribute, value: Any, where: str) -> dict[str, Any] | None:
    """One complex value: sub-attribute names made canonical, each sub-value checked."""
    if attr.sub("value") is not None and not attr.multi_valued:
        # Reference-style singular attributes (manager): "id", [{"value": "id"}] or {…}.
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str):
            value = {"value": value} if value else None
        if value is None:
            return None
    if not isinstance(value, Mapping):
        raise InvalidValue(f"'{where}' must be a JSON object.")
    result: dict[str, Any] = {}
    for key, sub_value in value.items():
        if sub_value is None:
            continue
        sub = attr.sub(key)
        if sub is None:
            result[key] = sub_value
            continue
        if sub.read_only:
            continue
        result[sub.name] = _scalar(sub, sub_value, f"{where}.{sub.name}")
    return result or None


def coerce(attr: Attribute | None, value: Any, where: str, *, element: bool = False) -> Any:
    """A checked, normalised value for ``attr`` (verbatim when ``attr`` is unknown).

    With ``element`` the value is one element of a multi-valued attribute. Returns None
    when the value amounts to "absent" (null, empty list, empty object).
    """
    if value is None:
        return None
    if attr is None:
        return value if value not in ([], {}) else None
    if attr.multi_valued and not element:
        items = value if isinstance(value, list) else [value]
        result = [c for item in items if (c := coerce(attr, item, where, element=True)) is not None]
        return result or None
    if attr.type == COMPLEX:
        return coerce_complex(attr, value, where)
    return _scalar(attr, value, where)


def normalise_resource(registry: Registry, rt: ResourceType, body: Any,
                       *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A storable document from a POST or PUT body: server-owned and read-only attributes
    dropped, known attributes checked and canonically named, extensions nested under their
    URN, unknown attributes kept verbatim, required attributes enforced. Names in ``skip``
    (lower-case) are left out for the caller to handle (a group's ``members``)."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("The request body must be a JSON object.")
    doc: dict[str, Any] = {}
    for key, value in body.items():
        lowered = key.lower()
        if value is None or lowered in SERVER_OWNED or lowered in skip:
            continue
        urn = registry.extension_urn(rt, key)
        if urn is not None:
            _merge_extension(registry, rt, doc, urn, value)
        elif lowered.startswith("urn:"):
            _set_urn_key(registry, rt, doc, key, value)
        else:
            attr = registry.top_attribute(rt, key)
            _set(doc, attr.name if attr else key, attr, value, key)
    for attr in registry.core_schema(rt).attributes:
        if attr.required:
            present = doc.get(attr.name)
            if present is None or (isinstance(present, str) and not present.strip()):
                raise InvalidValue(f"'{attr.name}' is required and must not be empty.")
    return doc


def _set(doc: dict[str, Any], name: str, attr: Attribute | None, value: Any, where: str) -> None:
    if attr is not None and (attr.read_only or attr.mutability == "writeOnly"):
        return
    coerced = coerce(attr, value, where)
    if coerced is None:
        doc.pop(name, None)
    else:
        doc[name] = coerced


def _merge_extension(registry: Registry, rt: ResourceType, doc: dict[str, Any], urn: str,
                     value: Any) -> None:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"'{urn}' must be a JSON object.")
    schema = registry.schema(urn)
    assert schema is not None
    target: dict[str, Any] = doc.setdefault(urn, {})
    for key, sub_value in value.items():
        if sub_value is None:
            continue
        attr = schema.attribute(key)
        _set(target, attr.name if attr else key, attr, sub_value, f"{urn}:{key}")
    if not target:
        del doc[urn]


def _set_urn_key(registry: Registry, rt: ResourceType, doc: dict[str, Any], key: str,
                 value: Any) -> None:
    """A top-level key that is a URN: an unknown extension object (kept verbatim) or a
    URN-qualified attribute name."""
    try:
        path = registry.resolve(rt, key)
    except ValueError as exc:
        raise InvalidValue(f"'{key}' is not a valid attribute name.") from exc
    if path.is_extension_root:
        if not isinstance(value, Mapping):
            raise InvalidValue(f"'{key}' must be a JSON object.")
        if value:
            doc[key] = dict(value)
        return
    if path.sub_name is not None:
        raise InvalidValue(f"'{key}': use a nested object for sub-attributes.")
    target = doc if path.container is None else doc.setdefault(path.container, {})
    _set(target, path.name, path.attribute, value, key)
    if path.container is not None and not target:
        del doc[path.container]
