"""Tests for the SCIM filter and PATCH-path parser (RFC 7644 §3.4.2.2, §3.5.2)."""

from __future__ import annotations

import contextlib
import time

import pytest

from scim_core.errors import InvalidFilter, InvalidPath
from scim_core.filter import (
    And,
    Compare,
    Not,
    Or,
    PatchPath,
    ValuePath,
    parse_filter,
    parse_path,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
A, B, C = Compare("a", "pr"), Compare("b", "pr"), Compare("c", "pr")

# Every filter the Entra behaviour reference (§3.2, §3.5, §4.1, §4.7) shows, and its tree.
SPEC_FILTERS = [
    ('userName eq "anna.lindqvist@contoso.example"',
     Compare("userName", "eq", "anna.lindqvist@contoso.example")),
    ('externalId eq "a.lindqvist"', Compare("externalId", "eq", "a.lindqvist")),
    ("externalId eq jyoung", Compare("externalId", "eq", "jyoung")),
    ('emails[type eq "work"].value eq "anna.lindqvist@contoso.example"',
     ValuePath("emails", And(Compare("type", "eq", "work"),
                             Compare("value", "eq", "anna.lindqvist@contoso.example")))),
    ('id eq "7d3f" and manager eq "2c2f"',
     And(Compare("id", "eq", "7d3f"), Compare("manager", "eq", "2c2f"))),
    ('manager.value eq "2c2f"', Compare("manager.value", "eq", "2c2f")),
    (f'{ENTERPRISE}:manager eq "2c2f"', Compare(f"{ENTERPRISE}:manager", "eq", "2c2f")),
    (f'{ENTERPRISE}:manager.value eq "2c2f"',
     Compare(f"{ENTERPRISE}:manager.value", "eq", "2c2f")),
    ('displayName eq "Facilities Team"', Compare("displayName", "eq", "Facilities Team")),
    ('id eq "3b9e" and members[value eq "7d3f"]',
     And(Compare("id", "eq", "3b9e"), ValuePath("members", Compare("value", "eq", "7d3f")))),
    ('id eq "3b9e" and members eq "7d3f"',
     And(Compare("id", "eq", "3b9e"), Compare("members", "eq", "7d3f"))),
    ('members.value eq "7d3f"', Compare("members.value", "eq", "7d3f")),
    ("active eq true", Compare("active", "eq", True)),
    ('meta.lastModified gt "2011-05-13T04:42:34Z"',
     Compare("meta.lastModified", "gt", "2011-05-13T04:42:34Z")),
    ("title pr", Compare("title", "pr")),
    ('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
     And(Compare("userType", "eq", "Employee"),
         Or(Compare("emails", "co", "example.com"), Compare("emails.value", "co", "example.org")))),
    ('userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
     And(Compare("userType", "ne", "Employee"),
         Not(Or(Compare("emails", "co", "example.com"),
                Compare("emails.value", "co", "example.org"))))),
    ('emails[type eq "work" and value co "@example.com"] or '
     'ims[type eq "xmpp" and value co "@foo.com"]',
     Or(ValuePath("emails", And(Compare("type", "eq", "work"),
                                Compare("value", "co", "@example.com"))),
        ValuePath("ims", And(Compare("type", "eq", "xmpp"), Compare("value", "co", "@foo.com"))))),
    (f'{CORE_USER}:userName eq "x"', Compare(f"{CORE_USER}:userName", "eq", "x")),
]


@pytest.mark.parametrize(("text", "expected"), SPEC_FILTERS)
def test_spec_filters_parse_to_expected_tree(text: str, expected: object) -> None:
    """Every filter from the Entra behaviour reference parses to the intended tree."""
    assert parse_filter(text) == expected


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_binary_operator_is_recognised(op: str) -> None:
    """All nine binary comparison operators parse, and are stored lower-case."""
    assert parse_filter(f'title {op.upper()} "x"') == Compare("title", op, "x")


def test_pr_is_a_postfix_operator() -> None:
    """``pr`` takes no value and stores None."""
    assert parse_filter("title PR") == Compare("title", "pr", None)


def test_keywords_and_operators_are_case_insensitive() -> None:
    """``EQ``, ``And``, ``OR``, ``NOT`` work like their lower-case forms."""
    parsed = parse_filter('userName EQ "x" And NOT (title Pr) OR active Eq TRUE')
    assert parsed == Or(And(Compare("userName", "eq", "x"), Not(Compare("title", "pr"))),
                        Compare("active", "eq", True))


def test_and_binds_tighter_than_or() -> None:
    """``a or b and c`` is ``a or (b and c)`` and ``a and b or c`` is ``(a and b) or c``."""
    assert parse_filter("a pr or b pr and c pr") == Or(A, And(B, C))
    assert parse_filter("a pr and b pr or c pr") == Or(And(A, B), C)


def test_and_and_or_are_left_associative() -> None:
    """Chains of the same operator group from the left."""
    assert parse_filter("a pr and b pr and c pr") == And(And(A, B), C)
    assert parse_filter("a pr or b pr or c pr") == Or(Or(A, B), C)


def test_parentheses_override_precedence() -> None:
    """Grouping changes the tree and leaves no node of its own."""
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(A, B), C)
    assert parse_filter("a pr and (b pr and c pr)") == And(A, And(B, C))
    assert parse_filter("((a pr))") == A
    assert parse_filter("( a pr )") == A


def test_not_binds_tighter_than_and() -> None:
    """``not (a) and b`` negates only ``a``; ``not(`` needs no space."""
    assert parse_filter("not (a pr) and b pr") == And(Not(A), B)
    assert parse_filter("not(a pr)") == Not(A)
    assert parse_filter("not (not (a pr))") == Not(Not(A))


def test_value_path_alone_and_with_sub_attribute_comparison() -> None:
    """``attr[f]`` is a ValuePath; ``attr[f].sub op v`` folds the comparison into it."""
    assert parse_filter('members[value eq "x"]') == ValuePath("members",
                                                                Compare("value", "eq", "x"))
    assert parse_filter('emails[type eq "work"].value pr') == ValuePath(
        "emails", And(Compare("type", "eq", "work"), Compare("value", "pr")))
    assert parse_filter('emails[type eq "a" or type eq "b"].value eq "x"') == ValuePath(
        "emails", And(Or(Compare("type", "eq", "a"), Compare("type", "eq", "b")),
                      Compare("value", "eq", "x")))


def test_value_path_inside_groups_and_not() -> None:
    """Value paths combine with grouping and negation like any other term."""
    assert parse_filter('not (emails[type eq "work"])') == Not(
        ValuePath("emails", Compare("type", "eq", "work")))
    assert parse_filter('emails[not (type eq "work")]') == ValuePath(
        "emails", Not(Compare("type", "eq", "work")))


@pytest.mark.parametrize("path", [
    "name.givenName", "meta.lastModified", "members.$ref", "$ref", "x509Certificates",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager",
    "urn:example:custom:1.0:Thing:a-b_c", "employee-number",
])
def test_attribute_paths_are_kept_whole_as_written(path: str) -> None:
    """Dots and colons (``2.0``) stay inside one path token; nothing is normalised."""
    assert parse_filter(f"{path} pr") == Compare(path, "pr")


@pytest.mark.parametrize(("literal", "value"), [
    (r'"a\"b"', 'a"b'), (r'"a\\b"', "a\\b"), (r'"caf\u00e9"', "café"), (r'"a\/b"', "a/b"),
    (r'"tab\tnew\n"', "tab\tnew\n"), ('""', ""), ('"with  spaces ( ) [ ]"', "with  spaces ( ) [ ]"),
    ("true", True), ("FALSE", False), ("Null", None), ("0", 0), ("-12", -12), ("3.25", 3.25),
    ("-1.5e3", -1500.0), ("2E-2", 0.02), ("1e+2", 100.0),
    ("jyoung", "jyoung"), ("jyoung@contoso.com", "jyoung@contoso.com"), ("00123", "00123"),
    ("+1", "+1"), ("1.", "1."), ("truex", "truex"), ('jy"oung', 'jy"oung'), ("é", "é"),
])
def test_value_literals(literal: str, value: object) -> None:
    """JSON strings with escapes, true/false/null in any case, JSON numbers, bare tokens."""
    parsed = parse_filter(f"x eq {literal}")
    assert isinstance(parsed, Compare)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


def test_bare_token_stops_at_closing_bracket_and_parenthesis() -> None:
    """A bare token ends at ``)`` or ``]`` so it can sit inside groups and value paths."""
    assert parse_filter("(externalId eq jyoung)") == Compare("externalId", "eq", "jyoung")
    assert parse_filter("emails[type eq work]") == ValuePath("emails",
                                                              Compare("type", "eq", "work"))


def test_multiple_spaces_between_tokens_are_accepted() -> None:
    """Runs of spaces are as good as one."""
    assert parse_filter('  userName   eq   "x"   and  title  pr  ') == And(
        Compare("userName", "eq", "x"), Compare("title", "pr"))


BAD_FILTERS = [
    "", "   ", "userName", "userName eq", 'userName "x"', 'userName eq "x', "userName xx 1",
    'userName eq "x" and', 'userName eq "x" or', 'and userName eq "x"', '(userName eq "x"',
    'userName eq "x")', "()", "a pr b pr", 'userName eq"x"', 'userName eq "x"and b pr',
    "not a pr", "not", "a[b pr", "a[b[c pr]]", "a[]", 'a[type eq "x"] eq 1', "a[b pr].",
    "a[b pr].c", "a[b pr].c.d eq 1", "a[b.c pr]", "[b pr]", '"x" eq a', "a..b pr", ".a pr",
    "a. pr", "a.b.c pr", "foo:bar pr", "urn: pr", "urn::x pr", "a eq and", "a eq pr",
    "a eq (b)", "a eq [b]", r'a eq "\x"', r'a eq "\u12"', r'a eq "\ud800"', "a eq 1e999",
    "a eq -1e400", "1a pr", "é pr", "a eq 1 2", "a pr)", "a pr]", "a eq x]", "a pr and ()",
    "not ()", "a pr or or b pr", "a.$ pr b", "a\x00 pr", "a\tpr", "a pr\n", "a eq \"\x7f\"",
]


@pytest.mark.parametrize("text", BAD_FILTERS)
def test_unparsable_filters_raise_invalid_filter(text: str) -> None:
    """Anything outside the grammar is a 400 invalidFilter, never an unfiltered result."""
    with pytest.raises(InvalidFilter):
        parse_filter(text)


def test_error_detail_names_the_position() -> None:
    """The detail says where parsing stopped and what was expected there."""
    with pytest.raises(InvalidFilter) as caught:
        parse_filter('userName eq "x" nd title pr')
    assert "position 17" in caught.value.detail
    assert "'and', 'or'" in caught.value.detail


def test_error_detail_never_echoes_much_input() -> None:
    """A hostile filter is not reflected back: no 100-character run of it appears."""
    text = "a" * 3000 + " eq " + "b" * 1000 + ")"
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(text)
    detail = caught.value.detail
    assert len(detail) < 300
    assert "a" * 100 not in detail and "b" * 100 not in detail


def test_filter_longer_than_max_length_is_rejected() -> None:
    """The length limit applies before any parsing, and can be configured."""
    with pytest.raises(InvalidFilter, match="longer than 4096"):
        parse_filter('userName eq "' + "x" * 4100 + '"')
    with pytest.raises(InvalidFilter):
        parse_filter('userName eq "xxxxxxxx"', max_length=10)
    assert parse_filter("a pr", max_length=4) == A


def test_nesting_depth_limit_counts_parentheses_and_not() -> None:
    """``max_depth`` levels are fine, one more is an InvalidFilter."""
    assert parse_filter("(" * 50 + "a pr" + ")" * 50) == A
    with pytest.raises(InvalidFilter, match="deeper than 50"):
        parse_filter("(" * 51 + "a pr" + ")" * 51)
    with pytest.raises(InvalidFilter, match="deeper than 3"):
        parse_filter("not (not (not (not (a pr))))", max_depth=3)
    assert parse_filter("not ((a pr))", max_depth=3) == Not(A)


def test_hostile_nesting_fails_fast_without_recursion() -> None:
    """Huge nesting cannot blow the stack, whatever the configured limits."""
    start = time.perf_counter()
    for text in ("(" * 200_000, "not (" * 50_000, "(" * 100_000 + "a pr" + ")" * 99_999):
        with pytest.raises(InvalidFilter):
            parse_filter(text, max_length=10**6, max_depth=10**6)
    deep = "not (" * 100_000 + "a pr" + ")" * 100_000
    assert isinstance(parse_filter(deep, max_length=10**6, max_depth=10**6), Not)
    assert time.perf_counter() - start < 5


def test_long_and_chains_parse_iteratively_in_linear_time() -> None:
    """Thousands of terms neither recurse nor slow down quadratically."""
    text = " and ".join(["a pr"] * 20_000)
    start = time.perf_counter()
    parsed = parse_filter(text, max_length=len(text), max_terms=20_000)
    assert time.perf_counter() - start < 5
    depth = 0
    while isinstance(parsed, And):
        parsed, depth = parsed.left, depth + 1
    assert depth == 19_999


@pytest.mark.parametrize("text", [
    '"' + "x" * 100_000, "urn:" + ":a" * 50_000 + " pr", "a eq " + "\\" * 100_000,
    "a[" * 50_000, '"\\' * 50_000, "a eq " + "9" * 100_000, 'a eq "' + '\\"' * 50_000,
])
def test_pathological_inputs_are_rejected_quickly(text: str) -> None:
    """Unterminated strings, colon-heavy paths and digit runs cost linear time at most."""
    start = time.perf_counter()
    with contextlib.suppress(InvalidFilter):
        parse_filter(text, max_length=10**6)
    assert time.perf_counter() - start < 2


def test_non_string_input_raises_invalid_filter() -> None:
    """A caller passing None or bytes gets the same 400, not a TypeError."""
    with pytest.raises(InvalidFilter):
        parse_filter(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidPath):
        parse_path(b"userName")  # type: ignore[arg-type]


# -- PATCH paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("userName", PatchPath("userName")),
    ("name.givenName", PatchPath("name.givenName")),
    ('emails[type eq "work"].value',
     PatchPath("emails", Compare("type", "eq", "work"), "value")),
    ('emails[type eq "work"].primary',
     PatchPath("emails", Compare("type", "eq", "work"), "primary")),
    ('members[value eq "2819c223"]', PatchPath("members", Compare("value", "eq", "2819c223"))),
    (f"{ENTERPRISE}:manager", PatchPath(f"{ENTERPRISE}:manager")),
    (f"{ENTERPRISE}:manager.value", PatchPath(f"{ENTERPRISE}:manager.value")),
    (f"{ENTERPRISE}:employeeNumber", PatchPath(f"{ENTERPRISE}:employeeNumber")),
    (ENTERPRISE, PatchPath(ENTERPRISE)),
    ('manager[value eq "x"]', PatchPath("manager", Compare("value", "eq", "x"))),
    ('addresses[type eq "work"].formatted',
     PatchPath("addresses", Compare("type", "eq", "work"), "formatted")),
    ('Emails[Type EQ "work" and Primary eq TRUE].Value',
     PatchPath("Emails", And(Compare("Type", "eq", "work"), Compare("Primary", "eq", True)),
               "Value")),
    (' userName ', PatchPath("userName")),
    ('members[ value eq "a b" ]', PatchPath("members", Compare("value", "eq", "a b"))),
])
def test_patch_paths(text: str, expected: PatchPath) -> None:
    """RFC 7644 §3.5.2 paths: attribute as written, bracket filter, sub after ``].``."""
    assert parse_path(text) == expected


@pytest.mark.parametrize("text", [
    "", " ", 'emails[type eq "work"]value', 'emails[type eq "work"].', 'emails[type eq "work"',
    "emails[]", 'emails[type eq "work"].value.x', "a b", "name..x", "emails[a[b pr]]",
    "emails[type eq]", "user\x00Name", "a.b.c", 'emails [type eq "work"]', "(userName)",
    'userName eq "x"', 'emails[type eq "work"].value eq "x"', "[value pr]", "a]", "a)",
    "emails[b.c pr]", "1abc", "emails[x pr]]",
])
def test_bad_patch_paths_raise_invalid_path(text: str) -> None:
    """Anything outside ``attrPath / valuePath [subAttr]`` is a 400 invalidPath."""
    with pytest.raises(InvalidPath):
        parse_path(text)


def test_patch_path_errors_are_invalid_path_even_inside_the_filter() -> None:
    """A bad bracket filter in a PATCH path reports invalidPath, not invalidFilter."""
    with pytest.raises(InvalidPath) as caught:
        parse_path('emails[type eq "work].value')
    assert not isinstance(caught.value, InvalidFilter)
    assert "position" in caught.value.detail
