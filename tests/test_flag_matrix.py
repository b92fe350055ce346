"""The `aadOptscim062020` matrix: every row, sent in the default
(legacy) shape and in the flagged shape, reaches the same end state on both stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import (
    ENTERPRISE,
    USER_SCHEMA,
    FunctionClient,
    HttpClient,
    Result,
)

DEFAULT = "default"
FLAGGED = "aadOptscim062020"
DIALECTS = [DEFAULT, FLAGGED]
FLAG_PARAM = {FLAGGED: ""}

Ops = Callable[[dict[str, str]], list[dict[str, Any]]]


def patch(client: FunctionClient, path: str, dialect: str, ops: list[dict[str, Any]]
          ) -> Result:
    """PATCH as that kind of job would: a flagged tenant URL may forward the flag."""
    return client.patch_ops(path, *ops, params=FLAG_PARAM if dialect == FLAGGED else None)


def user_state(client: FunctionClient, user_id: str) -> dict[str, Any]:
    """The client-visible attributes of a user (server-owned id and meta left out)."""
    result = client.get(f"/Users/{user_id}")
    assert result.status == 200, result.body
    return {k: v for k, v in result.json.items() if k not in ("id", "meta")}


def new_user(client: FunctionClient) -> dict[str, Any]:
    return client.create_user(
        "anna.lindqvist@contoso.example", externalId="a.lindqvist", active=True,
        displayName="Anna Lindqvist",
        name={"givenName": "Ann", "familyName": "Lindqvist"},
        emails=[{"type": "work", "value": "anna.lindqvist@contoso.example", "primary": True}],
        **{ENTERPRISE: {"employeeNumber": "100482", "department": "Facilities"}})


BASE_STATE: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENTERPRISE],
    "externalId": "a.lindqvist",
    "userName": "anna.lindqvist@contoso.example",
    "active": True,
    "displayName": "Anna Lindqvist",
    "name": {"givenName": "Ann", "familyName": "Lindqvist"},
    "emails": [{"type": "work", "value": "anna.lindqvist@contoso.example", "primary": True}],
    ENTERPRISE: {"employeeNumber": "100482", "department": "Facilities"},
}


# -- row: op casing -------------------------------------------------------------------------

CASING: dict[str, Ops] = {
    DEFAULT: lambda _: [{"op": "Add", "path": "title", "value": "Planner"},
                        {"op": "Replace", "path": "displayName", "value": "Anna L."},
                        {"op": "Remove", "path": "name.givenName"}],
    FLAGGED: lambda _: [{"op": "add", "path": "title", "value": "Planner"},
                        {"op": "replace", "path": "displayName", "value": "Anna L."},
                        {"op": "remove", "path": "name.givenName"}],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_op_casing(client: FunctionClient, dialect: str) -> None:
    """Add/Replace/Remove and add/replace/remove reach the same end state."""
    user = new_user(client)
    assert patch(client, f"/Users/{user['id']}", dialect, CASING[dialect]({})).status == 200
    assert user_state(client, user["id"]) == {
        **BASE_STATE, "title": "Planner", "displayName": "Anna L.",
        "name": {"familyName": "Lindqvist"}}


# -- row: disable user ----------------------------------------------------------------------

DISABLE: dict[str, Ops] = {
    DEFAULT: lambda _: [{"op": "Replace", "path": "active", "value": "False"}],
    FLAGGED: lambda _: [{"op": "replace", "path": "active", "value": False}],
}
ENABLE: dict[str, Ops] = {
    DEFAULT: lambda _: [{"op": "Replace", "path": "active", "value": "True"}],
    FLAGGED: lambda _: [{"op": "replace", "path": "active", "value": True}],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_disable_and_enable_user(client: FunctionClient, dialect: str) -> None:
    """Disable ("False" string vs false) gives active false; enable gives true; user kept."""
    user = new_user(client)
    assert patch(client, f"/Users/{user['id']}", dialect, DISABLE[dialect]({})).status == 200
    assert user_state(client, user["id"]) == {**BASE_STATE, "active": False}
    found = client.get("/Users", params={"filter": 'userName eq "anna.lindqvist@contoso.example"'})
    assert [r["id"] for r in found.json["Resources"]] == [user["id"]]
    assert patch(client, f"/Users/{user['id']}", dialect, ENABLE[dialect]({})).status == 200
    assert user_state(client, user["id"]) == BASE_STATE


# -- row: add a single-valued string --------------------------------------------------------

ADD_STRING: dict[str, Ops] = {
    DEFAULT: lambda _: [{"op": "Add", "path": "nickName", "value": "Babs"}],
    FLAGGED: lambda _: [{"op": "add", "path": "nickName", "value": "Babs"}],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_add_single_valued_string(client: FunctionClient, dialect: str) -> None:
    """Add/add of nickName sets it (add on a single-valued attribute = set)."""
    user = new_user(client)
    assert patch(client, f"/Users/{user['id']}", dialect, ADD_STRING[dialect]({})).status == 200
    assert user_state(client, user["id"]) == {**BASE_STATE, "nickName": "Babs"}


# -- row: replace several attributes --------------------------------------------------------

REPLACE_SEVERAL: dict[str, Ops] = {
    DEFAULT: lambda _: [
        {"op": "Replace", "path": "userName", "value": "anna.l@contoso.example"},
        {"op": "Replace", "path": "displayName", "value": "Anna L."},
        {"op": "Replace", "path": "name.givenName", "value": "Anna"},
        {"op": "Replace", "path": "name.familyName", "value": "Lindqvist-Berg"},
        {"op": "Replace", "path": 'emails[type eq "work"].value',
         "value": "anna.l@contoso.example"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "100483"},
        {"op": "Replace", "path": 'addresses[type eq "work"].formatted', "value": "Building 5"},
    ],
    FLAGGED: lambda _: [
        {"op": "replace", "path": 'emails[type eq "work"].value',
         "value": "anna.l@contoso.example"},
        {"op": "replace", "path": 'addresses[type eq "work"].formatted', "value": "Building 5"},
        {"op": "replace", "value": {
            "userName": "anna.l@contoso.example",
            "displayName": "Anna L.",
            "name.givenName": "Anna",
            "name.familyName": "Lindqvist-Berg",
            f"{ENTERPRISE}:employeeNumber": "100483",
        }},
    ],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_replace_several_attributes(client: FunctionClient, dialect: str) -> None:
    """One op per attribute vs value-path ops plus one path-less object: same resource."""
    user = new_user(client)
    result = patch(client, f"/Users/{user['id']}", dialect, REPLACE_SEVERAL[dialect]({}))
    assert result.status == 200, result.body
    assert user_state(client, user["id"]) == {
        **BASE_STATE,
        "userName": "anna.l@contoso.example",
        "displayName": "Anna L.",
        "name": {"givenName": "Anna", "familyName": "Lindqvist-Berg"},
        "emails": [{"type": "work", "value": "anna.l@contoso.example", "primary": True}],
        "addresses": [{"type": "work", "formatted": "Building 5"}],
        ENTERPRISE: {"employeeNumber": "100483", "department": "Facilities"},
    }
    found = client.get("/Users", params={"filter": 'userName eq "ANNA.L@contoso.example"'})
    assert [r["id"] for r in found.json["Resources"]] == [user["id"]]


# -- row: remove one group member -----------------------------------------------------------

REMOVE_MEMBER: dict[str, Ops] = {
    DEFAULT: lambda ids: [{"op": "Remove", "path": "members", "value": [{"value": ids["b"]}]}],
    FLAGGED: lambda ids: [{"op": "remove", "path": f'members[value eq "{ids["b"]}"]'}],
}
ADD_MEMBERS: dict[str, Ops] = {
    DEFAULT: lambda ids: [{"op": "Add", "path": "members",
                           "value": [{"value": ids["a"]}, {"value": ids["b"]},
                                     {"value": ids["c"]}]}],
    FLAGGED: lambda ids: [{"op": "add", "path": "members",
                           "value": [{"value": ids["a"]}, {"value": ids["b"]},
                                     {"value": ids["c"]}]}],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_remove_one_group_member(client: FunctionClient, dialect: str) -> None:
    """Both remove shapes take out exactly one member and never empty the group."""
    ids = {k: client.create_user(f"{k}@contoso.example")["id"] for k in "abc"}
    group = client.create_group("Facilities Team")
    path = f"/Groups/{group['id']}"
    assert patch(client, path, dialect, ADD_MEMBERS[dialect](ids)).status == 204
    assert patch(client, path, dialect, REMOVE_MEMBER[dialect](ids)).status == 204
    members = client.get(path).json["members"]
    assert sorted(m["value"] for m in members) == sorted([ids["a"], ids["c"]])


# -- row: roles -----------------------------------------------------------------------------

ROLE_STRING = json.dumps({"id": "5e1c8b3a-0000-4000-8000-000000000001", "value": "Admin",
                          "displayName": "Admin"})
ROLES: dict[str, list[dict[str, Any]]] = {
    DEFAULT: [{"value": ROLE_STRING}],
    FLAGGED: [{"primary": True, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin",
               "value": "Admin"}],
}
ROLE_OPS: dict[str, Ops] = {
    DEFAULT: lambda _: [{"op": "Add", "path": "roles", "value": ROLES[DEFAULT]}],
    FLAGGED: lambda _: [{"op": "replace", "path": "roles", "value": ROLES[FLAGGED]}],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_roles_are_stored_verbatim(client: FunctionClient, dialect: str) -> None:
    """Roles as a JSON-encoded string (default) or as objects (flagged) are kept as sent."""
    user = new_user(client)
    assert patch(client, f"/Users/{user['id']}", dialect, ROLE_OPS[dialect]({})).status == 200
    assert user_state(client, user["id"]) == {**BASE_STATE, "roles": ROLES[dialect]}


# -- provision on demand and the flag itself ------------------------------------------------


@pytest.mark.parametrize("row", ["disable", "remove-member"])
def test_default_shapes_still_work_on_a_flagged_tenant_url(client: FunctionClient,
                                                           row: str) -> None:
    """Provision on demand ignores the flag: default shapes on a flagged URL still work."""
    ids = {k: client.create_user(f"{k}@contoso.example")["id"] for k in "abc"}
    if row == "disable":
        result = client.patch_ops(f"/Users/{ids['a']}", *DISABLE[DEFAULT]({}), params=FLAG_PARAM)
        assert result.status == 200 and result.json["active"] is False
        return
    group = client.create_group("Team", members=[{"value": v} for v in ids.values()])
    result = client.patch_ops(f"/Groups/{group['id']}", *REMOVE_MEMBER[DEFAULT](ids),
                              params=FLAG_PARAM)
    assert result.status == 204
    members = client.get(f"/Groups/{group['id']}").json["members"]
    assert sorted(m["value"] for m in members) == sorted([ids["a"], ids["c"]])


def test_flag_and_unknown_query_parameters_are_ignored_on_every_route(
        client: FunctionClient) -> None:
    """?aadOptscim062020 (and any unknown parameter) never changes or breaks an answer."""
    extra = {FLAGGED: "", "someOtherParam": "1"}
    created = client.post("/Users", {"schemas": [USER_SCHEMA], "userName": "flag@x.example"},
                          params=extra)
    assert created.status == 201, created.body
    user_id = created.json["id"]
    for path in ("/Users", f"/Users/{user_id}", "/Groups", "/ServiceProviderConfig",
                 "/Schemas", "/ResourceTypes", "/ResourceTypes/User"):
        assert client.get(path, params=extra).status == 200, path
    found = client.get("/Users", params={**extra, "filter": 'userName eq "flag@x.example"'})
    assert found.json["totalResults"] == 1
    group = client.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                    "displayName": "Flagged"}, params=extra)
    assert group.status == 201
    assert client.patch_ops(f"/Groups/{group.json['id']}",
                            {"op": "add", "path": "members", "value": [{"value": user_id}]},
                            params=extra).status == 204
    assert client.put(f"/Users/{user_id}", {"userName": "flag@x.example"},
                      params=extra).status == 200
    assert client.delete(f"/Groups/{group.json['id']}", params=extra).status == 204
    assert client.delete(f"/Users/{user_id}", params=extra).status == 204


def test_bare_flag_on_the_wire_is_ignored(http_client: HttpClient) -> None:
    """A bare ?aadOptscim062020 (no '=') over real HTTP is ignored like any unknown parameter."""
    user = http_client.create_user("wire@x.example")
    result = http_client.get(f"/Users?{FLAGGED}&filter=userName+eq+%22wire%40x.example%22")
    assert result.status == 200
    assert [r["id"] for r in result.json["Resources"]] == [user["id"]]
    patched = http_client.patch_ops(f"/Users/{user['id']}?{FLAGGED}",
                                    *DISABLE[FLAGGED]({}))
    assert patched.status == 200 and patched.json["active"] is False
