"""SCIM filters and PATCH paths: parsing (RFC 7644 §3.4.2.2, §3.5.2) and evaluation."""

from scim_core.filter.ast import (
    COMPARISON_OPERATORS,
    And,
    Compare,
    Expr,
    Not,
    Or,
    PatchPath,
    Value,
    ValuePath,
)
from scim_core.filter.compare import sort_key
from scim_core.filter.evaluate import (
    check_filter,
    element_matches,
    matches,
    values_at,
)
from scim_core.filter.parser import parse_filter, parse_path

__all__ = [
    "COMPARISON_OPERATORS",
    "And",
    "Compare",
    "Expr",
    "Not",
    "Or",
    "PatchPath",
    "Value",
    "ValuePath",
    "check_filter",
    "element_matches",
    "matches",
    "parse_filter",
    "parse_path",
    "sort_key",
    "values_at",
]
