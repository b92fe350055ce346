"""add, replace and remove applied to a document's attributes (everything but members)."""

from __future__ import annotations

import copy
import json
from typing import Any

from scim_core.errors import InvalidPath, InvalidValue, Mutability, NoTarget
from scim_core.filter.budget import WorkBudget, term_count
from scim_core.json_keys import find_key, get_ci, merge_ci, pop_ci, set_ci
from scim_core.patch.paths import Target, element_test, eq_template, resolve_target
from scim_core.schema import Attribute, Registry, ResourceType
from scim_core.schema.model import COMPLEX
from scim_core.validation import coerce


def _is_reference(attr: Attribute) -> bool:
    """A singular complex attribute that is a reference by ``value`` (``manager``): a new
    value replaces the old one whole, so no stale ``$ref`` survives."""
    return not attr.multi_valued and attr.sub("value") is not None


def _without_primary(element: Any) -> Any:
    if not isinstance(element, dict):
        return element
    return {k: v for k, v in element.items() if k.lower() != "primary"}


def _enforce_primary(attr: Attribute | None, elements: list[Any], touched: list[int],
                     where: str) -> None:
    """RFC 7643 §2.4: at most one element is primary; the one just written wins."""
    if attr is None or attr.sub("primary") is None:
        return
    chosen = [i for i in dict.fromkeys(touched)
              if isinstance(elements[i], dict) and elements[i].get("primary") is True]
    if len(chosen) > 1:
        raise InvalidValue(f"'{where}': only one value may have primary set to true.")
    for i, element in enumerate(elements):
        if chosen and i != chosen[0] and isinstance(element, dict) and element.get("primary"):
            element["primary"] = False


def _store_list(parent: dict[str, Any], key: str, elements: list[Any]) -> None:
    """An emptied multi-valued attribute is removed, never stored as ``[]``."""
    kept = [e for e in elements if e not in ({}, None)]
    if kept:
        parent[key] = kept
    else:
        parent.pop(key, None)


class AttributeEditor:
    """Edits one document in place; the caller hands it a copy and keeps it only if every
    operation succeeds."""

    def __init__(self, registry: Registry, rt: ResourceType, document: dict[str, Any], *,
                 budget: WorkBudget | None = None) -> None:
        self.registry = registry
        self.rt = rt
        self.doc = document
        self.budget = budget if budget is not None else WorkBudget()

    def apply(self, op: str, target: Target, value: Any) -> None:
        """Apply one add, replace or remove at ``target``."""
        if target.is_root:
            self._extension_object(op, target, value)
            return
        self._check_writable(target)
        if any(a is not None and a.mutability == "writeOnly"
               for a in (target.attribute, target.sub)):
            return  # password: accepted, never stored
        located = self._parent(target.container, create=op != "remove")
        if located is None:
            return
        container_key, parent = located
        attr = target.attribute
        key = attr.name if attr is not None else (find_key(parent, target.name) or target.name)
        self._charge(parent.get(key), target, value)
        guarded = _is_guarded(target)
        before = copy.deepcopy(parent.get(key)) if guarded else None
        if target.filter is not None:
            self._filtered(op, parent, key, target, value)
        elif target.sub_name is not None:
            self._sub(op, parent, key, target, value)
        else:
            self._whole(op, parent, key, target, value)
        if guarded and before is not None:
            _check_immutable(target, before, parent.get(key))
        if container_key is not None and not parent:
            del self.doc[container_key]

    def _charge(self, existing: Any, target: Target, value: Any) -> None:
        """An operation walks the stored elements (each tested against every filter term)
        and the new ones: charged before it runs."""
        walked = len(existing) if isinstance(existing, list) else 1
        terms = term_count(target.filter) if target.filter is not None else 1
        self.budget.spend(walked * terms + (len(value) if isinstance(value, list) else 1))

    # -- locating --------------------------------------------------------------------------

    def _parent(self, container: str | None,
                create: bool) -> tuple[str | None, dict[str, Any]] | None:
        if container is None:
            return None, self.doc
        key = find_key(self.doc, container) or container
        existing = self.doc.get(key)
        if existing is None:
            if not create:
                return None
            existing = self.doc[key] = {}
        if not isinstance(existing, dict):
            raise InvalidPath(f"'{container}' is not an extension object.")
        return key, existing

    @staticmethod
    def _check_writable(target: Target) -> None:
        if target.attribute is None and target.container is None \
                and target.name.lower() == "schemas":
            raise Mutability("'schemas' is set by the server and cannot be changed.")
        for attr in (target.attribute, target.sub):
            if attr is not None and attr.read_only:
                raise Mutability(f"'{target.text}' is read-only.")

    def _element(self, attr: Attribute | None, raw: Any, where: str) -> Any:
        if attr is None:
            if not isinstance(raw, dict):
                raise InvalidValue(f"'{where}' must be given a JSON object.")
            return raw
        return coerce(attr, raw, where, element=True)

    # -- whole attributes ------------------------------------------------------------------

    def _whole(self, op: str, parent: dict[str, Any], key: str, t: Target, value: Any) -> None:
        attr = t.attribute
        if op == "remove":
            if attr is not None and attr.required:
                raise Mutability(f"'{attr.name}' is required and cannot be removed.")
            parent.pop(key, None)
            return
        if attr is None:
            _set_unknown(op, parent, key, value)
            return
        new = coerce(attr, value, t.text)
        if attr.multi_valued:
            if new is None:
                if op == "replace":
                    parent.pop(key, None)
                return
            current = parent.get(key)
            elements = list(current) if op == "add" and isinstance(current, list) else []
            touched = _add_elements(elements, new)
            _enforce_primary(attr, elements, touched, t.text)
            _store_list(parent, key, elements)
        elif new is None:
            parent.pop(key, None)
        elif attr.type == COMPLEX and not _is_reference(attr):
            current = parent.get(key)
            merged = dict(current) if isinstance(current, dict) else {}
            merge_ci(merged, new)
            parent[key] = merged
        else:
            parent[key] = new

    # -- attr.sub without a filter ---------------------------------------------------------

    def _sub(self, op: str, parent: dict[str, Any], key: str, t: Target, value: Any) -> None:
        attr, sub_key = t.attribute, t.sub_name or ""
        existing = parent.get(key)
        if attr is not None and attr.type != COMPLEX:
            raise InvalidPath(f"'{t.text}': '{attr.name}' has no sub-attributes.")
        new = None if op == "remove" else coerce(t.sub, value, t.text)
        multi = attr.multi_valued if attr is not None else isinstance(existing, list)
        if multi:
            elements = list(existing) if isinstance(existing, list) else []
            if new is None:
                for element in elements:
                    if isinstance(element, dict):
                        pop_ci(element, sub_key)
                _store_list(parent, key, elements)
                return
            touched = [i for i, e in enumerate(elements) if isinstance(e, dict)]
            for i in touched:
                set_ci(elements[i], sub_key, copy.deepcopy(new))
            if not touched:
                elements.append(self._element(attr, {sub_key: value}, t.text))
                touched = [len(elements) - 1]
            _enforce_primary(attr, elements, touched, t.text)
            _store_list(parent, key, elements)
            return
        if existing is not None and not isinstance(existing, dict):
            raise InvalidPath(f"'{t.text}': '{t.name}' is not a complex attribute.")
        current = dict(existing or {})
        if new is None:
            pop_ci(current, sub_key)
        else:
            set_ci(current, sub_key, new)
        if current:
            parent[key] = current
        else:
            parent.pop(key, None)

    # -- attr[filter] and attr[filter].sub -------------------------------------------------

    def _filtered(self, op: str, parent: dict[str, Any], key: str, t: Target,
                  value: Any) -> None:
        attr, expr = t.attribute, t.filter
        assert expr is not None
        existing = parent.get(key)
        if attr is not None and attr.type != COMPLEX:
            raise InvalidPath(f"'{t.text}': a filter needs a complex attribute.")
        single = not attr.multi_valued if attr is not None else isinstance(existing, dict)
        if single:
            elements = [] if existing is None else [existing]
        elif existing is None or isinstance(existing, list):
            elements = list(existing or [])
        else:
            raise InvalidPath(f"'{t.text}': '{t.name}' is not multi-valued.")
        matches = element_test(expr, attr)
        hits = [i for i, element in enumerate(elements) if matches(element)]
        sub_key = t.sub_name
        if op == "remove" or value is None:
            if op == "add":
                return
            if sub_key is None:
                gone = set(hits)
                elements = [e for i, e in enumerate(elements) if i not in gone]
            else:
                for i in hits:
                    pop_ci(elements[i], sub_key)
            self._put(parent, key, elements, single)
            return
        if sub_key is not None:
            new = coerce(t.sub, value, t.text)
            for i in hits:
                if new is None:
                    pop_ci(elements[i], sub_key)
                else:
                    set_ci(elements[i], sub_key, copy.deepcopy(new))
        else:
            new = self._element(attr, value, t.text)
            for i in hits:
                if single and attr is not None and _is_reference(attr):
                    elements[i] = copy.deepcopy(new)
                else:
                    merge_ci(elements[i], copy.deepcopy(new or {}))
        touched = hits
        if not hits and new is not None:
            template = eq_template(expr, attr)
            if template is None or (single and elements):
                raise NoTarget(f"No value matches '{t.text}', and its filter does not "
                               "describe a new one (use eq comparisons joined by and).")
            if sub_key is not None:
                set_ci(template, sub_key, value)
            else:
                merge_ci(template, new)
            elements.append(self._element(attr, template, t.text))
            touched = [len(elements) - 1]
        _enforce_primary(attr, elements, touched, t.text)
        self._put(parent, key, elements, single)

    @staticmethod
    def _put(parent: dict[str, Any], key: str, elements: list[Any], single: bool) -> None:
        if not single:
            _store_list(parent, key, elements)
        elif elements and elements[0]:
            parent[key] = elements[0]
        else:
            parent.pop(key, None)

    # -- a whole extension object ----------------------------------------------------------

    def _extension_object(self, op: str, t: Target, value: Any) -> None:
        container = t.container or ""
        if op == "remove" or value is None:
            if op != "add" and (key := find_key(self.doc, container)) is not None:
                del self.doc[key]
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"'{t.text}' must be given a JSON object.")
        for name, item in value.items():
            inner = resolve_target(self.registry, self.rt, f"{container}:{name}")
            if inner.is_root or (inner.container or "").lower() != container.lower():
                raise InvalidPath(f"'{name}' is not an attribute name inside '{container}'.")
            self.apply(op, inner, item)


def _fingerprint(element: Any) -> str:
    return json.dumps(_without_primary(element), sort_keys=True)


def _add_elements(elements: list[Any], new: list[Any]) -> list[int]:
    """Append each new element unless an equal one exists (``primary`` aside, which is then
    taken from the new element); the indices of the elements written."""
    seen = {_fingerprint(e): i for i, e in enumerate(elements)}
    touched: list[int] = []
    for element in new:
        at = seen.get(fingerprint := _fingerprint(element))
        if at is None:
            elements.append(element)
            at = seen[fingerprint] = len(elements) - 1
        elif isinstance(element, dict) and "primary" in element:
            elements[at] = {**elements[at], "primary": element["primary"]}
        touched.append(at)
    return touched


def _set_unknown(op: str, parent: dict[str, Any], key: str, value: Any) -> None:
    """Attributes no schema defines are stored verbatim; ``add`` still appends to a list
    and merges into an object, as it would for a known attribute of that shape."""
    existing = parent.get(key)
    if value is None or value == [] or value == {}:
        if not (op == "add" and isinstance(existing, list)):
            parent.pop(key, None)
        return
    if op == "add" and isinstance(existing, list):
        merged = list(existing)
        seen = {json.dumps(v, sort_keys=True) for v in merged}
        for item in value if isinstance(value, list) else [value]:
            if (fingerprint := json.dumps(item, sort_keys=True)) not in seen:
                seen.add(fingerprint)
                merged.append(item)
        parent[key] = merged
    elif isinstance(existing, dict) and isinstance(value, dict):
        combined = dict(existing)
        merge_ci(combined, value)
        parent[key] = combined
    else:
        parent[key] = value


def _immutable_subs(attr: Attribute) -> list[str]:
    if attr.multi_valued:
        return []  # elements have no identity to compare; not checked
    return [sub.name for sub in attr.sub_attributes if sub.mutability == "immutable"]


def _is_guarded(t: Target) -> bool:
    attr = t.attribute
    return attr is not None and (attr.mutability == "immutable" or bool(_immutable_subs(attr)))


def _check_immutable(t: Target, before: Any, after: Any) -> None:
    """RFC 7644 §3.5.2: an immutable value may be added once, never changed."""
    attr = t.attribute
    assert attr is not None
    if attr.mutability == "immutable":
        changed = before != after
    else:
        old = before if isinstance(before, dict) else {}
        new = after if isinstance(after, dict) else {}
        changed = any(get_ci(old, name) is not None and get_ci(old, name) != get_ci(new, name)
                      for name in _immutable_subs(attr))
    if changed:
        raise Mutability(f"'{t.text}' is immutable and already has a value.")
