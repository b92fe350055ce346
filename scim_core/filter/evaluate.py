"""Evaluating parsed filters against resources and multi-valued elements (RFC 7644 §3.4.2.2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from scim_core.errors import InvalidFilter
from scim_core.filter.ast import And, Compare, Expr, Not, Or, Value, ValuePath
from scim_core.filter.budget import WorkBudget, current_budget, term_count
from scim_core.filter.compare import compare, equal, instant, text, type_problem
from scim_core.json_keys import get_ci
from scim_core.schema import Attribute, AttrPath, Registry, ResourceType
from scim_core.schema.model import COMPLEX, DATETIME

# -- public entry points -------------------------------------------------------------------


def matches(expr: Expr, resource: Mapping[str, Any], registry: Registry, rt: ResourceType,
            *, is_member: Callable[[str], bool] | None = None,
            budget: WorkBudget | None = None) -> bool:
    """Whether the rendered ``resource`` satisfies ``expr``. Where the RFC leaves room:

    * names ignore case; strings compare with ``casefold`` unless the (sub-)attribute is
      ``caseExact``; unknown attributes compare as case-insensitive strings;
    * multi-valued attributes match when any element does; without a sub-attribute the
      ``value`` is compared (``emails eq``, ``manager eq``, ``members eq``);
    * ``ne`` matches an absent attribute, else when any value differs; ``eq null`` means
      absent and ``ne null`` present (RFC 7643 §2.5);
    * Booleans allow only eq/ne/pr, with true/false or "true"/"false" in any case; a number
      or Boolean literal against a string attribute compares as its JSON text;
    * ``dateTime`` compares as instants: a literal that is not one is an InvalidFilter, a
      stored value that is not one does not match;
    * literal/operator/type mismatches raise InvalidFilter whatever the data, because the
      whole filter is checked first (``check_filter``).

    With ``is_member``, ``members eq "u"``, ``members.value eq "u"`` and
    ``members[value eq "u"]`` ask ``is_member("u")`` instead of reading ``members``.

    Each term tested, and each value or element it looks at, is charged to ``budget``
    (default: the request's, ``current_budget()``), which refuses past its limit.
    """
    meter = budget if budget is not None else current_budget()
    if meter is None:
        check_filter(expr, registry, rt)
        return _evaluate(expr, lambda term: _resource_test(
            term, resource, lambda path: _resolve(registry, rt, path), is_member, None))
    # The same filter object over many resources of one request: checked once.
    if (id(expr), rt.name) not in meter.checked:
        check_filter(expr, registry, rt)
        meter.checked.add((id(expr), rt.name))
    resolved = meter.resolved

    def resolve(path: str) -> AttrPath:
        found: AttrPath | None = resolved.get((rt.name, path))
        if found is None:
            found = resolved[rt.name, path] = _resolve(registry, rt, path)
        return found

    return _evaluate(expr, lambda term: _resource_test(term, resource, resolve, is_member,
                                                       meter))


def element_matches(expr: Expr, element: Any, attribute: Attribute | None) -> bool:
    """Whether one element of a multi-valued attribute satisfies a value-path filter.

    Paths in ``expr`` are sub-attribute names (any case); for an attribute of simple values
    the element is a scalar and ``value`` names it.
    """
    return element_filter(expr, attribute)(element)


def element_filter(expr: Expr, attribute: Attribute | None) -> Callable[[Any], bool]:
    """``element_matches`` for many elements: the filter is checked once, here (raising
    ``InvalidFilter``), and the returned test charges nothing (callers charge elements ×
    ``term_count(expr)`` before they walk)."""
    for term in _terms(expr):
        _check_element_term(term, attribute)
    return lambda element: _element_evaluate(expr, element, attribute)


def check_filter(expr: Expr, registry: Registry, rt: ResourceType) -> None:
    """Raise ``InvalidFilter`` when a path, operator or literal cannot apply to ``rt``."""
    for term in _terms(expr):
        _check_resource_term(term, registry, rt)


def values_at(resource: Mapping[str, Any], registry: Registry, rt: ResourceType,
              path: str) -> list[Any]:
    """The non-empty values ``path`` designates (for ``sortBy``), the ``primary`` element of
    a multi-valued attribute first; ``dateTime`` values come back as aware ``datetime``s so
    they order as instants."""
    resolved = _resolve(registry, rt, path)
    raw = _lookup(_container(resource, resolved), resolved.name)
    if isinstance(raw, list):
        raw = sorted(raw, key=lambda e: _lookup(e, "primary") is not True)
    values = [v for v in _candidates(raw, resolved.sub_name) if _present(v)]
    definition = _definition(resolved)
    if definition is not None and definition.type == DATETIME:
        values = [instant(v) or v for v in values]
    return values


# -- tree walking (iterative over and/or chains, so long chains cannot exhaust the stack) ---


def _flatten(expr: And | Or) -> list[Expr]:
    kind = type(expr)
    stack: list[Expr] = [expr]
    operands: list[Expr] = []
    while stack:
        node = stack.pop()
        if type(node) is kind:
            assert isinstance(node, And | Or)
            stack.extend((node.right, node.left))
        else:
            operands.append(node)
    return operands


def _evaluate(expr: Expr, test: Callable[[Compare | ValuePath], bool]) -> bool:
    try:
        if isinstance(expr, And | Or):
            combine = all if isinstance(expr, And) else any
            return combine(_evaluate(operand, test) for operand in _flatten(expr))
        if isinstance(expr, Not):
            return not _evaluate(expr.expr, test)
        return test(expr)
    except RecursionError as exc:
        raise InvalidFilter("The filter is nested too deeply.") from exc


def _terms(expr: Expr) -> Iterable[Compare | ValuePath]:
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, And | Or):
            stack.extend((node.right, node.left))
        elif isinstance(node, Not):
            stack.append(node.expr)
        else:
            yield node


# -- resolving and reading -------------------------------------------------------------------


def _resolve(registry: Registry, rt: ResourceType, path: str) -> AttrPath:
    try:
        return registry.resolve(rt, path)
    except ValueError as exc:
        raise InvalidFilter(f"Invalid attribute path in filter: '{path[:100]}'.") from exc


def _lookup(mapping: Any, name: str) -> Any:
    """``mapping[name]`` ignoring the case of the key; None when absent or not a mapping.
    Only the matching key is read, so lazy mappings load nothing else."""
    return get_ci(mapping, name) if isinstance(mapping, Mapping) else None


def _container(resource: Mapping[str, Any], path: AttrPath) -> Any:
    return resource if path.container is None else _lookup(resource, path.container)


def _candidates(raw: Any, sub_name: str | None) -> list[Any]:
    """The values a comparison looks at: each element's ``value`` (or ``sub_name``)."""
    items = raw if isinstance(raw, list) else [raw]
    found: list[Any] = []
    for item in items:
        if sub_name is None:
            found.append(_lookup(item, "value") if isinstance(item, Mapping) else item)
        elif isinstance(item, Mapping):
            value = _lookup(item, sub_name)
            found.extend(value if isinstance(value, list) else [value])
    return found


def _definition(path: AttrPath) -> Attribute | None:
    """The attribute whose type and caseExact govern a comparison on ``path``."""
    if path.sub_name is not None:
        return path.sub
    attribute = path.attribute
    if attribute is not None and attribute.type == COMPLEX:
        return attribute.sub("value")
    return attribute


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return any(_present(item) for item in value)
    if isinstance(value, Mapping):
        return any(_present(item) for item in value.values())
    return True


# -- static checks ---------------------------------------------------------------------------


def _check_resource_term(term: Compare | ValuePath, registry: Registry,
                         rt: ResourceType) -> None:
    path = _resolve(registry, rt, term.path)
    where = term.path[:100]
    if path.is_extension_root:
        if isinstance(term, Compare) and term.op == "pr":
            return
        raise InvalidFilter(f"'{where}' names a schema extension; only 'pr' applies to it.")
    attribute = path.attribute
    if path.sub_name is not None and attribute is not None and attribute.type != COMPLEX:
        raise InvalidFilter(f"'{where}': {attribute.name} has no sub-attributes.")
    if isinstance(term, ValuePath):
        for inner in _terms(term.filter):
            _check_element_term(inner, path.leaf)
        return
    # A complex attribute without a ``value`` sub-attribute (``name``) cannot be compared.
    whole = attribute if path.sub_name is None else None
    _checkcompare(term.op, term.value, _definition(path) or whole, where)


def _check_element_term(term: Compare | ValuePath, attribute: Attribute | None) -> None:
    if isinstance(term, ValuePath):
        raise InvalidFilter("Value filters cannot be nested.")
    definition = _element_definition(term.path, attribute)
    _checkcompare(term.op, term.value, definition, term.path[:100])


def _element_definition(name: str, attribute: Attribute | None) -> Attribute | None:
    if attribute is None:
        return None
    if attribute.type != COMPLEX:
        return attribute if name.lower() == "value" else None
    return attribute.sub(name)


def _checkcompare(op: str, literal: Value, definition: Attribute | None, where: str) -> None:
    problem = type_problem(op, literal, definition.type if definition is not None else None)
    if problem is not None:
        raise InvalidFilter(f"'{where} {op}': {problem}.")


# -- evaluation ------------------------------------------------------------------------------


def _resource_test(term: Compare | ValuePath, resource: Mapping[str, Any],
                   resolve: Callable[[str], AttrPath], is_member: Callable[[str], bool] | None,
                   budget: WorkBudget | None) -> bool:
    if budget is not None:
        budget.spend(1)
    path = resolve(term.path)
    container = _container(resource, path)
    if path.is_extension_root:
        return _present(container)
    if isinstance(term, ValuePath):
        inner = term.filter
        if (is_member is not None and isinstance(inner, Compare) and path.sub_name is None
                and _asks_member(path, inner.op, inner.value, inner.path)):
            return bool(is_member(text(inner.value)))
        raw = _lookup(container, path.name)
        elements = _candidates(raw, path.sub_name) if path.sub_name else (
            raw if isinstance(raw, list) else [raw])
        if budget is not None:
            budget.spend(len(elements) * term_count(inner))
        return any(_element_evaluate(inner, element, path.leaf)
                   for element in elements if element is not None)
    if is_member is not None and _asks_member(path, term.op, term.value, path.sub_name):
        return bool(is_member(text(term.value)))
    raw = _lookup(container, path.name)
    candidates = _candidates(raw, path.sub_name)
    if budget is not None and len(candidates) > 1:
        budget.spend(len(candidates) - 1)
    if term.op == "pr":
        return _present(raw if path.sub_name is None else candidates)
    return _holds(term.op, term.value, candidates, _definition(path))


def _asks_member(path: AttrPath, op: str, literal: Value, value_name: str | None) -> bool:
    """An ``eq`` on a group member's ``value``, answerable by the ``is_member`` callback."""
    return (path.container is None and path.attribute is not None
            and path.attribute.name == "members" and op == "eq"
            and literal is not None and not isinstance(literal, bool)
            and (value_name is None or value_name.lower() == "value"))


def _element_evaluate(expr: Expr, element: Any, attribute: Attribute | None) -> bool:
    return _evaluate(expr, lambda term: _element_test(term, element, attribute))


def _element_test(term: Compare | ValuePath, element: Any, attribute: Attribute | None) -> bool:
    if isinstance(term, ValuePath):
        raise InvalidFilter("Value filters cannot be nested.")
    definition = _element_definition(term.path, attribute)
    if isinstance(element, Mapping):
        raw = _lookup(element, term.path)
    else:
        raw = element if term.path.lower() == "value" else None
    if term.op == "pr":
        return _present(raw)
    return _holds(term.op, term.value, raw if isinstance(raw, list) else [raw], definition)


def _holds(op: str, literal: Value, candidates: list[Any], definition: Attribute | None) -> bool:
    present = [value for value in candidates if _present(value)]
    if literal is None:
        return not present if op == "eq" else bool(present)
    if op == "ne":
        return not present or any(not equal(literal, value, definition) for value in present)
    return any(compare(op, literal, value, definition) for value in present)


