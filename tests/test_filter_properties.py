"""Property tests: the parser and evaluator never fail except as SCIM 400s, and round-trip."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scim_core.errors import InvalidFilter, InvalidPath
from scim_core.filter import (
    And,
    Compare,
    Expr,
    Not,
    Or,
    PatchPath,
    ValuePath,
    element_matches,
    matches,
    parse_filter,
    parse_path,
    sort_key,
    values_at,
)
from scim_core.schema import Registry, ResourceType

REGISTRY = Registry.default()


def resource_type(name: str) -> ResourceType:
    found = REGISTRY.resource_type(name)
    assert found is not None
    return found


USER_TYPE = resource_type("User")
GROUP_TYPE = resource_type("Group")
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
FAST = settings(max_examples=200, deadline=None, database=None)

# -- generators ------------------------------------------------------------------------------

FILTER_ALPHABET = ' ()[]".:\\$-_aeEnoqrtswcplgdmuv019AZ\u00e9\x00\t'
TOKENS = ["(", ")", "[", "]", '"x"', '"', "and", "or", "not", "not(", "eq", "ne", "co", "pr",
          "gt", "userName", "emails", ".value", "emails[type", "true", "null", "1.5e3", "-",
          "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "jyoung", "]."]

NAMES = st.from_regex(r"[A-Za-z$][A-Za-z0-9_$\-]{0,8}", fullmatch=True).filter(
    lambda n: n.lower() not in {"and", "or", "not", "pr", "eq", "ne", "co", "sw", "ew", "gt",
                                "ge", "lt", "le", "true", "false", "null"})
PATHS = st.one_of(
    NAMES,
    st.builds(lambda a, b: f"{a}.{b}", NAMES, NAMES),
    st.builds(lambda a: f"{ENTERPRISE}:{a}", NAMES),
    st.builds(lambda a, b: f"urn:example:custom:1.0:{a}:{b}", NAMES, NAMES),
)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
)
OPERATORS = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])


def compares(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Compare]:
    return st.one_of(
        st.builds(lambda p: Compare(p, "pr"), paths),
        st.builds(Compare, paths, OPERATORS, VALUES),
    )


def logical(leaves: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner),
    ), max_leaves=8)


ELEMENT_FILTERS = logical(compares(NAMES))
FILTERS = logical(st.one_of(compares(PATHS), st.builds(ValuePath, NAMES, ELEMENT_FILTERS)))


def render(expr: Expr) -> str:
    """Filter text for ``expr`` that parses back to the same tree."""
    if isinstance(expr, Compare):
        if expr.op == "pr":
            return f"{expr.path} pr"
        return f"{expr.path} {expr.op} {json.dumps(expr.value)}"
    if isinstance(expr, ValuePath):
        return f"{expr.path}[{render(expr.filter)}]"
    if isinstance(expr, Not):
        return f"not ({render(expr.expr)})"
    if isinstance(expr, And):
        left = render(expr.left)
        right = render(expr.right)
        return (f"({left})" if isinstance(expr.left, Or) else left) + " and " + (
            f"({right})" if isinstance(expr.right, And | Or) else right)
    left, right = render(expr.left), render(expr.right)
    return left + " or " + (f"({right})" if isinstance(expr.right, Or) else right)


# -- parser properties -----------------------------------------------------------------------


@FAST
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_invalid_filter(text: str) -> None:
    """No string makes parse_filter raise anything but InvalidFilter."""
    with contextlib.suppress(InvalidFilter):
        parse_filter(text)


@FAST
@given(st.text(alphabet=FILTER_ALPHABET, max_size=120))
def test_filter_like_text_parses_or_raises_invalid_filter(text: str) -> None:
    """Text built from the grammar's own characters reaches deep parser states safely."""
    with contextlib.suppress(InvalidFilter):
        parse_filter(text, max_depth=5)


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.sampled_from([" ", "", "  "]))
def test_token_soup_parses_or_raises_invalid_filter(tokens: list[str], glue: str) -> None:
    """Random sequences of real tokens never escape as another exception."""
    with contextlib.suppress(InvalidFilter):
        parse_filter(glue.join(tokens))


@FAST
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(TOKENS), max_size=15).map(
    "".join)))
def test_any_text_parses_as_path_or_raises_invalid_path(text: str) -> None:
    """No string makes parse_path raise anything but InvalidPath."""
    try:
        result = parse_path(text)
    except InvalidPath:
        return
    assert isinstance(result, PatchPath)


@FAST
@given(FILTERS)
def test_rendered_filters_parse_back_to_the_same_tree(expr: Expr) -> None:
    """parse_filter(render(tree)) == tree for every tree the grammar can express."""
    assert parse_filter(render(expr), max_length=100_000) == expr


@FAST
@given(st.one_of(NAMES, PATHS), st.one_of(st.none(), ELEMENT_FILTERS), st.one_of(st.none(),
                                                                                 NAMES))
def test_rendered_patch_paths_parse_back(attribute: str, inner: Expr | None,
                                         sub: str | None) -> None:
    """parse_path round-trips ``attr``, ``attr[f]`` and ``attr[f].sub``."""
    if inner is None:
        assert parse_path(attribute) == PatchPath(attribute)
        return
    text = f"{attribute}[{render(inner)}]" + (f".{sub}" if sub else "")
    assert parse_path(text, max_length=100_000) == PatchPath(attribute, inner, sub)


# -- evaluator properties --------------------------------------------------------------------

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=8), st.sampled_from(["2026-03-02T09:14:07Z", "True", "work"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["value", "type", "primary",
                                                             "display", "Value", "x"]),
                                            inner, max_size=4)),
    max_leaves=6,
)
REAL_PATHS = st.sampled_from([
    "id", "externalId", "userName", "userName", "displayName", "active", "title", "emails",
    "emails.value", "emails.type", "emails.primary", "name", "name.givenName", "meta.created",
    "meta.lastModified", "manager", "manager.value", f"{ENTERPRISE}:manager", "members",
    "members.value", "unknownThing", "schemas", ENTERPRISE,
])
REAL_FILTERS = logical(st.one_of(
    compares(REAL_PATHS),
    st.builds(ValuePath, st.sampled_from(["emails", "members", "manager", "addresses", "x"]),
              logical(compares(st.sampled_from(["value", "type", "primary", "display"])))),
))
RESOURCES = st.dictionaries(
    st.sampled_from(["id", "externalId", "userName", "UserName", "displayName", "active",
                     "title", "emails", "name", "meta", "members", "unknownThing", "schemas",
                     ENTERPRISE]),
    JSON, max_size=6,
)


@FAST
@given(REAL_FILTERS, RESOURCES, st.booleans())
def test_random_resources_never_crash_the_evaluator(expr: Expr, resource: dict[str, Any],
                                                    with_callback: bool) -> None:
    """matches returns a bool or raises InvalidFilter, whatever the data and filter."""
    for rt in (USER_TYPE, GROUP_TYPE):
        try:
            result = matches(expr, resource, REGISTRY, rt,
                             is_member=(lambda _: True) if with_callback else None)
        except InvalidFilter:
            continue
        assert isinstance(result, bool)


@FAST
@given(logical(compares(st.sampled_from(["value", "type", "primary", "display", "VALUE"]))),
       JSON, st.sampled_from(["emails", "members", "manager", "displayName", None]))
def test_random_elements_never_crash_element_matches(expr: Expr, element: Any,
                                                     name: str | None) -> None:
    """element_matches returns a bool or raises InvalidFilter for any element."""
    rt = GROUP_TYPE if name == "members" else USER_TYPE
    attribute = None
    if name is not None:
        attribute = REGISTRY.resolve(rt, name).attribute
    with contextlib.suppress(InvalidFilter):
        assert isinstance(element_matches(expr, element, attribute), bool)


@FAST
@given(st.lists(RESOURCES, max_size=4), REAL_PATHS)
def test_sorting_by_any_path_never_raises(resources: list[dict[str, Any]], path: str) -> None:
    """values_at plus sort_key give a total order over arbitrary resources."""
    def key(resource: dict[str, Any]) -> tuple[Any, ...]:
        values = values_at(resource, REGISTRY, USER_TYPE, path)
        return sort_key(values[0] if values else None)

    ordered = sorted(resources, key=key)
    assert len(ordered) == len(resources)
