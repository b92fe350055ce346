"""PATCH on groups: member adds and both remove shapes (Entra's shapes), net MemberChange."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scim_core.errors import InvalidPath, InvalidValue, Mutability, ScimError, ServiceUnavailable
from scim_core.patch import PatchResult, apply_patch, member_change_alone
from scim_core.schema import Registry, ResourceType
from scim_core.store.base import Member, MemberChange

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
U1 = "7d3f0c2e-5b1a-4c8e-9f6a-2b4d8e1c0a97"
U2 = "b81e4a55-0c3d-4f6e-9a27-3d5c1e8f0b64"
U3 = "0a1b2c3d-0000-4000-8000-000000000003"

REGISTRY = Registry.default()


def _resource_type(name: str) -> ResourceType:
    rt = REGISTRY.resource_type(name)
    assert rt is not None
    return rt


GROUP = _resource_type("Group")


def base_group() -> dict[str, Any]:
    return {"displayName": "Facilities Team", "externalId": "0d4c1e9a-33b8-4a3e-9a61-5f7c2b8e4d20"}


class Loader:
    """A load_members stand-in that counts its calls."""

    def __init__(self, *members: Member) -> None:
        self.members = list(members)
        self.calls = 0

    def __call__(self) -> list[Member]:
        self.calls += 1
        return list(self.members)


def run(*ops: dict[str, Any], loader: Loader | None = None,
        doc: dict[str, Any] | None = None) -> PatchResult:
    body = {"schemas": [PATCH_OP], "Operations": list(ops)}
    document = base_group() if doc is None else doc
    before = copy.deepcopy(document)
    result = apply_patch(REGISTRY, GROUP, document, body, load_members=loader)
    assert document == before
    assert "members" not in result.document
    return result


def fails(*ops: dict[str, Any], loader: Loader | None = None) -> ScimError:
    with pytest.raises(ScimError) as caught:
        run(*ops, loader=loader)
    assert caught.value.status == 400
    return caught.value


# -- add ----------------------------------------------------------------------------


def test_4_4_add_members_body() -> None:
    """Add with a list of members ($ref null allowed) adds exactly those ids."""
    result = run({"op": "Add", "path": "members",
                  "value": [{"$ref": None, "value": U1}, {"value": U2}]})
    assert result.members == MemberChange(add=(Member(U1), Member(U2)))
    assert result.document == base_group()


def test_4_4_add_keeps_display_and_ignores_ref_and_type() -> None:
    """Display is carried; $ref and type do not matter."""
    result = run({"op": "add", "path": "members", "value": [
        {"value": U1, "display": "Anna", "$ref": "https://x/Users/1", "type": "User"}]})
    assert result.members.add == (Member(U1, "Anna"),)


def test_4_4_add_single_object_and_member_key_case() -> None:
    """A single member object (any key case) is accepted."""
    assert run({"op": "add", "path": "Members", "value": {"Value": U1}}).members.add == (
        Member(U1),)


def test_4_4_duplicates_in_one_add_collapse() -> None:
    """An id listed twice is added once."""
    result = run({"op": "add", "path": "members", "value": [{"value": U1}, {"value": U1}]},
                 {"op": "add", "path": "members", "value": [{"value": U1}]})
    assert result.members.add == (Member(U1),)


def test_4_4_pathless_add_members() -> None:
    """A path-less add with a members key adds them."""
    assert run({"op": "add", "value": {"members": [{"value": U1}]}}).members.add == (Member(U1),)


@pytest.mark.parametrize("value", [
    [{"value": ""}], [{"value": "  "}], [{"display": "x"}], [{"value": 5}], [{"value": None}],
    ["plain-id"], [[U1]], 7, "id", [{"value": U1, "display": 3}],
])
def test_4_4_bad_member_values_rejected(value: Any) -> None:
    """A member without a non-empty string value is 400 invalidValue."""
    assert isinstance(fails({"op": "add", "path": "members", "value": value}), InvalidValue)


def test_4_4_member_ids_not_checked_here() -> None:
    """Member ids are passed on unchecked (the service verifies them) and nothing is loaded."""
    loader = Loader()
    assert run({"op": "add", "path": "members", "value": [{"value": "no-such-user"}]},
               loader=loader).members.add == (Member("no-such-user"),)
    assert loader.calls == 0


# -- remove -------------------------------------------------------------------------


def test_4_5_legacy_remove_removes_only_listed() -> None:
    """Entra's legacy removal: Remove + path members + value list removes exactly those ids."""
    result = run({"op": "Remove", "path": "members", "value": [{"value": U1}]})
    assert result.members == MemberChange(remove=(U1,))
    assert not result.members.remove_all


def test_4_5_legacy_remove_single_object_and_many() -> None:
    """The legacy value may be one object or many; the group is never emptied."""
    assert run({"op": "remove", "path": "members", "value": {"value": U1}}).members == (
        MemberChange(remove=(U1,)))
    result = run({"op": "Remove", "path": "members",
                  "value": [{"value": U1}, {"value": U2, "display": "x"}]})
    assert result.members == MemberChange(remove=(U1, U2))


def test_4_5_flagged_remove_by_filter_without_loading() -> None:
    """Remove members[value eq "id"] removes that id without loading members."""
    loader = Loader(Member(U2))
    result = run({"op": "remove", "path": f'members[value eq "{U1}"]'}, loader=loader)
    assert result.members == MemberChange(remove=(U1,))
    assert loader.calls == 0


def test_4_5_flagged_remove_filter_any_case() -> None:
    """The attribute, sub-attribute and operator names in the filter are case-free."""
    result = run({"op": "remove", "path": f'Members[Value EQ "{U1}"]'})
    assert result.members == MemberChange(remove=(U1,))


@pytest.mark.parametrize("value", ["absent", None, []])
def test_4_5_remove_without_value_removes_all(value: Any) -> None:
    """§4.5 / RFC: remove path members with no (or an empty) value removes every member."""
    op: dict[str, Any] = {"op": "remove", "path": "members"}
    if value != "absent":
        op["value"] = value
    assert run(op).members == MemberChange(remove_all=True)


def test_4_5_other_filters_use_loaded_members() -> None:
    """Filters other than value eq are evaluated against load_members (once)."""
    loader = Loader(Member(U1, "Anna"), Member(U2, "Bo"), Member(U3, "anna"))
    result = run({"op": "remove", "path": 'members[display eq "ANNA"]'},
                 {"op": "remove", "path": f'members[value eq "{U2}" or value eq "nobody"]'},
                 loader=loader)
    assert result.members == MemberChange(remove=(U1, U3, U2))
    assert loader.calls == 1


def test_4_5_type_filter_matches_no_stored_member() -> None:
    """Stored members carry no type, so members[type eq "User"] removes nothing."""
    loader = Loader(Member(U1))
    assert not run({"op": "remove", "path": 'members[type eq "User"]'}, loader=loader).members


def test_4_5_filter_without_loader_is_invalid_path() -> None:
    """A filter that needs the member list fails with invalidPath when none can be loaded."""
    assert isinstance(fails({"op": "remove", "path": 'members[display eq "x"]'}), InvalidPath)


def test_4_5_remove_non_member_is_harmless() -> None:
    """Removing a non-member yields a plain remove the store ignores, never remove_all."""
    result = run({"op": "remove", "path": 'members[value eq "ghost"]'})
    assert result.members == MemberChange(remove=("ghost",))


# -- net effect of several operations ----------------------------------------------------


def test_net_add_then_remove_is_not_added() -> None:
    """add x then remove x: x ends up removed, not added."""
    result = run({"op": "add", "path": "members", "value": [{"value": U1}, {"value": U2}]},
                 {"op": "remove", "path": f'members[value eq "{U1}"]'})
    assert result.members == MemberChange(remove=(U1,), add=(Member(U2),))


def test_net_remove_then_add_is_added() -> None:
    """remove x then add x: x ends up a member."""
    result = run({"op": "remove", "path": "members", "value": [{"value": U1}]},
                 {"op": "add", "path": "members", "value": [{"value": U1}]})
    assert result.members == MemberChange(add=(Member(U1),))


def test_net_remove_all_then_add() -> None:
    """remove all then add y: remove_all plus add y."""
    result = run({"op": "add", "path": "members", "value": [{"value": U1}]},
                 {"op": "remove", "path": "members"},
                 {"op": "add", "path": "members", "value": [{"value": U2}]},
                 {"op": "remove", "path": f'members[value eq "{U3}"]'})
    assert result.members == MemberChange(remove_all=True, add=(Member(U2),))


def test_replace_members_is_remove_all_plus_add() -> None:
    """replace members with a list clears the group and adds the list."""
    result = run({"op": "replace", "path": "members", "value": [{"value": U1}]})
    assert result.members == MemberChange(remove_all=True, add=(Member(U1),))
    assert run({"op": "replace", "path": "members", "value": []}).members == MemberChange(
        remove_all=True)
    assert run({"op": "replace", "value": {"members": [{"value": U2}]}}).members == (
        MemberChange(remove_all=True, add=(Member(U2),)))


def test_filter_sees_earlier_operations() -> None:
    """A loaded-member filter sees members added and removed earlier in the request."""
    loader = Loader(Member(U1, "x"), Member(U2, "x"))
    result = run({"op": "remove", "path": f'members[value eq "{U2}"]'},
                 {"op": "add", "path": "members", "value": [{"value": U3, "display": "x"}]},
                 {"op": "remove", "path": 'members[display eq "x"]'}, loader=loader)
    assert result.members == MemberChange(remove=(U2, U1, U3))


@pytest.mark.parametrize("op", [
    {"op": "replace", "path": f'members[value eq "{U1}"]', "value": {"display": "x"}},
    {"op": "add", "path": f'members[value eq "{U1}"]', "value": {"value": U1}},
    {"op": "replace", "path": "members.display", "value": "x"},
    {"op": "remove", "path": f'members[value eq "{U1}"].display'},
])
def test_member_paths_other_than_whole_members_are_invalid_path(op: dict[str, Any]) -> None:
    """Member sub-attributes and filtered add/replace are 400 invalidPath."""
    assert isinstance(fails(op), InvalidPath)


def test_atomic_member_failure_discards_everything() -> None:
    """A failing operation after member edits fails the whole request."""
    error = fails({"op": "add", "path": "members", "value": [{"value": U1}]},
                  {"op": "replace", "path": "displayName", "value": "New"},
                  {"op": "add", "path": "members", "value": [{"value": ""}]})
    assert "Operations[2]" in error.detail


# -- rename and other attributes ----------------------------------------------------


def test_4_6_legacy_rename() -> None:
    """Replace displayName renames the group without member edits."""
    result = run({"op": "Replace", "path": "displayName", "value": "Facilities & Estates"})
    assert result.document["displayName"] == "Facilities & Estates"
    assert not result.members


def test_4_6_pathless_rename_and_external_id() -> None:
    """Path-less replace objects rename and set externalId."""
    result = run({"op": "replace", "value": {"displayName": "Facilities & Estates"}},
                 {"op": "replace", "value": {"externalId": "new-object-id"}})
    assert result.document == {"displayName": "Facilities & Estates",
                               "externalId": "new-object-id"}


def test_group_display_name_is_required() -> None:
    """Removing or emptying a group's displayName is a 400."""
    assert isinstance(fails({"op": "remove", "path": "displayName"}), Mutability)
    assert isinstance(fails({"op": "replace", "path": "displayName", "value": ""}), InvalidValue)


def test_group_unknown_attribute_verbatim() -> None:
    """Unknown group attributes are kept verbatim, beside member edits."""
    result = run({"op": "add", "value": {"description": "d", "members": [{"value": U1}]}})
    assert result.document["description"] == "d"
    assert result.members.add == (Member(U1),)


def test_group_read_only_paths() -> None:
    """id and meta cannot be patched on groups either."""
    assert isinstance(fails({"op": "replace", "path": "id", "value": "x"}), Mutability)
    assert isinstance(fails({"op": "remove", "path": "meta.version"}), Mutability)


def test_storage_fault_while_loading_members_propagates_unchanged() -> None:
    """A 503 from load_members is not turned into a client error."""

    def broken() -> list[Member]:
        raise ServiceUnavailable("storage down", retry_after=7)

    with pytest.raises(ServiceUnavailable) as caught:
        apply_patch(REGISTRY, GROUP, base_group(),
                    {"Operations": [{"op": "remove", "path": 'members[display eq "x"]'}]},
                    load_members=broken)
    assert caught.value.retry_after == 7
    assert caught.value.detail == "storage down"


# -- member edits that need no stored group ----------------------------------------------

def _body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


@pytest.mark.parametrize("ops", [
    [{"op": "Add", "path": "members", "value": [{"value": U1}, {"value": U2}]}],
    [{"op": "Remove", "path": f'members[value eq "{U1}"]'}],
    [{"op": "Remove", "path": "members", "value": [{"value": U1}]}],
    [{"op": "add", "path": "Members", "value": [{"value": U1, "display": "Ann"}]},
     {"op": "remove", "path": f'members[value eq "{U2}"]'},
     {"op": "remove", "path": "members", "value": [{"value": U1}]}],
])
def test_member_only_patches_are_planned_without_the_group(ops: list[dict[str, Any]]) -> None:
    """Adding and removing listed members plans the same change with or without the stored
    group (Entra's member PATCH needs no read)."""
    change = member_change_alone(REGISTRY, GROUP, _body(*ops))
    assert change is not None and change == run(*ops, loader=Loader()).members


@pytest.mark.parametrize("ops", [
    [{"op": "replace", "path": "displayName", "value": "X"}],
    [{"op": "add", "path": "members", "value": [{"value": U1}]},
     {"op": "replace", "path": "displayName", "value": "X"}],
    [{"op": "add", "value": {"members": [{"value": U1}]}}],
    [{"op": "replace", "path": "members", "value": [{"value": U1}]}],
    [{"op": "remove", "path": "members"}],
    [{"op": "remove", "path": 'members[display eq "Ann"]'}],
    [{"op": "add", "path": "members", "value": [{"value": 7}]}],
    [{"op": "add", "path": "members.value", "value": U1}],
    [{"op": "add", "path": "members", "value": []}],
    [{"op": "frobnicate", "path": "members", "value": [{"value": U1}]}],
])
def test_patches_that_need_the_group_are_not_planned_without_it(
        ops: list[dict[str, Any]]) -> None:
    """Other attributes, path-less values, replacing or clearing all members, filters on
    other sub-attributes and invalid operations need the stored group (or its 404 first)."""
    assert member_change_alone(REGISTRY, GROUP, _body(*ops)) is None


def test_user_patches_are_never_planned_without_the_user() -> None:
    """Only groups have members; a user PATCH and a body without operations need the read."""
    user = _resource_type("User")
    ops = {"op": "add", "path": "members", "value": [{"value": U1}]}
    assert member_change_alone(REGISTRY, user, _body(ops)) is None
    assert member_change_alone(REGISTRY, GROUP, {"schemas": [PATCH_OP]}) is None
