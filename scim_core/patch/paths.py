"""Turning a PATCH path (or a path-less object key) into a resolved target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim_core.errors import InvalidFilter, InvalidPath
from scim_core.filter.ast import And, Compare, Expr
from scim_core.filter.evaluate import element_filter
from scim_core.filter.parser import parse_path
from scim_core.json_keys import find_key
from scim_core.schema import Attribute, Registry, ResourceType
from scim_core.schema.model import COMPLEX


@dataclass(frozen=True)
class Target:
    """Where an operation lands. ``container`` is the document key of an extension (None for
    core attributes); ``name`` is empty for a whole extension object."""

    text: str
    container: str | None
    name: str
    attribute: Attribute | None
    filter: Expr | None = None
    sub_name: str | None = None
    sub: Attribute | None = None

    @property
    def is_root(self) -> bool:
        """Whether the target is a whole extension object."""
        return self.container is not None and not self.name

    @property
    def is_complex(self) -> bool:
        """Whether the targeted attribute is complex."""
        return self.attribute is not None and self.attribute.type == COMPLEX

    @property
    def leaf(self) -> Attribute | None:
        """The definition written to: the sub-attribute when named, else the attribute."""
        return self.sub if self.sub_name is not None else self.attribute


def resolve_target(registry: Registry, rt: ResourceType, text: str) -> Target:
    """Resolve ``attr``, ``attr.sub``, ``urn:…:attr``, ``urn:….attr`` (legacy), a bare
    extension URN, ``attr[filter]`` or ``attr[filter].sub``. Raises ``InvalidPath``."""
    text = text.strip()
    parsed = parse_path(text)
    if parsed.filter is None:
        # The text itself is resolved: the registry knows where URNs end, a parser may not.
        return _plain(registry, rt, text)
    base = _plain(registry, rt, parsed.attribute)
    if base.is_root or base.sub_name is not None:
        raise InvalidPath(f"'{text}': a filter must follow an attribute name.")
    sub = parsed.sub
    if sub is not None and ("." in sub or not sub.strip()):
        raise InvalidPath(f"'{text}': only one sub-attribute may follow a filter.")
    sub_attr = base.attribute.sub(sub) if base.attribute is not None and sub else None
    return Target(text, base.container, base.name, base.attribute, parsed.filter,
                  sub_attr.name if sub_attr else sub, sub_attr)


def _plain(registry: Registry, rt: ResourceType, text: str) -> Target:
    try:
        path = registry.resolve(rt, _legacy_unknown_urn(registry, rt, text))
    except ValueError as exc:
        raise InvalidPath(f"'{text}' is not a valid attribute path: {exc}") from None
    if path.sub_name is not None and "." in path.sub_name:
        raise InvalidPath(f"'{text}': sub-attributes nest only one level.")
    return Target(text, path.container, path.name, path.attribute, None, path.sub_name,
                  path.sub)


def _legacy_unknown_urn(registry: Registry, rt: ResourceType, text: str) -> str:
    """Pre-2018 jobs wrote ``urn:…:User.attr``; for unknown URNs the registry would split
    at the last colon, so turn that dot into a colon first."""
    lowered = text.lower()
    marker = f":{rt.name.lower()}."
    at = lowered.find(marker)
    if not lowered.startswith("urn:") or at < 0 or registry.schema(text[: at + len(marker) - 1]):
        return text
    cut = at + len(marker) - 1
    return f"{text[:cut]}:{text[cut + 1:]}"


def eq_template(expr: Expr, attribute: Attribute | None) -> dict[str, Any] | None:
    """The element a filter of ``eq`` comparisons joined by ``and`` describes
    (``type eq "work"`` → ``{"type": "work"}``), or None for any other filter."""
    found: dict[str, Any] = {}
    pending: list[Expr] = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, And):
            pending.extend((node.right, node.left))
            continue
        if not isinstance(node, Compare) or node.op != "eq" or node.value is None:
            return None
        name = node.path
        if not name or any(c in name for c in ".[]:"):
            return None
        sub = attribute.sub(name) if attribute is not None else None
        key = sub.name if sub is not None else name
        previous = find_key(found, key)
        if previous is not None and found[previous] != node.value:
            return None
        found[previous or key] = node.value
    return found


def element_test(expr: Expr, attribute: Attribute | None) -> Callable[[Any], bool]:
    """Whether an element (a JSON object) satisfies a value-path filter, the filter checked
    once; it charges nothing, so callers charge elements × terms before they walk."""
    try:
        test = element_filter(expr, attribute)
    except InvalidFilter as exc:
        raise InvalidPath(f"The path filter cannot be evaluated: {exc.detail}") from None

    def matches(element: Any) -> bool:
        if not isinstance(element, dict):
            return False
        try:
            return test(element)
        except InvalidFilter as exc:
            raise InvalidPath(f"The path filter cannot be evaluated: {exc.detail}") from None

    return matches
