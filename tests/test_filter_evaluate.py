"""Tests for filter evaluation, element matching, sortBy values and referenced paths."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from scim_core.errors import InvalidFilter
from scim_core.filter import (
    Compare,
    ValuePath,
    check_filter,
    element_matches,
    matches,
    parse_filter,
    sort_key,
    values_at,
)
from scim_core.schema import Registry, ResourceType

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:example:params:scim:schemas:extension:custom:1.0:User"
REGISTRY = Registry.default(json.dumps([{
    "id": CUSTOM, "name": "Custom", "resourceType": "User",
    "attributes": [
        {"name": "level", "type": "integer"},
        {"name": "score", "type": "decimal"},
        {"name": "badge", "type": "binary"},
        {"name": "verified", "type": "boolean"},
        {"name": "code", "type": "string", "caseExact": True},
    ],
}]))


def resource_type(name: str) -> ResourceType:
    found = REGISTRY.resource_type(name)
    assert found is not None
    return found


USER_TYPE = resource_type("User")
GROUP_TYPE = resource_type("Group")
USER_ID = "7d3f0c2e-5b1a-4c8e-9f6a-2b4d8e1c0a97"
MANAGER_ID = "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"
GROUP_ID = "3b9e6f2a-71c4-4d0f-8a55-c2e1f0b7d913"


def user(**overrides: Any) -> dict[str, Any]:
    """A rendered user like the Entra reference's, with overrides applied."""
    doc: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "id": USER_ID,
        "externalId": "a.Lindqvist",
        "userName": "Anna.Lindqvist@contoso.example",
        "active": True,
        "displayName": "Anna Lindqvist",
        "title": "Engineer",
        "userType": "Employee",
        "name": {"givenName": "Anna", "familyName": "Lindqvist"},
        "emails": [
            {"value": "anna@example.org", "type": "home"},
            {"value": "Anna.Lindqvist@contoso.example", "type": "work", "primary": True},
        ],
        "ims": [{"value": "anna@foo.com", "type": "xmpp"}],
        "meta": {"resourceType": "User", "created": "2026-03-02T09:14:07Z",
                 "lastModified": "2026-03-02T09:14:07.250Z", "version": 'W/"1"'},
        ENTERPRISE: {"manager": {"value": MANAGER_ID}, "department": "Facilities"},
        CUSTOM: {"level": 3, "score": 2.5, "verified": "False", "code": "AbC"},
    }
    doc.update(overrides)
    return doc


def group(members: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": GROUP_ID, "displayName": "Facilities Team", "meta": {}}
    if members is not None:
        doc["members"] = members
    return doc


def user_matches(text: str, resource: Mapping[str, Any] | None = None) -> bool:
    return matches(parse_filter(text), user() if resource is None else resource, REGISTRY,
                   USER_TYPE)


def group_matches(text: str, resource: Mapping[str, Any], **kw: Any) -> bool:
    return matches(parse_filter(text), resource, REGISTRY, GROUP_TYPE, **kw)


class MembersForbidden(Mapping[str, Any]):
    """A group whose ``members`` must not be read (the store would load 100,000 rows)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __getitem__(self, key: str) -> Any:
        if key.lower() == "members":
            raise AssertionError("members was read")
        return self.doc[key]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.doc, "members"])

    def __len__(self) -> int:
        return len(self.doc) + 1


# -- the Entra reference filters -------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('userName eq "anna.lindqvist@CONTOSO.example"', True),
    ('userName eq "someone.else@contoso.example"', False),
    ('externalId eq "a.Lindqvist"', True),
    ('externalId eq "a.lindqvist"', False),
    ("externalId eq a.Lindqvist", True),
    ('emails[type eq "work"].value eq "ANNA.lindqvist@contoso.example"', True),
    ('emails[type eq "home"].value eq "anna.lindqvist@contoso.example"', False),
    (f'id eq "{USER_ID}" and manager eq "{MANAGER_ID}"', True),
    (f'id eq "{USER_ID}" and manager eq "{MANAGER_ID.upper()}"', False),
    (f'manager.value eq "{MANAGER_ID}"', True),
    (f'{ENTERPRISE}:manager eq "{MANAGER_ID}"', True),
    (f'{ENTERPRISE}:manager.value eq "{MANAGER_ID}"', True),
    (f'{ENTERPRISE.upper()}:MANAGER.VALUE eq "{MANAGER_ID}"', True),
    ('displayName eq "anna lindqvist"', True),
    ("active eq true", True),
    ("active eq false", False),
    ('meta.lastModified gt "2011-05-13T04:42:34Z"', True),
    ("title pr", True),
    ("nickName pr", False),
    ('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
     True),
    ('userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
     False),
    ('emails[type eq "work" and value co "@contoso.example"] or '
     'ims[type eq "xmpp" and value co "@bar.com"]', True),
    ('emails[type eq "work" and value co "@example.com"] or '
     'ims[type eq "xmpp" and value co "@FOO.com"]', True),
    ('emails[type eq "work" and value co "@example.com"] or '
     'ims[type eq "xmpp" and value co "@bar.com"]', False),
    ('USERNAME EQ "anna.lindqvist@contoso.example" AND Emails[Type eq "work"].Value pr', True),
])
def test_entra_reference_filters_against_a_user(text: str, expected: bool) -> None:
    """The user filters of the behaviour reference select exactly the right user."""
    assert user_matches(text) is expected


def test_group_match_by_display_name_is_case_insensitive() -> None:
    """§4.1: ``displayName eq`` matches groups regardless of case."""
    assert group_matches('displayName eq "FACILITIES team"', group())
    assert not group_matches('displayName eq "Facilities"', group())


@pytest.mark.parametrize("text", [
    f'id eq "{GROUP_ID}" and members[value eq "u1"]',
    f'id eq "{GROUP_ID}" and members eq "u1"',
    'members.value eq "u1"',
    'Members.Value EQ "u1"',
])
def test_membership_checks_ask_is_member_without_reading_members(text: str) -> None:
    """§4.7: eq on the member value asks ``is_member`` and never touches ``members``."""
    asked: list[str] = []

    def is_member(user_id: str) -> bool:
        asked.append(user_id)
        return user_id == "u1"

    assert group_matches(text, MembersForbidden(group()), is_member=is_member)
    assert asked == ["u1"]
    assert not group_matches(text.replace("u1", "u2"), MembersForbidden(group()),
                             is_member=is_member)


@pytest.mark.parametrize(("text", "expected"), [
    ('members[value eq "u1"]', True),
    ('members eq "u1"', True),
    ('members.value eq "u1"', True),
    ('members.value eq "U1"', False),
    ('members[value eq "u3"]', False),
    ('members[value eq "u1" and display eq "ANNA"]', True),
    ("members[display pr]", True),
    ('members.display sw "an"', True),
    ('members ne "u1"', True),
    ("members pr", True),
])
def test_member_filters_read_members_without_callback(text: str, expected: bool) -> None:
    """Without ``is_member`` every member filter is evaluated on the ``members`` list."""
    doc = group([{"value": "u1", "display": "Anna"}, {"value": "u2"}])
    assert group_matches(text, doc) is expected


@pytest.mark.parametrize("text", [
    'members[value eq "u1" and display eq "ANNA"]', "members[display pr]",
    'members.display sw "an"', 'members ne "u1"', "members pr", 'members co "u"',
    'members[value sw "u"]',
])
def test_member_filters_other_than_plain_eq_ignore_is_member(text: str) -> None:
    """Only an ``eq`` on the member value uses the callback; other shapes read the list."""
    doc = group([{"value": "u1", "display": "Anna"}, {"value": "u2"}])
    assert group_matches(text, doc, is_member=lambda _: pytest.fail("asked"))


def test_member_filter_on_group_without_members() -> None:
    """A group rendered without members (excluded) matches no member filter by itself."""
    assert not group_matches('members eq "u1"', group())
    assert not group_matches("members pr", group(members=[]))
    assert group_matches('members ne "u1"', group())


# -- case rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (f'id eq "{USER_ID.upper()}"', False),
    ('emails.value eq "ANNA@EXAMPLE.ORG"', True),
    ('emails eq "anna@EXAMPLE.org"', True),
    ('name.givenName eq "ANNA"', True),
    ('meta.version eq "w/\\"1\\""', False),
    ('meta.version eq "W/\\"1\\""', True),
    ('code eq "abc"', False),
    ('code eq "AbC"', True),
    ('nickname eq "x"', False),
    ('favouriteColour eq "BLUE"', True),
    ('FavouriteColour co "lu"', True),
])
def test_case_exact_attributes_compare_exactly_others_ignore_case(
        text: str, expected: bool) -> None:
    """caseExact from the schema decides; unknown attributes compare case-insensitively."""
    assert user_matches(text, user(favouriteColour="blue")) is expected


def test_unicode_case_folding() -> None:
    """Case-insensitive comparison uses full case folding."""
    assert user_matches('displayName eq "STRASSE"', user(displayName="Straße"))


# -- operators -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('userName co "LINDQVIST@"', True), ('userName sw "anna."', True),
    ('userName ew ".EXAMPLE"', True), ('userName sw "lindqvist"', False),
    ('userName co ""', True),
    ('title gt "E"', True), ('title gt "engineer"', False), ('title ge "ENGINEER"', True),
    ('title lt "f"', True), ('title le "engineer"', True), ('title lt "Engineer"', False),
    ('title ne "engineer"', False), ('title ne "manager"', True),
    ("level gt 2", True), ("level ge 3", True), ("level lt 3", False), ("level le 3.0", True),
    ("level eq 3", True), ("level ne 3", False), ("score gt 2.25", True), ("score lt -1", False),
    ("level gt 20", False),
])
def test_comparison_operators_by_type(text: str, expected: bool) -> None:
    """Strings compare lexicographically (case rules apply), numbers numerically."""
    assert user_matches(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ('meta.lastModified gt "2026-03-02T09:14:07Z"', True),
    ('meta.lastModified gt "2026-03-02T10:14:07.3+01:00"', False),
    ('meta.lastModified eq "2026-03-02T04:14:07.25-05:00"', True),
    ('meta.created lt "2026-03-02T10:14:07+00:30"', True),
    ('meta.created ge "2026-03-02T09:14:07+00:00"', True),
    ('meta.created le "2026-03-02T09:14:06Z"', False),
    ('meta.created ne "2026-03-02T09:14:07Z"', False),
    ("meta.created pr", True),
])
def test_datetimes_compare_as_instants(text: str, expected: bool) -> None:
    """``meta.created``/``lastModified`` compare as points in time, across offsets."""
    assert user_matches(text) is expected


def test_unparsable_stored_datetime_does_not_match() -> None:
    """A stored value that is not a dateTime never matches an ordering comparison."""
    broken = user(meta={"created": "yesterday"})
    assert not user_matches('meta.created gt "2000-01-01T00:00:00Z"', broken)
    assert not user_matches('meta.created lt "2999-01-01T00:00:00Z"', broken)


@pytest.mark.parametrize(("text", "expected"), [
    ("active eq true", True), ('active eq "True"', True), ('active eq "FALSE"', False),
    ("active ne false", True), ("verified eq false", True), ("verified ne true", True),
    ("verified eq TRUE", False), ("active pr", True),
])
def test_booleans_accept_boolean_and_boolean_string_literals(text: str, expected: bool) -> None:
    """Boolean attributes compare with true/false or "true"/"false" in any case."""
    assert user_matches(text) is expected


def test_boolean_stored_as_string_still_compares() -> None:
    """A Boolean that reached the document as a string is compared leniently."""
    assert user_matches("active eq false", user(active="False"))


@pytest.mark.parametrize("text", [
    "active gt true", 'active co "t"', 'active eq "yes"', "active eq 1", "active lt false",
    "verified sw \"t\"", 'level co "3"', 'level eq "3"', "score eq true", 'badge gt "a"',
    'meta.created eq "not a date"', 'meta.created co "2026"', "meta.created gt 5",
    'name eq "Anna"', 'name gt "a"', "title gt true", "title co null", "title lt null",
    'userName.first eq "x"', f'{ENTERPRISE} eq "x"', 'emails[primary eq "maybe"]',
    "emails[primary gt true]",
])
def test_type_errors_raise_invalid_filter(text: str) -> None:
    """Operators and literals that cannot apply to the attribute type are a 400."""
    with pytest.raises(InvalidFilter):
        user_matches(text)


def test_type_errors_raise_even_when_attribute_absent_or_short_circuited() -> None:
    """The whole filter is checked first, so errors do not depend on the data."""
    with pytest.raises(InvalidFilter):
        user_matches('title pr or active gt true')
    with pytest.raises(InvalidFilter):
        user_matches("level co \"1\"", {"id": "x"})
    with pytest.raises(InvalidFilter):
        check_filter(parse_filter("active gt true"), REGISTRY, USER_TYPE)
    check_filter(parse_filter('userName eq "x"'), REGISTRY, USER_TYPE)


def test_non_string_literal_against_string_attribute_compares_as_text() -> None:
    """``externalId eq 12345`` (old bare-token style) matches the string "12345"."""
    doc = user(externalId="12345", nickName="true")
    assert user_matches("externalId eq 12345", doc)
    assert user_matches("nickName eq true", doc)
    assert not user_matches("externalId eq 1234", doc)


def test_unknown_attributes_compare_by_their_json_type() -> None:
    """Unknown numbers compare numerically, Booleans as Booleans, mixed pairs as text."""
    doc = user(shoeSize=42, vip=True, blob={"a": 1}, tags=["Red", "blue"])
    assert user_matches("shoeSize gt 41.5", doc)
    assert user_matches('shoeSize eq "42"', doc)
    assert user_matches("vip eq true", doc)
    assert user_matches('vip eq "TRUE"', doc)
    assert not user_matches('blob eq "x"', doc)
    assert user_matches('tags eq "red"', doc)
    assert user_matches("tags gt 1", doc)
    assert user_matches('shoeSize co "4"', doc)


# -- presence, absence and null --------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ([], False), ({}, False), ([None, ""], False),
    ({"givenName": ""}, False), ("x", True), (0, True), (False, True), ([{"value": "a"}], True),
    ({"givenName": "A"}, True),
])
def test_pr_means_present_and_not_empty(value: Any, expected: bool) -> None:
    """``pr`` is false for null, "", [] and {} (and containers of only those)."""
    assert user_matches("thing pr", user(thing=value)) is expected


def test_pr_on_complex_and_sub_attributes() -> None:
    """``name pr`` checks the complex value; ``emails.type pr`` any element's sub-value."""
    assert user_matches("name pr")
    assert not user_matches('name.nickname eq "x"')
    assert not user_matches("name pr", user(name={}))
    assert user_matches("emails.type pr")
    assert not user_matches("emails.display pr")
    assert user_matches("addresses pr", user(addresses=[{"locality": "Oslo"}]))
    assert user_matches(f"{ENTERPRISE} pr")
    assert not user_matches(f"{ENTERPRISE} pr", user(**{ENTERPRISE: {}}))


def test_ne_on_missing_attribute_matches() -> None:
    """Decision: an absent attribute is "not equal" to any value (a value path still needs
    an element that passes its bracket filter)."""
    assert user_matches('nickName ne "x"')
    assert user_matches('phoneNumbers.value ne "x"')
    assert not user_matches('emails[type eq "other"].value ne "x"')


def test_ne_on_multi_valued_uses_any_element() -> None:
    """RFC any-element rule: ``emails.value ne x`` holds if some element differs."""
    assert user_matches('emails.value ne "anna@example.org"')
    single = user(emails=[{"value": "a@b.c"}])
    assert not user_matches('emails.value ne "A@B.C"', single)


def test_eq_null_means_absent_and_ne_null_means_present() -> None:
    """RFC 7643 §2.5: null and unassigned are the same state."""
    assert user_matches("nickName eq null")
    assert not user_matches("title eq null")
    assert user_matches("title ne null")
    assert user_matches("nickName eq null", user(nickName=""))


# -- multi-valued and value paths ------------------------------------------------------------


def test_multi_valued_comparison_matches_any_element_value() -> None:
    """``emails eq`` and ``emails.value eq`` compare each element's ``value``."""
    assert user_matches('emails eq "anna@example.org"')
    assert user_matches('emails.value sw "anna.lind"')
    assert user_matches('emails.type eq "WORK"')
    assert not user_matches('emails eq "home"')


def test_value_path_requires_one_element_to_satisfy_all_conditions() -> None:
    """``emails[type eq work and value co example.org]`` does not mix elements."""
    assert not user_matches('emails[type eq "work" and value co "example.org"]')
    assert user_matches('emails[type eq "home" and value co "example.org"]')
    assert user_matches('emails[not (type eq "work")]')
    assert user_matches('emails[primary eq true].value co "contoso"')
    assert user_matches('emails[primary eq "TRUE"]')


def test_value_path_on_singular_complex_and_simple_multi_valued() -> None:
    """``manager[value eq x]`` filters a singular complex; ``schemas[value sw x]`` scalars."""
    assert user_matches(f'manager[value eq "{MANAGER_ID}"]')
    assert not user_matches(f'manager[value eq "{MANAGER_ID.upper()}"]')
    assert user_matches('schemas[value ew "enterprise:2.0:user"]')
    assert not user_matches('manager[value eq "x"]', user(**{ENTERPRISE: {}}))


def test_malformed_stored_values_never_raise() -> None:
    """Odd data in the resource (wrong JSON types) just does not match."""
    odd = user(emails="not-a-list", name=["x"], active={"v": 1}, meta=None, title=7,
               **{ENTERPRISE: "nope"})
    for text in ('emails[type eq "work"]', "name.givenName eq \"x\"", "active eq true",
                 'meta.created gt "2020-01-01T00:00:00Z"', 'title sw "7"', 'manager eq "x"',
                 'emails.value co "a"', "title gt \"a\""):
        assert user_matches(text, odd) in (True, False)


def test_long_and_chains_evaluate_without_recursion() -> None:
    """A 20,000-term ``and`` chain evaluates iteratively."""
    text = " and ".join(['title pr'] * 20_000)
    parsed = parse_filter(text, max_length=len(text), max_terms=20_000)
    assert matches(parsed, user(), REGISTRY, USER_TYPE)


def test_invalid_attribute_path_raises_invalid_filter() -> None:
    """A path the registry cannot resolve is an InvalidFilter."""
    with pytest.raises(InvalidFilter):
        matches(Compare("", "pr"), user(), REGISTRY, USER_TYPE)
    with pytest.raises(InvalidFilter):
        matches(Compare("urn:ietf:params:scim:schemas:core:2.0:User", "pr"), user(), REGISTRY,
                USER_TYPE)


# -- element_matches -------------------------------------------------------------------------


def test_element_matches_uses_sub_attribute_definitions() -> None:
    """Sub-attribute names ignore case; caseExact comes from the sub-attribute."""
    members = REGISTRY.top_attribute(GROUP_TYPE, "members")
    emails = REGISTRY.top_attribute(USER_TYPE, "emails")
    assert element_matches(parse_filter('Value eq "u1"'), {"value": "u1"}, members)
    assert not element_matches(parse_filter('value eq "U1"'), {"value": "u1"}, members)
    assert element_matches(parse_filter('TYPE eq "WORK"'), {"type": "work"}, emails)
    assert element_matches(parse_filter('primary eq "true"'), {"Primary": True}, emails)
    assert element_matches(parse_filter("display pr"), {"display": "x"}, None)
    assert not element_matches(parse_filter("display pr"), {"value": "x"}, None)


def test_element_matches_scalar_elements_through_value() -> None:
    """For multi-valued simple attributes the element itself is ``value``."""
    assert element_matches(parse_filter('value eq "ABC"'), "abc", None)
    assert not element_matches(parse_filter('type eq "abc"'), "abc", None)
    assert element_matches(parse_filter("value gt 2"), 3, None)


def test_element_matches_rejects_nested_value_paths_and_type_errors() -> None:
    """Value paths cannot nest; type errors are InvalidFilter here too."""
    emails = REGISTRY.top_attribute(USER_TYPE, "emails")
    with pytest.raises(InvalidFilter):
        element_matches(ValuePath("x", Compare("y", "pr")), {"x": [{"y": 1}]}, None)
    with pytest.raises(InvalidFilter):
        element_matches(parse_filter("primary gt true"), {"primary": True}, emails)


# -- sortBy support --------------------------------------------------------------------------


def test_values_at_prefers_the_primary_element() -> None:
    """RFC 7644 §3.4.2.3: multi-valued attributes sort by their primary value."""
    assert values_at(user(), REGISTRY, USER_TYPE, "emails.value") == [
        "Anna.Lindqvist@contoso.example", "anna@example.org"]
    assert values_at(user(), REGISTRY, USER_TYPE, "emails")[0] == (
        "Anna.Lindqvist@contoso.example")


def test_values_at_simple_complex_extension_and_missing() -> None:
    """Plain, dotted, extension and absent paths give the expected lists."""
    assert values_at(user(), REGISTRY, USER_TYPE, "userName") == [
        "Anna.Lindqvist@contoso.example"]
    assert values_at(user(), REGISTRY, USER_TYPE, "Name.FamilyName") == ["Lindqvist"]
    assert values_at(user(), REGISTRY, USER_TYPE, "manager.value") == [MANAGER_ID]
    assert values_at(user(), REGISTRY, USER_TYPE, f"{ENTERPRISE}:department") == ["Facilities"]
    assert values_at(user(), REGISTRY, USER_TYPE, "nickName") == []
    assert values_at(user(title=""), REGISTRY, USER_TYPE, "title") == []


def test_values_at_returns_instants_for_datetimes() -> None:
    """dateTime values come back as aware datetimes so offsets sort correctly."""
    assert values_at(user(), REGISTRY, USER_TYPE, "meta.lastModified") == [
        datetime(2026, 3, 2, 9, 14, 7, 250_000, tzinfo=UTC)]
    broken = user(meta={"created": "soon"})
    assert values_at(broken, REGISTRY, USER_TYPE, "meta.created") == ["soon"]


def test_sort_key_orders_none_last_and_strings_case_insensitively() -> None:
    """None sorts after everything; strings ignore case; mixed types never raise."""
    values: list[Any] = ["b", None, "A", "a", 2, 1.5, True, datetime(2020, 1, 1),
                         datetime(2019, 1, 1, tzinfo=timezone(timedelta(hours=1))), {"x": 1}]
    ordered = sorted(values, key=sort_key)
    assert ordered[-1] is None
    strings = [v for v in ordered if isinstance(v, str)]
    assert [s.lower() for s in strings] == ["a", "a", "b"]
    assert ordered.index(1.5) < ordered.index(2)
    assert sort_key(None) == sort_key(None)
    assert sort_key("X") != sort_key(None)
