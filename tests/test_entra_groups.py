"""Entra group lifecycle, request by request as Entra sends them, through function_app.py on both
stores, on /scim/v2 and on a registered tenant's URL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.support import (
    GROUP_SCHEMA,
    LIST_RESPONSE,
    FunctionClient,
    assert_scim_error,
)

ON_TENANT_URLS = True
"""Every ``client`` test runs on /scim/v2 and on a tenant URL (tests/conftest.py)."""

ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
ADSCIM_PRE_2018 = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group"


def users(client: FunctionClient, count: int) -> list[str]:
    return [client.create_user(f"member{i}@contoso.example", displayName=f"Member {i}")["id"]
            for i in range(count)]


def get(client: FunctionClient, group_id: str, **params: str) -> dict[str, Any]:
    result = client.get(f"/Groups/{group_id}", params=params or None)
    assert result.status == 200, result.body
    return dict(result.json)


def member_ids(client: FunctionClient, group_id: str) -> list[str]:
    return sorted(m["value"] for m in get(client, group_id).get("members", []))


def patch_204(client: FunctionClient, group_id: str, *ops: dict[str, Any]) -> None:
    result = client.patch_ops(f"/Groups/{group_id}", *ops)
    assert result.status == 204, result.body
    assert result.body == b""


def search(client: FunctionClient, filter_text: str, **params: str) -> dict[str, Any]:
    result = client.get("/Groups", params={"filter": filter_text, **params})
    assert result.status == 200, result.body
    assert result.json["schemas"] == [LIST_RESPONSE]
    return dict(result.json)


# -- match -----------------------------------------------------------------------------


def test_group_probe_answers_empty_list_response(client: FunctionClient) -> None:
    """The Test Connection group probe (random GUID displayName) gets an empty ListResponse."""
    client.create_group("Facilities Team")
    result = client.get("/Groups", params={"excludedAttributes": "members",
                                           "filter": f'displayName eq "{uuid.uuid4()}"'})
    assert result.status == 200
    assert result.json == {"schemas": [LIST_RESPONSE], "totalResults": 0, "startIndex": 1,
                           "itemsPerPage": 0, "Resources": []}


@pytest.mark.parametrize("name", ["Facilities Team", "facilities team", "FACILITIES TEAM"])
def test_match_by_display_name_is_case_insensitive_and_excludes_members(
        client: FunctionClient, name: str) -> None:
    """displayName eq matches in any case, and excludedAttributes=members drops the key."""
    member = users(client, 1)
    group = client.create_group("Facilities Team", externalId="0d4c1e9a",
                                members=[{"value": member[0]}])
    client.create_group("Other Team")
    listing = search(client, f'displayName eq "{name}"', excludedAttributes="members")
    assert listing["totalResults"] == 1 and listing["itemsPerPage"] == 1
    found = listing["Resources"][0]
    assert found["id"] == group["id"]
    assert "members" not in found
    assert found["schemas"] == [GROUP_SCHEMA]
    assert found["displayName"] == "Facilities Team" and found["externalId"] == "0d4c1e9a"
    assert found["meta"]["resourceType"] == "Group"
    assert found["meta"]["location"] == f"{client.base}/Groups/{group['id']}"


# -- create ----------------------------------------------------------------------------


@pytest.mark.parametrize("schemas", [[GROUP_SCHEMA, ADSCIM], [ADSCIM_PRE_2018]],
                         ids=["core+adscim", "pre-2018-adscim-only"])
def test_create_group_with_microsoft_schema_uri(client: FunctionClient,
                                                schemas: list[str]) -> None:
    """Entra's group POST (with the ADSCIM URI) gets 201, Location, ETag and no members."""
    result = client.post("/Groups", {"schemas": schemas, "externalId": "0d4c1e9a-33b8",
                                     "displayName": "Facilities Team",
                                     "meta": {"resourceType": "Group"}})
    assert result.status == 201, result.body
    group = result.json
    assert result.header("Location") == f"{client.base}/Groups/{group['id']}"
    assert result.header("ETag") == group["meta"]["version"]
    assert group["schemas"] == [GROUP_SCHEMA]
    assert group["displayName"] == "Facilities Team"
    assert group["externalId"] == "0d4c1e9a-33b8"
    assert group.get("members", []) == []
    assert group["meta"]["resourceType"] == "Group"
    assert get(client, group["id"]) == group


def test_create_group_with_members_in_post(client: FunctionClient) -> None:
    """Groups created with members in the POST (Postman suite) hold exactly those members."""
    a, b = users(client, 2)
    result = client.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "With Members",
                                     "members": [{"value": a}, {"value": b, "display": "B"}]})
    assert result.status == 201, result.body
    expected = sorted([
        {"value": a, "$ref": f"{client.base}/Users/{a}", "type": "User"},
        {"value": b, "$ref": f"{client.base}/Users/{b}", "type": "User", "display": "B"}],
        key=lambda m: m["value"])
    assert sorted(result.json["members"], key=lambda m: m["value"]) == expected
    stored = get(client, result.json["id"])["members"]
    assert sorted(stored, key=lambda m: m["value"]) == expected


@pytest.mark.parametrize("name", ["Facilities Team", "facilities TEAM"])
def test_duplicate_display_name_is_409(client: FunctionClient, name: str) -> None:
    """A second group with the same displayName in any case is 409 uniqueness, nothing made."""
    first = client.create_group("Facilities Team")
    assert_scim_error(client.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": name}),
                      409, "uniqueness")
    listing = client.get("/Groups").json
    assert [g["id"] for g in listing["Resources"]] == [first["id"]]


# -- read ------------------------------------------------------------------------------


def test_get_group_with_and_without_members(client: FunctionClient) -> None:
    """GET returns members as value/$ref/display, and no members key when they're excluded."""
    (a,) = users(client, 1)
    group = client.create_group("Readers", members=[{"value": a, "display": "Member 0"}])
    full = get(client, group["id"])
    assert full["members"] == [{"value": a, "$ref": f"{client.base}/Users/{a}", "type": "User",
                                "display": "Member 0"}]
    trimmed = get(client, group["id"], excludedAttributes="members")
    assert "members" not in trimmed
    assert {k: v for k, v in full.items() if k != "members"} == trimmed


def test_get_unknown_group_is_404(client: FunctionClient) -> None:
    """GET /Groups/{unknown id}, with or without excludedAttributes, is 404."""
    assert_scim_error(client.get(f"/Groups/{uuid.uuid4()}"), 404)
    assert_scim_error(client.get(f"/Groups/{uuid.uuid4()}",
                                 params={"excludedAttributes": "members"}), 404)


# -- add members -----------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Add", "add"])
def test_add_several_members_in_one_operation(client: FunctionClient, op: str) -> None:
    """Add members with $ref null and display: 204, all added; re-adding is a 204 no-op."""
    a, b, c = users(client, 3)
    group = client.create_group("Team")
    value = [{"$ref": None, "value": a}, {"value": b, "display": "Member 1"}, {"value": c}]
    patch_204(client, group["id"], {"op": op, "path": "members", "value": value})
    assert member_ids(client, group["id"]) == sorted([a, b, c])
    before = get(client, group["id"])
    patch_204(client, group["id"], {"op": op, "path": "members", "value": value[:2]})
    after = get(client, group["id"])
    assert after["members"] == before["members"]
    assert len(after["members"]) == 3


def test_unknown_member_ids_are_skipped_and_the_known_ones_added(
        client: FunctionClient, caplog: pytest.LogCaptureFixture) -> None:
    """A member PATCH naming an id that is no user adds the known members, answers 204 and
    logs a warning naming the skipped id; no membership of the unknown id is stored."""
    a, b = users(client, 2)
    group = client.create_group("Team", members=[{"value": a}])
    ghost = str(uuid.uuid4())
    with caplog.at_level("WARNING", logger="scim_core"):
        patch_204(client, group["id"], {"op": "Add", "path": "members",
                                        "value": [{"value": b}, {"value": ghost}]})
    assert member_ids(client, group["id"]) == sorted([a, b])
    assert ghost in caplog.text and "Skipped 1 member" in caplog.text
    assert_scim_error(client.get(f"/Users/{ghost}"), 404)


def test_a_member_patch_of_only_unknown_ids_changes_nothing(client: FunctionClient) -> None:
    """A member PATCH whose every id is unknown answers 204 and leaves the group and its
    version as they were."""
    (a,) = users(client, 1)
    group = client.create_group("Team", members=[{"value": a}])
    before = get(client, group["id"])
    result = client.patch_ops(f"/Groups/{group['id']}", {"op": "Add", "path": "members",
                                                        "value": [{"value": "ghost"}]})
    assert result.status == 204 and result.header("ETag") == before["meta"]["version"]
    assert get(client, group["id"]) == before


@pytest.mark.parametrize("write", ["POST", "PUT", "PATCH with attributes"])
def test_unknown_members_are_skipped_on_every_write(client: FunctionClient, write: str) -> None:
    """POST and PUT of a group, and a PATCH answered with a body, skip member ids that are
    no user of the tenant and store the rest."""
    a, b = users(client, 2)
    members = [{"value": a}, {"value": "ghost-1"}, {"value": b}, {"value": "ghost-2"}]
    if write == "POST":
        result = client.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "T",
                                         "members": members})
        assert result.status == 201, result.body[:300]
    else:
        group = client.create_group("T")["id"]
        if write == "PUT":
            result = client.put(f"/Groups/{group}", {"schemas": [GROUP_SCHEMA],
                                                     "displayName": "T", "members": members})
        else:
            result = client.patch_ops(f"/Groups/{group}",
                                      {"op": "add", "path": "members", "value": members},
                                      params={"attributes": "members"})
        assert result.status == 200, result.body[:300]
    assert sorted(m["value"] for m in result.json["members"]) == sorted([a, b])
    assert member_ids(client, result.json["id"]) == sorted([a, b])


@pytest.mark.parametrize("op", [
    {"op": "Add", "path": "members", "value": [{"value": "USER"}]},
    {"op": "Remove", "path": 'members[value eq "USER"]'},
])
def test_member_patch_of_an_unknown_group_is_404_and_writes_nothing(
        client: FunctionClient, op: dict[str, Any]) -> None:
    """A member PATCH of a group that does not exist (or was deleted) is 404 and leaves no
    membership behind, although Entra's member PATCH is written without reading the group."""
    (a,) = users(client, 1)
    gone = client.create_group("Gone")["id"]
    assert client.delete(f"/Groups/{gone}").status == 204
    for group_id in (gone, str(uuid.uuid4())):
        filled = json.loads(json.dumps(op).replace("USER", a))
        assert_scim_error(client.patch_ops(f"/Groups/{group_id}", filled), 404)
        assert_scim_error(client.get(f"/Groups/{group_id}"), 404)
    assert client.get(f"/Users/{a}").json.get("groups", []) == []


# -- remove members --------------------------------------------------------------------


def test_legacy_remove_with_value_list_removes_only_those(client: FunctionClient) -> None:
    """Legacy Remove + path members + value list removes exactly the listed members."""
    a, b, c = users(client, 3)
    group = client.create_group("Team", members=[{"value": a}, {"value": b}, {"value": c}])
    patch_204(client, group["id"], {"op": "Remove", "path": "members", "value": [{"value": a}]})
    assert member_ids(client, group["id"]) == sorted([b, c])
    patch_204(client, group["id"], {"op": "Remove", "path": "members",
                                    "value": [{"value": b}, {"value": c}]})
    assert member_ids(client, group["id"]) == []


def test_flagged_remove_by_value_filter(client: FunctionClient) -> None:
    """Flagged remove members[value eq "id"] removes only that member."""
    a, b = users(client, 2)
    group = client.create_group("Team", members=[{"value": a}, {"value": b}])
    patch_204(client, group["id"], {"op": "remove", "path": f'members[value eq "{a}"]'})
    assert member_ids(client, group["id"]) == [b]


def test_remove_without_value_removes_all_members(client: FunctionClient) -> None:
    """Remove path members without a value (Postman "remove all users") empties the group."""
    a, b = users(client, 2)
    group = client.create_group("Team", members=[{"value": a}, {"value": b}])
    patch_204(client, group["id"], {"op": "Remove", "path": "members"})
    assert member_ids(client, group["id"]) == []
    assert get(client, group["id"])["displayName"] == "Team"


@pytest.mark.parametrize("shape", ["legacy", "flagged"])
def test_removing_a_non_member_is_a_no_op(client: FunctionClient, shape: str) -> None:
    """Removing a user who is not a member answers 204 and changes nothing."""
    a, b = users(client, 2)
    group = client.create_group("Team", members=[{"value": a}])
    op = ({"op": "Remove", "path": "members", "value": [{"value": b}]} if shape == "legacy"
          else {"op": "remove", "path": f'members[value eq "{b}"]'})
    patch_204(client, group["id"], op)
    assert member_ids(client, group["id"]) == [a]


# -- rename ----------------------------------------------------------------------------


def test_rename_legacy_and_pathless(client: FunctionClient) -> None:
    """Replace displayName (legacy) and path-less displayName/externalId objects: 204, applied."""
    group = client.create_group("Facilities Team")
    patch_204(client, group["id"],
              {"op": "Replace", "path": "displayName", "value": "Facilities & Estates"})
    assert get(client, group["id"])["displayName"] == "Facilities & Estates"
    patch_204(client, group["id"],
              {"op": "replace", "value": {"displayName": "Estates"}},
              {"op": "replace", "value": {"externalId": "0d4c1e9a-33b8"}})
    renamed = get(client, group["id"])
    assert renamed["displayName"] == "Estates" and renamed["externalId"] == "0d4c1e9a-33b8"
    assert search(client, 'displayName eq "estates"')["totalResults"] == 1
    assert search(client, 'displayName eq "Facilities Team"')["totalResults"] == 0


@pytest.mark.parametrize("shape", ["legacy", "pathless"])
def test_rename_onto_existing_name_is_409(client: FunctionClient, shape: str) -> None:
    """Renaming onto another group's displayName (any case) is 409 uniqueness; unchanged."""
    client.create_group("Facilities Team")
    group = client.create_group("Estates")
    op = ({"op": "Replace", "path": "displayName", "value": "FACILITIES team"}
          if shape == "legacy" else {"op": "replace", "value": {"displayName": "facilities team"}})
    before = get(client, group["id"])
    assert_scim_error(client.patch_ops(f"/Groups/{group['id']}", op), 409, "uniqueness")
    assert get(client, group["id"]) == before


# -- membership checks -----------------------------------------------------------------


MEMBERSHIP_FILTERS = {
    "value-path": 'id eq "{g}" and members[value eq "{u}"]',
    "members-eq": 'id eq "{g}" and members eq "{u}"',
    "members.value-eq": 'id eq "{g}" and members.value eq "{u}"',
}


@pytest.mark.parametrize("form", sorted(MEMBERSHIP_FILTERS))
@pytest.mark.parametrize("projection", [{"excludedAttributes": "members"},
                                        {"attributes": "id"}], ids=["excluded", "attributes"])
def test_membership_check(client: FunctionClient, form: str,
                          projection: dict[str, str]) -> None:
    """Membership checks answer 1 (members left out) for a member and 0 for a non-member."""
    member, outsider = users(client, 2)
    group = client.create_group("Team", members=[{"value": member}])
    other = client.create_group("Other", members=[{"value": outsider}])
    template = MEMBERSHIP_FILTERS[form]
    hit = search(client, template.format(g=group["id"], u=member), **projection)
    assert hit["totalResults"] == 1
    assert [g["id"] for g in hit["Resources"]] == [group["id"]]
    assert "members" not in hit["Resources"][0]
    miss = search(client, template.format(g=group["id"], u=outsider), **projection)
    assert miss["totalResults"] == 0 and miss["Resources"] == []
    assert search(client, template.format(g=other["id"], u=outsider), **projection
                  )["totalResults"] == 1


# -- delete ----------------------------------------------------------------------------


def test_delete_group_is_204_then_404(client: FunctionClient) -> None:
    """DELETE a group: 204 without a body, then GET and DELETE are 404; members stay users."""
    (a,) = users(client, 1)
    group = client.create_group("Team", members=[{"value": a}])
    result = client.delete(f"/Groups/{group['id']}")
    assert result.status == 204 and result.body == b""
    assert_scim_error(client.get(f"/Groups/{group['id']}"), 404)
    assert_scim_error(client.delete(f"/Groups/{group['id']}"), 404)
    assert search(client, 'displayName eq "Team"')["totalResults"] == 0
    assert client.get(f"/Users/{a}").status == 200
    assert client.get("/Groups", params={"filter": f'members eq "{a}"'}).json["totalResults"] == 0


# -- one reading of a member list ----------------------------------------------------------


def test_post_put_and_patch_read_duplicate_members_alike(client: FunctionClient) -> None:
    """A member listed twice is one member with the first listing's display, whether it
    arrives by POST, PUT or PATCH."""
    (a,) = users(client, 1)
    twice = [{"value": a, "display": "first"}, {"value": a, "display": "second"}]
    posted = client.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "P",
                                     "members": twice})
    assert posted.status == 201 and posted.json["members"][0]["display"] == "first"
    put = client.put(f"/Groups/{posted.json['id']}", {"schemas": [GROUP_SCHEMA],
                                                      "displayName": "P", "members": twice})
    assert put.status == 200 and [m["display"] for m in put.json["members"]] == ["first"]
    other = client.create_group("Q")["id"]
    patch_204(client, other, {"op": "add", "path": "members", "value": twice})
    assert [m.get("display") for m in get(client, other)["members"]] == ["first"]


@pytest.mark.parametrize("bad", [{"value": ""}, {"value": "   "}, {"value": "x" * 2000},
                                 {"value": 7}, "not-an-object", {"value": "u", "display": 5}])
def test_post_put_and_patch_refuse_a_malformed_member_alike(
        client: FunctionClient, bad: Any) -> None:
    """A blank, over-long or non-string member id (or a non-string display) is 400
    invalidValue by POST, PUT and PATCH alike, and nothing is stored."""
    group = client.create_group("Keep")
    before = get(client, group["id"])
    results = [
        client.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "New",
                                "members": [bad]}),
        client.put(f"/Groups/{group['id']}", {"schemas": [GROUP_SCHEMA], "displayName": "Keep",
                                              "members": [bad]}),
        client.patch_ops(f"/Groups/{group['id']}",
                         {"op": "add", "path": "members", "value": [bad]}),
    ]
    for result in results:
        assert_scim_error(result, 400, "invalidValue")
    assert get(client, group["id"]) == before
    assert [g["displayName"] for g in client.get("/Groups").json["Resources"]] == ["Keep"]
