"""``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9), driven by the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim_core.errors import InvalidValue
from scim_core.json_keys import find_key
from scim_core.schema import AttrPath, Registry, ResourceType

ALWAYS = frozenset({"id", "schemas"})
MAX_NAMES = 100


def _split_names(text: str) -> list[str]:
    """``text`` cut at every comma outside brackets, with each bracketed value filter left
    out (``emails[type eq "work"].value`` names ``emails.value``, as Microsoft's test
    collection sends it), in one pass whatever the input."""
    names: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif depth:
            continue
        elif char == ",":
            names.append("".join(current))
            current = []
        else:
            current.append(char)
    names.append("".join(current))
    return names


def parse_names(raw: Any, where: str) -> tuple[str, ...]:
    """A comma-separated string (query) or a list of strings (``/.search`` body); a name
    written with a value filter (``emails[type eq "work"].value``) is read as the attribute
    it names (``emails.value``)."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        names = _split_names(raw)
    elif isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        names = [name for item in raw for name in _split_names(item)]
    else:
        raise InvalidValue(f"'{where}' must be a comma-separated list of attribute names.")
    names = [n.strip() for n in names if n.strip()]
    if len(names) > MAX_NAMES:
        raise InvalidValue(f"'{where}' names more than {MAX_NAMES} attributes.")
    return tuple(names)


@dataclass(frozen=True)
class Projection:
    """Which attributes a response carries."""

    include: tuple[AttrPath, ...] = ()
    exclude: tuple[AttrPath, ...] = ()

    @classmethod
    def parse(cls, registry: Registry, rt: ResourceType, attributes: tuple[str, ...],
              excluded: tuple[str, ...]) -> Projection:
        """The projection of the given names for ``rt``; 400 for a name that is invalid."""
        def resolve(names: tuple[str, ...], where: str) -> tuple[AttrPath, ...]:
            paths = []
            for name in names:
                try:
                    paths.append(registry.resolve(rt, name))
                except ValueError as exc:
                    raise InvalidValue(f"'{where}' holds an invalid name: {name[:100]}") from exc
            return tuple(paths)

        return cls(resolve(attributes, "attributes"), resolve(excluded, "excludedAttributes"))

    @property
    def is_identity(self) -> bool:
        """Whether no names were asked for (the resource goes out whole)."""
        return not self.include and not self.exclude

    def wants(self, name: str) -> bool:
        """Whether the top-level core attribute ``name`` can appear in the response."""
        lowered = name.lower()
        if self.include:
            return any(p.container is None and p.name.lower() == lowered for p in self.include)
        return not any(p.container is None and p.name.lower() == lowered and p.sub_name is None
                       for p in self.exclude)

    def explicitly_requested(self, name: str) -> bool:
        """Whether ``attributes`` names the core attribute ``name``."""
        lowered = name.lower()
        return any(p.container is None and p.name.lower() == lowered for p in self.include)

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        """``resource`` with only the asked-for attributes, or without the excluded ones."""
        if self.is_identity:
            return resource
        if self.include:
            result = {k: v for k, v in resource.items() if k in ALWAYS}
            for path in self.include:
                _copy(resource, result, path)
            return result
        result = dict(resource)
        for path in self.exclude:
            _drop(result, path)
        return result


def _scope(resource: dict[str, Any], path: AttrPath) -> dict[str, Any] | None:
    if path.container is None:
        return resource
    key = find_key(resource, path.container)
    found = resource.get(key) if key else None
    return found if isinstance(found, dict) else None


def _copy(source: dict[str, Any], target: dict[str, Any], path: AttrPath) -> None:
    scope = _scope(source, path)
    if scope is None:
        return
    if path.is_extension_root:
        target[path.container or ""] = scope
        return
    if path.container is not None:
        container_key = find_key(source, path.container) or path.container
        target = target.setdefault(container_key, {})
    key = find_key(scope, path.name)
    if key is None:
        return
    value = scope[key]
    if path.sub_name is None:
        target[key] = value
        return
    sub = path.sub_name
    if isinstance(value, dict):
        sub_key = find_key(value, sub)
        if sub_key is not None:
            target.setdefault(key, {})[sub_key] = value[sub_key]
    elif isinstance(value, list):
        picked = [{sk: item[sk]} for item in value
                  if isinstance(item, dict) and (sk := find_key(item, sub)) is not None]
        if picked:
            target[key] = picked


def _drop(resource: dict[str, Any], path: AttrPath) -> None:
    if path.container is None and path.name.lower() in ALWAYS:
        return
    if path.is_extension_root:
        key = find_key(resource, path.container or "")
        if key:
            resource.pop(key)
        return
    scope = _scope(resource, path)
    if scope is None:
        return
    if path.container is not None:
        container_key = find_key(resource, path.container) or path.container
        scope = resource[container_key] = dict(scope)
    key = find_key(scope, path.name)
    if key is None:
        return
    if path.sub_name is None:
        scope.pop(key)
        return
    value = scope[key]
    if isinstance(value, dict):
        trimmed = {k: v for k, v in value.items() if k.lower() != path.sub_name.lower()}
        scope[key] = trimmed
    elif isinstance(value, list):
        scope[key] = [{k: v for k, v in item.items() if k.lower() != path.sub_name.lower()}
                      if isinstance(item, dict) else item for item in value]
