"""The parsed form of a Bicep file, as pycep gives it, and a few ways to walk it.

pycep turns a file into nested dicts and lists. Object literals stay dicts, array literals
lists; an expression becomes ``{"operator": {"type": ..., "operands": {...}}}`` or
``{"function": {"type": ..., "parameters": {...}}}``; a for-expression becomes
``{"loop_type": ..., "condition": ..., "config": <one element>}`` and a conditional resource
``{"condition": ..., "config": <body>}``. It keeps no difference between the string literal
``'x'`` and the identifier ``x``, so a string is read as a variable reference when a variable
of that name exists in the same file, and as opaque otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Functions whose result is one of their arguments, merged: what holds for the result holds
# for each argument. Any other function's result is not followed.
PASS_THROUGH_FUNCTIONS = {"union", "concat", "first", "last", "intersection", "take", "skip"}
ACCESSORS = {"property_accessor", "index_accessor"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)")


@dataclass
class Resource:
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.symbol} ({self.type}@{self.api_version})"


@dataclass
class Module:
    symbol: str
    path: str
    body: dict[str, Any]


@dataclass
class Template:
    path: Path
    rel: str
    doc: dict[str, Any]
    resources: dict[str, Resource] = field(default_factory=dict)
    modules: dict[str, Module] = field(default_factory=dict)

    @classmethod
    def from_parsed(cls, path: Path, rel: str, doc: dict[str, Any]) -> Template:
        template = cls(path=path, rel=rel, doc=doc)
        for symbol, raw in (doc.get("resources") or {}).items():
            template.resources[symbol] = Resource(
                symbol=symbol,
                type=str(raw.get("type", "")),
                api_version=str(raw.get("api_version", "")),
                existing=bool(raw.get("existing")),
                body=unwrap(raw.get("config")),
            )
        for symbol, raw in (doc.get("modules") or {}).items():
            detail = raw.get("detail") or {}
            template.modules[symbol] = Module(
                symbol=symbol,
                path=str(detail.get("path") or detail.get("full") or ""),
                body=unwrap(raw.get("config")),
            )
        return template

    @property
    def variables(self) -> dict[str, Any]:
        return {name: v.get("value") for name, v in (self.doc.get("variables") or {}).items()}

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.doc.get("parameters") or {})

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.doc.get("outputs") or {})

    def variable(self, value: Any) -> Any | None:
        """The value of the variable `value` names, or None when it names none."""
        if isinstance(value, str) and IDENTIFIER.fullmatch(value):
            variables = self.doc.get("variables") or {}
            if value in variables:
                return variables[value].get("value")
        return None


def unwrap(body: Any) -> dict[str, Any]:
    """The body of a resource or module, without its `if (...)` or `[for ...]` wrapper."""
    while (
        isinstance(body, dict)
        and "config" in body
        and set(body)
        <= {
            "loop_type",
            "condition",
            "config",
        }
    ):
        body = body["config"]
    return body if isinstance(body, dict) else {}


def key_name(key: str) -> str:
    """An object key as Bicep means it: 'quoted-key' without its quotes."""
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1]
    return key


def operator(value: Any) -> tuple[str, dict[str, Any]] | None:
    if (
        isinstance(value, dict)
        and set(value) == {"operator"}
        and isinstance(value["operator"], dict)
    ):
        op = value["operator"]
        return str(op.get("type")), dict(op.get("operands") or {})
    return None


def function(value: Any) -> tuple[str, dict[str, Any]] | None:
    if (
        isinstance(value, dict)
        and set(value) == {"function"}
        and isinstance(value["function"], dict)
    ):
        fn = value["function"]
        return str(fn.get("type")), dict(fn.get("parameters") or {})
    return None


def loop_element(value: Any) -> tuple[bool, Any]:
    """(True, element) when value is a for-expression, whose every element is `element`."""
    if isinstance(value, dict) and "loop_type" in value and "config" in value:
        return True, value["config"]
    return False, None


def alternatives(
    value: Any, template: Template, seen: frozenset[str] = frozenset()
) -> Iterator[Any]:
    """Every literal (object, array, scalar) that `value` can evaluate to, as far as it is known.

    Variables are followed, both branches of `?:` are taken, operands of other operators and
    the arguments of merging functions (union, concat, ...) are each taken as candidates.
    Accessors (`a.b`, `a[0]`), parameters and other functions yield nothing.
    """
    var = template.variable(value)
    if var is not None and isinstance(value, str):
        if value not in seen:
            yield from alternatives(var, template, seen | {value})
        return
    op = operator(value)
    if op is not None:
        kind, operands = op
        if kind in ACCESSORS:
            return
        if kind == "conditional":
            for branch in ("true_value", "false_value"):
                yield from alternatives(operands.get(branch), template, seen)
            return
        for operand in operands.values():
            if isinstance(operand, (dict, list)) or template.variable(operand) is not None:
                yield from alternatives(operand, template, seen)
        return
    fn = function(value)
    if fn is not None:
        name, args = fn
        if name in PASS_THROUGH_FUNCTIONS:
            for arg in args.values():
                yield from alternatives(arg, template, seen)
        return
    yield value


def objects(value: Any, template: Template) -> Iterator[dict[str, Any]]:
    """Every object literal `value` can evaluate to (see `alternatives`)."""
    for alt in alternatives(value, template):
        if isinstance(alt, dict) and not loop_element(alt)[0]:
            yield alt


def elements(value: Any, template: Template) -> Iterator[Any]:
    """Every element of every array literal or for-expression `value` can evaluate to."""
    for alt in alternatives(value, template):
        is_loop, element = loop_element(alt)
        if is_loop:
            yield element
        elif isinstance(alt, list):
            yield from alt


def accessor_chains(value: Any) -> Iterator[list[str]]:
    """Every `a.b.c` chain in value (including inside '${...}' interpolations), as [a, b, c]."""
    if isinstance(value, str):
        for inner in INTERPOLATION.findall(value):
            for match in DOTTED.finditer(inner):
                yield [match.group(1), *match.group(2)[1:].split(".")]
        return
    op = operator(value)
    if op is not None and op[0] == "property_accessor":
        chain = _flatten(value)
        if chain is not None:
            yield chain
            return
    if isinstance(value, dict):
        for item in value.values():
            yield from accessor_chains(item)
    elif isinstance(value, list):
        for item in value:
            yield from accessor_chains(item)


def _flatten(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value] if IDENTIFIER.fullmatch(value) else None
    op = operator(value)
    if op is None or op[0] != "property_accessor":
        return None
    left = op[1].get("operand_1")
    right = _flatten(op[1].get("operand_2"))
    if not isinstance(left, str) or right is None:
        return None
    return [left, *right]
