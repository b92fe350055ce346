"""Index definitions derived from the schemas: what a resource type is looked up by."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from scim_core.schema.model import Attribute


@dataclass(frozen=True)
class IndexSpec:
    """One index of a resource type: the attribute (or sub-attribute) whose values it holds,
    whether those values are unique, and whether they compare case-exactly."""

    name: str
    """The name the index's rows carry (``userName``, ``email``, or ``<urn>:<attribute>``)."""
    container: str | None
    """The extension URN holding the attribute; None for core and common attributes."""
    attribute: str
    sub: str | None
    unique: bool
    case_exact: bool
    multi_valued: bool

    def normalised(self, value: str) -> str:
        """``value`` as the index stores and looks it up."""
        return value if self.case_exact else value.casefold()

    def values(self, document: Mapping[str, Any]) -> list[str]:
        """The distinct normalised values ``document`` holds for this index, in order."""
        scope: Any = document if self.container is None else document.get(self.container)
        raw = scope.get(self.attribute) if isinstance(scope, Mapping) else None
        items = raw if isinstance(raw, list) else [raw]
        if self.sub is not None:
            items = [item.get(self.sub) for item in items if isinstance(item, Mapping)]
        found = {self.normalised(_text(item)): None for item in items if _text(item) is not None}
        return list(found)


def _text(value: Any) -> Any:
    """The indexed text of a scalar: strings as they are, integers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def derive_indexes(groups: Iterable[tuple[str | None, Iterable[Attribute]]]
                   ) -> tuple[IndexSpec, ...]:
    """The indexes of the attributes in ``groups`` (pairs of extension URN, or None for the
    core and common attributes, and their attributes): every attribute or sub-attribute
    that names an ``index`` or is declared unique; read-only ones (``id``, ``meta``) are
    assigned by the server and never looked up by value."""
    return tuple(_specs(groups))


def _specs(groups: Iterable[tuple[str | None, Iterable[Attribute]]]) -> Iterator[IndexSpec]:
    for urn, attributes in groups:
        prefix = f"{urn}:" if urn else ""
        for top in attributes:
            if top.read_only:
                continue
            if top.index or top.unique:
                yield IndexSpec(top.index or prefix + top.name, urn, top.name, None,
                                top.unique, top.case_exact, top.multi_valued)
            for sub in top.sub_attributes:
                if not sub.read_only and (sub.index or sub.unique):
                    yield IndexSpec(sub.index or f"{prefix}{top.name}.{sub.name}", urn,
                                    top.name, sub.name, sub.unique, sub.case_exact,
                                    top.multi_valued)
