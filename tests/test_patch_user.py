"""PATCH on users: every Entra shape (disable and the aadOptscim062020 matrix too), plus the
RFC 7644 §3.5.2 rules."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from scim_core.errors import (
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
    TooMany,
)
from scim_core.patch import apply_patch
from scim_core.schema import Registry, ResourceType

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User"
MANAGER_ID = "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"

REGISTRY = Registry.default()


def _resource_type(name: str) -> ResourceType:
    rt = REGISTRY.resource_type(name)
    assert rt is not None
    return rt


USER = _resource_type("User")


def base_user() -> dict[str, Any]:
    return {
        "userName": "anna.lindqvist@contoso.example",
        "displayName": "Anna Lindqvist",
        "name": {"givenName": "Anna", "familyName": "Lindqvist"},
        "active": True,
        "emails": [{"type": "work", "value": "anna@contoso.example", "primary": True}],
        "externalId": "a.lindqvist",
        ENT: {"department": "Facilities", "manager": {"value": MANAGER_ID}},
    }


def body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


def patch(doc: dict[str, Any], *ops: dict[str, Any], rt: ResourceType = USER) -> dict[str, Any]:
    result = apply_patch(REGISTRY, rt, doc, body(*ops))
    assert not result.members
    return result.document


def fails(doc: dict[str, Any], *ops: dict[str, Any]) -> ScimError:
    before = copy.deepcopy(doc)
    with pytest.raises(ScimError) as caught:
        apply_patch(REGISTRY, USER, doc, body(*ops))
    assert doc == before
    assert caught.value.status == 400
    return caught.value


# -- envelope ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Operations", "operations", "OPERATIONS"])
def test_operations_key_any_case(key: str) -> None:
    """The Operations key is found whatever its letter case."""
    doc = apply_patch(REGISTRY, USER, base_user(),
                      {key: [{"op": "replace", "path": "title", "value": "Boss"}]}).document
    assert doc["title"] == "Boss"


def test_schemas_may_be_missing_or_odd() -> None:
    """A missing or wrong schemas member does not reject the request."""
    for extra in ({}, {"schemas": "nonsense"}, {"schemas": ["urn:other"]}):
        payload = {**extra, "Operations": [{"op": "add", "path": "title", "value": "T"}]}
        assert apply_patch(REGISTRY, USER, base_user(), payload).document["title"] == "T"


@pytest.mark.parametrize("payload", [
    None, [], "x", {}, {"Operations": {}}, {"Operations": "add"}, {"Operations": []},
    {"Operations": [1]}, {"Operations": [["op", "add"]]},
    {"Operations": [{"op": "add", "path": "title", "value": "a"}], "operations": []},
])
def test_malformed_envelope_is_invalid_syntax(payload: Any) -> None:
    """Bodies without a non-empty list of operation objects are 400 invalidSyntax."""
    with pytest.raises(InvalidSyntax):
        apply_patch(REGISTRY, USER, base_user(), payload)


@pytest.mark.parametrize("op", ["copy", "move", "", None, 3, "test"])
def test_unknown_op_is_invalid_syntax_naming_index(op: Any) -> None:
    """An op other than add/replace/remove fails with invalidSyntax naming its index."""
    error = fails(base_user(), {"op": "add", "path": "title", "value": "a"},
                  {"op": op, "path": "title", "value": "b"})
    assert isinstance(error, InvalidSyntax)
    assert "Operations[1]" in error.detail


def test_operation_member_names_any_case() -> None:
    """Op, Path and Value are accepted in any letter case."""
    doc = patch(base_user(), {"Op": "Replace", "PATH": "title", "vAlUe": "Chief"})
    assert doc["title"] == "Chief"


def test_too_many_operations() -> None:
    """More operations than max_operations is 400 tooMany."""
    ops = [{"op": "add", "path": "title", "value": str(i)} for i in range(4)]
    with pytest.raises(TooMany):
        apply_patch(REGISTRY, USER, base_user(), body(*ops), max_operations=3)
    assert apply_patch(REGISTRY, USER, base_user(), body(*ops[:3]),
                       max_operations=3).document["title"] == "2"


def test_add_without_value_is_invalid_syntax() -> None:
    """add and replace must carry a value member."""
    assert isinstance(fails(base_user(), {"op": "add", "path": "title"}), InvalidSyntax)
    assert isinstance(fails(base_user(), {"op": "replace", "path": "title"}), InvalidSyntax)


@pytest.mark.parametrize("path", [5, ["title"], {"a": 1}, True])
def test_non_string_path_is_invalid_path(path: Any) -> None:
    """A path that is not a string is 400 invalidPath."""
    assert isinstance(fails(base_user(), {"op": "add", "path": path, "value": "x"}), InvalidPath)


@pytest.mark.parametrize("path", ["emails[type eq", "emails]", "a b", "name..x", "name.a.b",
                                  'emails[type eq "work"].value.x', "title[value eq 1]"])
def test_malformed_path_is_invalid_path(path: str) -> None:
    """Unparsable paths, too-deep sub-attributes and filters on simple attributes are 400
    invalidPath."""
    assert isinstance(fails(base_user(), {"op": "replace", "path": path, "value": "x"}),
                      InvalidPath)


# -- Entra's PATCH shapes ------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Add", "add", "ADD", "Replace", "replace", "rEpLaCe"])
def test_a_op_casing(op: str) -> None:
    """(a) op is matched case-insensitively."""
    assert patch(base_user(), {"op": op, "path": "nickName", "value": "Babs"})["nickName"] == "Babs"


def test_a_remove_casing() -> None:
    """(a) Remove and remove both remove."""
    for op in ("Remove", "remove", "REMOVE"):
        assert "displayName" not in patch(base_user(), {"op": op, "path": "displayName"})


def test_b_legacy_single_valued_replaces() -> None:
    """(b) The legacy one-op-per-attribute body sets every attribute, sub-attribute and
    extension attribute."""
    doc = patch(
        base_user(),
        {"op": "Replace", "path": "userName", "value": "anna.l@contoso.example"},
        {"op": "Replace", "path": "displayName", "value": "Anna L."},
        {"op": "Replace", "path": "name.givenName", "value": "Anna"},
        {"op": "Replace", "path": "name.familyName", "value": "Lindqvist-Berg"},
        {"op": "Replace", "path": "externalId", "value": "a.lindqvist2"},
        {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": "100483"},
    )
    assert doc["userName"] == "anna.l@contoso.example"
    assert doc["displayName"] == "Anna L."
    assert doc["name"] == {"givenName": "Anna", "familyName": "Lindqvist-Berg"}
    assert doc["externalId"] == "a.lindqvist2"
    assert doc[ENT] == {"department": "Facilities", "manager": {"value": MANAGER_ID},
                        "employeeNumber": "100483"}


def test_c_add_single_valued_sets() -> None:
    """(c) add on a single-valued attribute sets it, also over an existing value."""
    doc = patch(base_user(), {"op": "Add", "path": "nickName", "value": "Babs"})
    assert doc["nickName"] == "Babs"
    doc = patch(doc, {"op": "add", "path": "nickName", "value": "Bee"})
    assert doc["nickName"] == "Bee"


def test_d_filtered_paths_update_in_place() -> None:
    """(d) emails[type eq "work"].value and .primary change the matching element only."""
    user = base_user()
    user["emails"].append({"type": "home", "value": "home@example.org"})
    doc = patch(user,
                {"op": "Replace", "path": 'emails[type eq "work"].value',
                 "value": "anna.l@contoso.example"},
                {"op": "replace", "path": 'emails[type eq "work"].primary', "value": True})
    assert doc["emails"] == [
        {"type": "work", "value": "anna.l@contoso.example", "primary": True},
        {"type": "home", "value": "home@example.org"},
    ]


def test_d_filtered_paths_create_missing_element() -> None:
    """(d) When no element matches an eq filter, one is created from the filter."""
    user = base_user()
    del user["emails"]
    doc = patch(user,
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "a@b.example"},
                {"op": "Replace", "path": 'addresses[type eq "work"].formatted',
                 "value": "Building 5"},
                {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"})
    assert doc["emails"] == [{"type": "work", "value": "a@b.example"}]
    assert doc["addresses"] == [{"type": "work", "formatted": "Building 5"}]
    assert doc["phoneNumbers"] == [{"type": "mobile", "value": "+1 555"}]


def test_d_filtered_path_never_stored_as_literal_key() -> None:
    """(d) No key of the result is a path string."""
    doc = patch(base_user(),
                {"op": "replace", "path": 'addresses[type eq "work"].formatted', "value": "B5"},
                {"op": "replace", "value": {'emails[type eq "home"].value': "h@x.example"}})
    keys = set(doc) | set(doc[ENT])
    assert not any("[" in k or k.startswith(("addresses.", "emails.")) for k in keys)
    assert {"type": "home", "value": "h@x.example"} in doc["emails"]


def test_d_filter_with_and_builds_element_from_all_eqs() -> None:
    """(d) A conjunction of eq comparisons describes the whole new element."""
    doc = patch(base_user(), {"op": "add",
                              "path": 'phoneNumbers[type eq "work" and display eq "desk"].value',
                              "value": "+46 1"})
    assert doc["phoneNumbers"] == [{"type": "work", "display": "desk", "value": "+46 1"}]


@pytest.mark.parametrize("path", ['emails[type ne "work"].value', 'emails[type sw "h"].value',
                                  'emails[type eq "a" or type eq "b"].value',
                                  'emails[type eq "a" and type eq "b"].value',
                                  'emails[not (type eq "work")].value',
                                  'emails[value pr].display'])
def test_d_unmatched_non_eq_filter_is_no_target(path: str) -> None:
    """(d) With no match and a filter that does not describe one element: 400 noTarget."""
    user = base_user()
    user["emails"] = [{"type": "work"}]
    assert isinstance(fails(user, {"op": "replace", "path": path, "value": "n@x"}), NoTarget)


def test_d_filter_without_sub_merges_object() -> None:
    """(d) path emails[type eq "work"] with an object merges into the matching element,
    and creates it when absent."""
    doc = patch(base_user(), {"op": "replace", "path": 'emails[type eq "work"]',
                              "value": {"value": "new@x.example", "display": "Work"}})
    assert doc["emails"] == [{"type": "work", "value": "new@x.example", "primary": True,
                              "display": "Work"}]
    doc = patch(base_user(), {"op": "add", "path": 'emails[type eq "home"]',
                              "value": {"value": "h@x.example"}})
    assert doc["emails"][1] == {"type": "home", "value": "h@x.example"}


def test_d_filter_matches_every_element() -> None:
    """(d) add/replace through a filter writes every matching element."""
    user = base_user()
    user["phoneNumbers"] = [{"type": "work", "value": "1"}, {"type": "work", "value": "2"},
                            {"type": "fax", "value": "3"}]
    doc = patch(user, {"op": "replace", "path": 'phoneNumbers[type eq "work"].display',
                       "value": "desk"})
    assert [p.get("display") for p in doc["phoneNumbers"]] == ["desk", "desk", None]


def test_e_enterprise_urn_colon_path() -> None:
    """(e) urn:…:User:department lands inside the enterprise extension object."""
    doc = patch(base_user(), {"op": "Add", "path": f"{ENT}:department", "value": "Estates"})
    assert doc[ENT]["department"] == "Estates"
    assert f"{ENT}:department" not in doc


def test_e_extension_created_when_absent() -> None:
    """(e) An extension attribute on a user without the extension creates the object."""
    user = base_user()
    del user[ENT]
    doc = patch(user, {"op": "add", "path": f"{ENT}:division", "value": "North"})
    assert doc[ENT] == {"division": "North"}


def test_e_legacy_dot_form() -> None:
    """(e) Pre-2018 urn:…:User.department is the same attribute."""
    doc = patch(base_user(), {"op": "Replace", "path": f"{ENT}.department", "value": "Ops"})
    assert doc[ENT]["department"] == "Ops"


def test_e_urn_is_case_insensitive() -> None:
    """(e) The URN and attribute name may be in any case; the document keeps canonical keys."""
    doc = patch(base_user(), {"op": "replace", "path": f"{ENT.upper()}:DEPARTMENT", "value": "X"})
    assert doc[ENT]["department"] == "X"


def test_e_bare_extension_urn_merges_object() -> None:
    """(e) A bare extension URN path with an object merges its attributes."""
    doc = patch(base_user(), {"op": "replace", "path": ENT,
                              "value": {"costCenter": "42", "Department": "Labs"}})
    assert doc[ENT] == {"department": "Labs", "manager": {"value": MANAGER_ID},
                        "costCenter": "42"}


def test_e_bare_extension_urn_needs_object() -> None:
    """(e) A bare extension URN with a non-object value is 400 invalidValue."""
    assert isinstance(fails(base_user(), {"op": "add", "path": ENT, "value": "x"}), InvalidValue)


def test_e_remove_extension_object() -> None:
    """(e) remove with a bare extension URN drops the whole extension."""
    assert ENT not in patch(base_user(), {"op": "remove", "path": ENT})


def test_e_unknown_custom_extension_kept_verbatim() -> None:
    """(e) Custom-extension attributes Entra sends are stored under their URN."""
    doc = patch(base_user(),
                {"op": "add", "path": f"{CUSTOM}:costCode", "value": "CC-7"},
                {"op": "add", "path": f"{CUSTOM}.badge", "value": 17},
                {"op": "replace", "value": {f"{CUSTOM}:site": "Lund"}})
    assert doc[CUSTOM] == {"costCode": "CC-7", "badge": 17, "site": "Lund"}
    doc = patch(doc, {"op": "replace", "path": CUSTOM, "value": {"costCode": "CC-8"}},
                {"op": "remove", "path": f"{CUSTOM}:badge"})
    assert doc[CUSTOM] == {"costCode": "CC-8", "site": "Lund"}
    assert CUSTOM not in patch(doc, {"op": "remove", "path": CUSTOM})


@pytest.mark.parametrize("value", [
    MANAGER_ID,
    {"value": MANAGER_ID},
    [{"$ref": None, "value": MANAGER_ID}],
])
def test_f_manager_shapes_stored_as_object(value: Any) -> None:
    """(f) A manager string, object or 2018-style list is stored as {"value": id}."""
    user = base_user()
    del user[ENT]["manager"]
    for path in (f"{ENT}:manager", "manager", f"{ENT}.manager"):
        doc = patch(user, {"op": "add", "path": path, "value": value})
        assert doc[ENT]["manager"] == {"value": MANAGER_ID}


def test_f_manager_list_with_ref_keeps_value() -> None:
    """(f) The 2018 list form with a $ref URI stores the manager id as an object."""
    doc = patch(base_user(), {"op": "Add", "path": "manager", "value": [
        {"$ref": "https://scim.example/Users/new-id", "value": "new-id"}]})
    assert doc[ENT]["manager"]["value"] == "new-id"


def test_f_manager_replace_drops_stale_sub_attributes() -> None:
    """(f) A new manager replaces the old object whole (no stale $ref)."""
    user = base_user()
    user[ENT]["manager"] = {"value": "old", "$ref": "https://scim.example/Users/old"}
    doc = patch(user, {"op": "replace", "path": f"{ENT}:manager", "value": "new"})
    assert doc[ENT]["manager"] == {"value": "new"}


def test_f_manager_remove_by_filter() -> None:
    """(f) remove manager[value eq "id"] removes the manager when it matches."""
    doc = patch(base_user(), {"op": "remove", "path": f'manager[value eq "{MANAGER_ID}"]'})
    assert doc[ENT] == {"department": "Facilities"}


def test_f_manager_remove_by_filter_other_id_is_noop() -> None:
    """(f) remove manager[value eq "other"] leaves a different manager alone."""
    doc = patch(base_user(), {"op": "remove", "path": 'manager[value eq "someone-else"]'})
    assert doc[ENT]["manager"] == {"value": MANAGER_ID}


def test_f_manager_remove_by_urn_path() -> None:
    """(f) remove urn:…:User:manager removes it; the emptied extension disappears."""
    user = base_user()
    user[ENT] = {"manager": {"value": MANAGER_ID}}
    assert ENT not in patch(user, {"op": "remove", "path": f"{ENT}:manager"})


@pytest.mark.parametrize("value", ["", None, [], {}])
def test_f_manager_replace_with_empty_removes(value: Any) -> None:
    """(f) replace manager with "" (or null/[]/{}) removes it; nothing empty is stored."""
    doc = patch(base_user(), {"op": "replace", "path": f"{ENT}:manager", "value": value})
    assert "manager" not in doc[ENT]


def test_g_pathless_entra_body() -> None:
    """(g) The flagged body: a valuePath op plus a path-less object with dotted and URN
    keys."""
    doc = patch(base_user(), {"op": "replace", "path": 'emails[type eq "work"].value',
                              "value": "anna.l@contoso.example"},
                {"op": "replace", "value": {
                    "displayName": "Anna L.",
                    "name.givenName": "Anna",
                    "name.familyName": "Lindqvist-Berg",
                    f"{ENT}:employeeNumber": "100483",
                    "active": False,
                    "userName": "anna.l@contoso.example",
                }})
    assert doc["emails"][0]["value"] == "anna.l@contoso.example"
    assert doc["displayName"] == "Anna L."
    assert doc["name"] == {"givenName": "Anna", "familyName": "Lindqvist-Berg"}
    assert doc[ENT]["employeeNumber"] == "100483"
    assert doc["active"] is False
    assert doc["userName"] == "anna.l@contoso.example"
    assert not any("." in k or ":" in k for k in doc if not k.startswith("urn:"))


def test_g_pathless_nested_objects_merge() -> None:
    """(g) RFC-style nested objects merge into complex attributes and extensions."""
    doc = patch(base_user(), {"op": "replace", "value": {
        "name": {"givenName": "Annie"},
        ENT: {"department": "Labs", "division": "R&D"},
    }})
    assert doc["name"] == {"givenName": "Annie", "familyName": "Lindqvist"}
    assert doc[ENT] == {"department": "Labs", "division": "R&D",
                        "manager": {"value": MANAGER_ID}}


def test_g_pathless_add_appends_to_multi_valued() -> None:
    """(g) A path-less add appends to multi-valued attributes; replace replaces them."""
    extra = {"type": "home", "value": "h@x.example"}
    doc = patch(base_user(), {"op": "add", "value": {"emails": [extra]}})
    assert len(doc["emails"]) == 2
    doc = patch(base_user(), {"op": "replace", "value": {"emails": [extra]}})
    assert doc["emails"] == [extra]


def test_g_pathless_core_urn_nesting() -> None:
    """(g) Core attributes nested under the core schema URN are applied too."""
    doc = patch(base_user(), {"op": "replace", "value": {
        "urn:ietf:params:scim:schemas:core:2.0:User": {"displayName": "Nested"}}})
    assert doc["displayName"] == "Nested"


def test_g_pathless_value_must_be_object() -> None:
    """(g) Path-less add/replace with a non-object value is 400 invalidValue."""
    for value in ("x", [1], None, 3):
        assert isinstance(fails(base_user(), {"op": "replace", "value": value}), InvalidValue)


def test_g_pathless_remove_is_no_target() -> None:
    """RFC 7644 §3.5.2.2: remove without a path is 400 noTarget."""
    assert isinstance(fails(base_user(), {"op": "remove"}), NoTarget)
    assert isinstance(fails(base_user(), {"op": "remove", "path": "  "}), NoTarget)
    assert isinstance(fails(base_user(), {"op": "Remove", "value": {"title": "x"}}), NoTarget)


@pytest.mark.parametrize("value", ["False", "false", "FALSE", False, " false "])
def test_h_boolean_false_forms(value: Any) -> None:
    """(h) JSON false and the string false in any case store a JSON false."""
    doc = patch(base_user(), {"op": "replace", "path": "active", "value": value})
    assert doc["active"] is False


@pytest.mark.parametrize("value", ["True", "true", "TRUE", True])
def test_h_boolean_true_forms(value: Any) -> None:
    """(h) JSON true and the string true in any case store a JSON true."""
    user = base_user()
    user["active"] = False
    assert patch(user, {"op": "replace", "path": "active", "value": value})["active"] is True


def test_h_boolean_string_for_primary() -> None:
    """(h) emails[..].primary accepts Boolean strings too, through paths and objects."""
    user = base_user()
    user["emails"] = [{"type": "work", "value": "w@x"}, {"type": "home", "value": "h@x"}]
    doc = patch(user, {"op": "replace", "path": 'emails[type eq "home"].Primary', "value": "True"})
    assert doc["emails"][1]["primary"] is True
    doc = patch(user, {"op": "add", "path": "emails",
                       "value": [{"Value": "o@x", "Type": "other", "Primary": "TRUE"}]})
    assert doc["emails"][2] == {"value": "o@x", "type": "other", "primary": True}


@pytest.mark.parametrize("value", ["maybe", "yes", "1", 1, 0, [], {"a": 1}, ""])
def test_h_non_boolean_rejected(value: Any) -> None:
    """(h) Anything else for a Boolean attribute is 400 invalidValue."""
    assert isinstance(fails(base_user(), {"op": "replace", "path": "active", "value": value}),
                      InvalidValue)


def test_i_operations_apply_in_order() -> None:
    """(i) Later operations see the results of earlier ones on the same attribute."""
    doc = patch(base_user(),
                {"op": "add", "path": "title", "value": "One"},
                {"op": "replace", "path": "title", "value": "Two"},
                {"op": "remove", "path": "title"},
                {"op": "add", "path": "nickName", "value": "N"},
                {"op": "replace", "path": "nickName", "value": "M"})
    assert "title" not in doc
    assert doc["nickName"] == "M"


def test_i_atomic_failure_keeps_document() -> None:
    """(i) One failing operation fails the request, names the operation and changes
    nothing."""
    user = base_user()
    error = fails(user, {"op": "replace", "path": "displayName", "value": "Changed"},
                  {"op": "replace", "path": "name.givenName", "value": "Changed"},
                  {"op": "replace", "path": "active", "value": "perhaps"})
    assert isinstance(error, InvalidValue)
    assert "Operations[2]" in error.detail
    assert user == base_user()


def test_input_document_never_mutated() -> None:
    """The caller's document is left untouched on success as well."""
    user = base_user()
    result = patch(user, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "x"},
                   {"op": "add", "path": "name.middleName", "value": "M"},
                   {"op": "remove", "path": f"{ENT}:manager"})
    assert user == base_user()
    assert result is not user


def test_j_roles_legacy_json_string() -> None:
    """(j) Legacy roles arrive as a JSON string inside value and are stored verbatim."""
    role = '{"id":"r1","value":"Admin","displayName":"Admin"}'
    doc = patch(base_user(), {"op": "Add", "path": "roles", "value": [{"value": role}]})
    assert doc["roles"] == [{"value": role}]
    doc = patch(doc, {"op": "Add", "path": "roles", "value": [{"value": role}]})
    assert doc["roles"] == [{"value": role}]


def test_j_roles_flagged_full_objects() -> None:
    """(j) Flagged jobs replace roles with structured objects."""
    user = base_user()
    user["roles"] = [{"value": "old"}]
    roles = [{"value": "Admin", "display": "Admin", "type": "WindowsAzureActiveDirectoryRole",
              "primary": False}]
    assert patch(user, {"op": "replace", "path": "roles", "value": roles})["roles"] == roles


# -- disable, and the flag matrix---------------------------------------------------------


@pytest.mark.parametrize(("op", "value"), [("Replace", "False"), ("replace", False),
                                           ("Replace", False), ("replace", "False")])
def test_3_6_disable_every_combination(op: str, value: Any) -> None:
    """Legacy and flagged disable bodies (and their mixes) set active to false."""
    doc = patch(base_user(), {"op": op, "path": "active", "value": value})
    assert doc["active"] is False
    assert patch(doc, {"op": op, "path": "active", "value": "True" if value == "False" else True}
                 )["active"] is True


def test_3_6_pathless_disable_string() -> None:
    """A path-less {"active": "False"} disables too."""
    assert patch(base_user(), {"op": "replace", "value": {"active": "False"}})["active"] is False


LEGACY_AND_FLAGGED = [
    ([{"op": "Replace", "path": "active", "value": "False"}],
     [{"op": "replace", "path": "active", "value": False}]),
    ([{"op": "Add", "path": "nickName", "value": "Babs"}],
     [{"op": "add", "path": "nickName", "value": "Babs"}]),
    ([{"op": "Replace", "path": "displayName", "value": "D"},
      {"op": "Replace", "path": "name.givenName", "value": "G"},
      {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": "7"},
      {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "e@x"}],
     [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "e@x"},
      {"op": "replace", "value": {"displayName": "D", "name.givenName": "G",
                                  f"{ENT}:employeeNumber": "7"}}]),
    ([{"op": "Add", "path": "roles", "value": [{"value": '{"id":"1"}'}]}],
     [{"op": "add", "path": "roles", "value": [{"value": '{"id":"1"}'}]}]),
]


@pytest.mark.parametrize(("legacy", "flagged"), LEGACY_AND_FLAGGED)
def test_6_legacy_and_flagged_shapes_agree(legacy: list[dict[str, Any]],
                                           flagged: list[dict[str, Any]]) -> None:
    """Each matrix row's legacy and aadOptscim062020 shapes give the same document."""
    assert patch(base_user(), *legacy) == patch(base_user(), *flagged) != base_user()


# -- RFC 7644 §3.5.2 rules ---------------------------------------------------------------


def test_add_multi_valued_appends_without_duplicates() -> None:
    """add to a multi-valued attribute appends new elements and skips equal ones."""
    home = {"type": "home", "value": "h@x.example"}
    doc = patch(base_user(), {"op": "add", "path": "emails",
                              "value": [home, home, base_user()["emails"][0]]})
    assert doc["emails"] == [base_user()["emails"][0], home]


def test_add_single_object_to_multi_valued() -> None:
    """add with a single object to a multi-valued attribute appends it."""
    doc = patch(base_user(), {"op": "add", "path": "phoneNumbers",
                              "value": {"type": "fax", "value": "1"}})
    assert doc["phoneNumbers"] == [{"type": "fax", "value": "1"}]


def test_replace_multi_valued_replaces_list() -> None:
    """replace of a multi-valued attribute without a filter replaces every element."""
    doc = patch(base_user(), {"op": "replace", "path": "emails",
                              "value": [{"type": "home", "value": "h@x"}]})
    assert doc["emails"] == [{"type": "home", "value": "h@x"}]


def test_primary_is_unique_after_add() -> None:
    """Adding a primary element clears primary on the others."""
    doc = patch(base_user(), {"op": "add", "path": "emails",
                              "value": [{"type": "home", "value": "h@x", "primary": True}]})
    assert [e.get("primary") for e in doc["emails"]] == [False, True]


def test_primary_set_on_equal_element_moves_primary() -> None:
    """Re-adding an existing element with primary true makes it the only primary."""
    user = base_user()
    user["emails"].append({"type": "home", "value": "h@x"})
    doc = patch(user, {"op": "add", "path": "emails",
                       "value": {"type": "home", "value": "h@x", "primary": True}})
    assert doc["emails"] == [{"type": "work", "value": "anna@contoso.example", "primary": False},
                             {"type": "home", "value": "h@x", "primary": True}]


def test_two_primaries_in_one_value_rejected() -> None:
    """A value that makes two elements primary is 400 invalidValue."""
    error = fails(base_user(), {"op": "replace", "path": "emails", "value": [
        {"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}]})
    assert isinstance(error, InvalidValue)


def test_remove_with_filter_removes_matching_elements() -> None:
    """remove emails[type eq "home"] removes only the matching elements."""
    user = base_user()
    user["emails"].append({"type": "home", "value": "h@x"})
    doc = patch(user, {"op": "remove", "path": 'emails[type eq "home"]'})
    assert doc["emails"] == base_user()["emails"]


def test_remove_last_element_removes_attribute() -> None:
    """Removing the last element removes the attribute instead of storing []."""
    assert "emails" not in patch(base_user(), {"op": "remove", "path": 'emails[type eq "work"]'})


def test_remove_sub_attribute_with_filter_drops_empty_elements() -> None:
    """remove emails[type eq "work"].value strips the sub-attribute; elements left empty go."""
    user = base_user()
    user["addresses"] = [{"type": "work", "formatted": "B5"}, {"type": "home", "formatted": "H"}]
    doc = patch(user, {"op": "remove", "path": 'emails[type eq "work"].value'},
                {"op": "remove", "path": 'addresses[type eq "work"].formatted'},
                {"op": "remove", "path": 'addresses[type eq "work"].type'})
    assert doc["emails"] == [{"type": "work", "primary": True}]
    assert doc["addresses"] == [{"type": "home", "formatted": "H"}]


def test_remove_sub_attribute_of_complex() -> None:
    """remove name.givenName keeps the rest of name; removing all of it removes name."""
    doc = patch(base_user(), {"op": "remove", "path": "name.givenName"})
    assert doc["name"] == {"familyName": "Lindqvist"}
    assert "name" not in patch(doc, {"op": "remove", "path": "name.familyName"})


def test_replace_complex_merges_sub_attributes() -> None:
    """replace name with an object replaces the given sub-attributes and keeps the others."""
    doc = patch(base_user(), {"op": "replace", "path": "name",
                              "value": {"familyName": "Berg", "Formatted": "Anna Berg"}})
    assert doc["name"] == {"givenName": "Anna", "familyName": "Berg", "formatted": "Anna Berg"}


def test_sub_attribute_path_creates_complex() -> None:
    """add name.middleName on a user without name creates the object."""
    user = base_user()
    del user["name"]
    assert patch(user, {"op": "add", "path": "NAME.middlename", "value": "M"})["name"] == {
        "middleName": "M"}


def test_sub_path_on_multi_valued_without_filter() -> None:
    """emails.display without a filter writes every element (creating one if none)."""
    user = base_user()
    user["emails"].append({"type": "home", "value": "h@x"})
    doc = patch(user, {"op": "replace", "path": "emails.display", "value": "E"})
    assert all(e["display"] == "E" for e in doc["emails"])
    user["emails"] = []
    del user["emails"]
    assert patch(user, {"op": "add", "path": "ims.value", "value": "im"})["ims"] == [
        {"value": "im"}]


def test_sub_path_on_simple_attribute_is_invalid_path() -> None:
    """active.value names no sub-attribute: 400 invalidPath."""
    assert isinstance(fails(base_user(), {"op": "add", "path": "active.value", "value": True}),
                      InvalidPath)


def test_names_are_case_insensitive() -> None:
    """Attribute names, filter names and value keys may use any case."""
    doc = patch(base_user(),
                {"op": "replace", "path": 'EMAILS[TYPE eq "work"].VALUE', "value": "w@x"},
                {"op": "add", "path": "Addresses", "value": [{"Formatted": "F", "Type": "work"}]},
                {"op": "replace", "path": "DisplayName", "value": "D"})
    assert doc["emails"][0]["value"] == "w@x"
    assert doc["addresses"] == [{"formatted": "F", "type": "work"}]
    assert doc["displayName"] == "D"


@pytest.mark.parametrize("path", ["id", "ID", "meta", "meta.created", "meta.lastModified",
                                  "groups", "schemas", 'groups[value eq "g"]'])
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_read_only_paths_are_mutability_errors(path: str, op: str) -> None:
    """id, meta(.*), groups and schemas cannot be written through an explicit path."""
    assert isinstance(fails(base_user(), {"op": op, "path": path, "value": "x"}), Mutability)


def test_pathless_skips_echoed_server_attributes() -> None:
    """schemas, id and meta inside a path-less object are ignored (clients echo them)."""
    doc = patch(base_user(), {"op": "replace", "value": {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "other",
        "Meta": {"resourceType": "User"}, "title": "T"}})
    assert doc == {**base_user(), "title": "T"}


def test_pathless_read_only_groups_rejected() -> None:
    """Other read-only attributes in a path-less object are 400 mutability."""
    assert isinstance(fails(base_user(), {"op": "replace", "value": {"groups": []}}), Mutability)


def test_manager_display_name_is_read_only() -> None:
    """manager.displayName is readOnly: an explicit path to it is 400 mutability."""
    error = fails(base_user(), {"op": "replace", "path": f"{ENT}:manager.displayName",
                                "value": "Boss"})
    assert isinstance(error, Mutability)


def test_password_accepted_and_dropped() -> None:
    """password (writeOnly) is accepted and never stored."""
    doc = patch(base_user(), {"op": "replace", "path": "password", "value": "s3cret!"},
                {"op": "add", "value": {"Password": "x"}},
                {"op": "remove", "path": "password"})
    assert doc == base_user()


def test_remove_required_attribute_is_mutability() -> None:
    """remove userName is 400 mutability (RFC 7644 §3.5.2.2)."""
    assert isinstance(fails(base_user(), {"op": "remove", "path": "userName"}), Mutability)
    assert isinstance(fails(base_user(), {"op": "replace", "path": "userName", "value": None}),
                      Mutability)


def test_empty_required_attribute_is_invalid_value() -> None:
    """replace userName with an empty string is 400 invalidValue."""
    for value in ("", "   "):
        assert isinstance(fails(base_user(), {"op": "replace", "path": "userName",
                                              "value": value}), InvalidValue)


def test_remove_absent_is_noop() -> None:
    """Removing something absent succeeds and changes nothing (Entra relies on it)."""
    doc = patch(base_user(), {"op": "remove", "path": "nickName"},
                {"op": "remove", "path": 'emails[type eq "home"]'},
                {"op": "remove", "path": 'phoneNumbers[type eq "fax"].value'},
                {"op": "remove", "path": f"{ENT}:division"},
                {"op": "remove", "path": f"{CUSTOM}:x"},
                {"op": "remove", "path": CUSTOM},
                {"op": "remove", "path": "name.honorificPrefix"})
    assert doc == base_user()


def test_remove_multi_valued_without_filter() -> None:
    """remove emails removes the attribute and all values."""
    assert "emails" not in patch(base_user(), {"op": "remove", "path": "emails"})


def test_replace_with_null_removes_and_add_empty_list_is_noop() -> None:
    """replace with null unassigns; add of [] to a multi-valued attribute adds nothing."""
    doc = patch(base_user(), {"op": "replace", "path": "displayName", "value": None},
                {"op": "add", "path": "emails", "value": []})
    assert "displayName" not in doc
    assert doc["emails"] == base_user()["emails"]
    assert "emails" not in patch(base_user(), {"op": "replace", "path": "emails", "value": []})


def test_unknown_attribute_kept_verbatim() -> None:
    """An attribute no schema defines is stored under the name as written."""
    doc = patch(base_user(), {"op": "add", "path": "nickname2", "value": "x"},
                {"op": "add", "path": "members", "value": [{"value": "g1"}]},
                {"op": "add", "value": {"customFlag": {"a": [1, 2]}}})
    assert doc["nickname2"] == "x"
    assert doc["members"] == [{"value": "g1"}]
    assert doc["customFlag"] == {"a": [1, 2]}
    doc = patch(doc, {"op": "replace", "path": "NICKNAME2", "value": "y"},
                {"op": "add", "path": "members", "value": [{"value": "g2"}]})
    assert doc["nickname2"] == "y"
    assert doc["members"] == [{"value": "g1"}, {"value": "g2"}]


def test_wrong_value_types_are_invalid_value() -> None:
    """Numbers where strings belong, objects for simple attributes: 400 invalidValue."""
    for op in ({"op": "replace", "path": "userName", "value": 5},
               {"op": "replace", "path": "name", "value": "Anna"},
               {"op": "add", "path": "emails", "value": ["a@x"]},
               {"op": "replace", "path": "name.givenName", "value": {"a": 1}},
               {"op": "replace", "path": 'emails[type eq "work"].value', "value": 3}):
        assert isinstance(fails(base_user(), op), InvalidValue), op


def test_deeply_nested_value_rejected() -> None:
    """Values nested beyond the limit are 400 invalidValue, not a crash."""
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    assert isinstance(fails(base_user(), {"op": "add", "path": "custom", "value": deep}),
                      InvalidValue)


def test_non_finite_number_rejected() -> None:
    """NaN and infinities (which json.loads accepts) are 400 invalidValue."""
    assert isinstance(fails(base_user(), {"op": "add", "path": "custom",
                                          "value": float("nan")}), InvalidValue)


def test_nulls_never_stored() -> None:
    """Nulls inside verbatim values are dropped: nothing stored is null."""
    doc = patch(base_user(), {"op": "add", "path": "custom", "value": {"a": None, "b": [1, None]}},
                {"op": "add", "value": {"name": {"givenName": None, "middleName": "M"}}})
    assert doc["custom"] == {"b": [1]}
    assert doc["name"] == {"givenName": "Anna", "familyName": "Lindqvist", "middleName": "M"}


IMMUTABLE_EXT = "urn:example:params:scim:schemas:extension:Badge:2.0:User"


def test_immutable_attribute_set_once() -> None:
    """An immutable attribute may be added when unassigned, never changed or removed
    (RFC 7644 §3.5.2)."""
    registry = Registry.default(json.dumps([{
        "id": IMMUTABLE_EXT, "resourceType": "User", "attributes": [
            {"name": "badge", "mutability": "immutable"},
            {"name": "card", "type": "complex", "subAttributes": [
                {"name": "serial", "mutability": "immutable"}, {"name": "label"}]}]}]))
    rt = registry.resource_type("User")
    assert rt is not None

    def run(doc: dict[str, Any], *ops: dict[str, Any]) -> dict[str, Any]:
        return apply_patch(registry, rt, doc, body(*ops)).document

    doc = run({"userName": "u"}, {"op": "add", "path": f"{IMMUTABLE_EXT}:badge", "value": "B1"},
              {"op": "add", "path": f"{IMMUTABLE_EXT}:card.serial", "value": "S1"})
    assert doc[IMMUTABLE_EXT] == {"badge": "B1", "card": {"serial": "S1"}}
    assert run(doc, {"op": "replace", "path": f"{IMMUTABLE_EXT}:badge", "value": "B1"},
               {"op": "replace", "path": f"{IMMUTABLE_EXT}:card.label", "value": "L"}
               )[IMMUTABLE_EXT] == {"badge": "B1", "card": {"serial": "S1", "label": "L"}}
    for op in ({"op": "replace", "path": f"{IMMUTABLE_EXT}:badge", "value": "B2"},
               {"op": "remove", "path": f"{IMMUTABLE_EXT}:badge"},
               {"op": "replace", "path": f"{IMMUTABLE_EXT}:card.serial", "value": "S2"},
               {"op": "replace", "path": f"{IMMUTABLE_EXT}:card", "value": {"serial": "S3"}}):
        with pytest.raises(Mutability):
            run(doc, op)
