"""The SCIM filter syntax tree (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2), paths kept as
written for the registry to resolve (docs/architecture.md, "Validation, filters and PATCH")."""

from __future__ import annotations

from dataclasses import dataclass

Value = str | int | float | bool | None

COMPARISON_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


@dataclass(frozen=True)
class Compare:
    """``path op value``; ``op`` is lower-case; ``pr`` has ``value`` None."""

    path: str
    op: str
    value: Value = None


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    expr: Expr


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: some element of the multi-valued ``attr`` matches ``filter``, whose
    paths are relative to the element. Entra's ``emails[type eq "work"].value eq "x"`` is
    parsed as ``emails[type eq "work" and value eq "x"]``."""

    path: str
    filter: Expr


Expr = Compare | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH ``path``: ``attr``, ``attr.sub``, ``attr[filter]`` or ``attr[filter].sub``,
    where ``attr`` may be URN-qualified."""

    attribute: str
    filter: Expr | None = None
    sub: str | None = None
