"""Entra user lifecycle, request by request as Entra sends them, through
function_app.py on both stores, on /scim/v2 and on a registered tenant's URL."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from tests.support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    USER_SCHEMA,
    FunctionClient,
    HttpClient,
    assert_scim_error,
    nulls,
)

ON_TENANT_URLS = True
"""Every ``client`` test runs on /scim/v2 and on a tenant URL (tests/conftest.py)."""

MANAGER = f"{ENTERPRISE}:manager"

ENTRA_POST: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENTERPRISE],
    "externalId": "a.lindqvist",
    "userName": "anna.lindqvist@contoso.example",
    "active": True,
    "displayName": "Anna Lindqvist",
    "title": "Facilities Planner",
    "emails": [{"primary": True, "type": "work", "value": "anna.lindqvist@contoso.example"}],
    "name": {"formatted": "Anna Lindqvist", "givenName": "Anna", "familyName": "Lindqvist"},
    "addresses": [{"type": "work", "formatted": "Building 4, Floor 2"}],
    "phoneNumbers": [{"type": "work", "value": "+46 8 555 0100"}],
    ENTERPRISE: {"employeeNumber": "100482", "department": "Facilities",
                 "division": "Operations"},
    "meta": {"resourceType": "User"},
    "roles": [],
}


def entra_user(client: FunctionClient, user_name: str = "anna.lindqvist@contoso.example",
               **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ENTRA_POST)
    body["userName"] = user_name
    body.update(changes)
    result = client.post("/Users", body)
    assert result.status == 201, result.body
    return dict(result.json)


def find(client: FunctionClient, filter_text: str, **params: str) -> dict[str, Any]:
    result = client.get("/Users", params={"filter": filter_text, **params})
    assert result.status == 200, result.body
    assert result.json["schemas"] == [LIST_RESPONSE]
    return dict(result.json)


def ids(listing: dict[str, Any]) -> list[str]:
    return [r["id"] for r in listing["Resources"]]


def get(client: FunctionClient, user_id: str) -> dict[str, Any]:
    result = client.get(f"/Users/{user_id}")
    assert result.status == 200, result.body
    return dict(result.json)


def patched(client: FunctionClient, user_id: str, *ops: dict[str, Any]) -> dict[str, Any]:
    """PATCH, expect 200 with the full resource, and check GET returns the same resource."""
    result = client.patch_ops(f"/Users/{user_id}", *ops)
    assert result.status == 200, result.body
    assert result.json == get(client, user_id)
    return dict(result.json)


def empty_list() -> dict[str, Any]:
    return {"schemas": [LIST_RESPONSE], "totalResults": 0, "startIndex": 1,
            "itemsPerPage": 0, "Resources": []}


# -- Test Connection -------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["userName", "externalId"])
def test_test_connection_probe_answers_empty_list_response(client: FunctionClient,
                                                           attribute: str) -> None:
    """A random-GUID userName/externalId probe answers 200 with an exact empty ListResponse."""
    entra_user(client)
    result = client.get("/Users", params={"filter": f'{attribute} eq "{uuid.uuid4()}"'})
    assert result.status == 200
    assert (result.header("Content-Type") or "").startswith("application/scim+json")
    assert result.json == empty_list()


# -- match before create ---------------------------------------------------------------


def test_username_match_is_case_insensitive(client: FunctionClient) -> None:
    """userName eq matches whatever the letter case of the stored or queried value."""
    user = entra_user(client, "Anna.Lindqvist@Contoso.example")
    entra_user(client, "other@contoso.example", externalId="other")
    for value in ("anna.lindqvist@contoso.example", "ANNA.LINDQVIST@CONTOSO.EXAMPLE"):
        listing = find(client, f'userName eq "{value}"')
        assert listing["totalResults"] == 1 and listing["itemsPerPage"] == 1
        assert listing["startIndex"] == 1
        assert ids(listing) == [user["id"]]
        assert listing["Resources"][0]["userName"] == "Anna.Lindqvist@Contoso.example"


def test_external_id_match_is_case_exact(client: FunctionClient) -> None:
    """externalId eq matches the exact value only (caseExact=true)."""
    user = entra_user(client, externalId="a.Lindqvist")
    assert ids(find(client, 'externalId eq "a.Lindqvist"')) == [user["id"]]
    assert find(client, 'externalId eq "A.LINDQVIST"')["totalResults"] == 0
    assert find(client, 'externalId eq "a.lindqvist"')["totalResults"] == 0


def test_work_email_value_path_match(client: FunctionClient) -> None:
    """emails[type eq "work"].value eq finds the user by its work email, in any case."""
    user = entra_user(client)
    entra_user(client, "home@contoso.example", externalId="home",
               emails=[{"type": "home", "value": "shared@contoso.example"}])
    listing = find(client, 'emails[type eq "work"].value eq "ANNA.LINDQVIST@contoso.example"')
    assert ids(listing) == [user["id"]]
    assert find(client, 'emails[type eq "work"].value eq "shared@contoso.example"'
                )["totalResults"] == 0


def test_bare_token_value_is_accepted_as_a_string(client: FunctionClient) -> None:
    """The old-docs filter externalId eq jyoung (unquoted) matches externalId "jyoung"."""
    user = entra_user(client, "jyoung@contoso.example", externalId="jyoung")
    entra_user(client, externalId="someone-else")
    assert ids(find(client, "externalId eq jyoung")) == [user["id"]]


@pytest.mark.parametrize("query", [
    "filter=userName+eq+%22Jo.Young%40contoso.example%22",
    "filter=userName%20eq%20%22jo.young%40contoso.example%22",
    "filter=externalId+eq+%22johnwong%22",
])
def test_url_encoded_filter_is_decoded_by_the_host(http_client: HttpClient, query: str) -> None:
    """A filter sent with + or %20 for spaces (as Entra does) is decoded and matches."""
    user = http_client.create_user("jo.young@contoso.example", externalId="johnwong")
    http_client.create_user("someone@contoso.example", externalId="someone")
    result = http_client.get(f"/Users?{query}")
    assert result.status == 200, result.body
    assert [r["id"] for r in result.json["Resources"]] == [user["id"]]


# -- create ----------------------------------------------------------------------------


def test_entra_create_body_is_stored_and_echoed_verbatim(client: FunctionClient) -> None:
    """Entra's POST gets 201, Location, ETag and every attribute back exactly as sent."""
    result = client.post("/Users", ENTRA_POST)
    assert result.status == 201, result.body
    user = result.json
    assert result.header("Location") == f"{client.base}/Users/{user['id']}"
    assert result.header("ETag") == user["meta"]["version"]
    for key, value in ENTRA_POST.items():
        if key not in ("schemas", "meta", "roles"):
            assert user[key] == value, key
    assert user["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert "roles" not in user
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["location"] == result.header("Location")
    assert user["meta"]["created"] and user["meta"]["lastModified"]
    assert get(client, user["id"]) == user


def test_create_tolerates_nulls_misspelled_schema_and_string_boolean(
        client: FunctionClient) -> None:
    """nulls are absent, an unknown schema URI is ignored and "active": "True" is true."""
    body = copy.deepcopy(ENTRA_POST)
    body["schemas"] = [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"]
    body.update({"active": "True", "nickName": None, "title": None,
                 "name": {"givenName": "Anna", "familyName": None, "formatted": None},
                 "meta": {"resourceType": "User", "created": "2001-01-01T00:00:00Z"},
                 "id": "client-chosen"})
    body[ENTERPRISE] = {"department": "Facilities", "division": None}
    result = client.post("/Users", body)
    assert result.status == 201, result.body
    user = result.json
    assert user["active"] is True
    assert user["name"] == {"givenName": "Anna"}
    assert user[ENTERPRISE] == {"department": "Facilities"}
    assert "nickName" not in user and "title" not in user
    assert user["id"] != "client-chosen"
    assert user["meta"]["created"] != "2001-01-01T00:00:00Z"
    assert nulls(user) == []
    assert get(client, user["id"]) == user


def test_custom_extension_not_listed_in_schemas_is_kept(client: FunctionClient) -> None:
    """Attributes under an undeclared custom extension URN are stored and echoed back."""
    urn = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User"
    extension: dict[str, Any] = {urn: {"costCode": "CC-17", "badge": "B2"}}
    user = entra_user(client, **extension)
    assert user[urn] == {"costCode": "CC-17", "badge": "B2"}
    assert urn in user["schemas"]
    assert get(client, user["id"])[urn] == {"costCode": "CC-17", "badge": "B2"}


@pytest.mark.parametrize("taken", ["anna.lindqvist@contoso.example",
                                   "ANNA.Lindqvist@CONTOSO.example"])
def test_duplicate_username_is_409_uniqueness(client: FunctionClient, taken: str) -> None:
    """A second POST with a taken userName (any case) gets 409 uniqueness and creates nothing."""
    first = entra_user(client)
    result = client.post("/Users", {**ENTRA_POST, "userName": taken, "externalId": "other"})
    assert_scim_error(result, 409, "uniqueness")
    listing = client.get("/Users").json
    assert listing["totalResults"] == 1 and ids(listing) == [first["id"]]


@pytest.mark.parametrize("user_name", [None, "", "   "])
def test_missing_or_empty_username_is_400(client: FunctionClient, user_name: str | None) -> None:
    """A POST without a usable userName gets 400 invalidValue and creates nothing."""
    body = {k: v for k, v in ENTRA_POST.items() if k != "userName"}
    if user_name is not None:
        body["userName"] = user_name
    assert_scim_error(client.post("/Users", body), 400, "invalidValue")
    assert client.get("/Users").json["totalResults"] == 0


# -- read ------------------------------------------------------------------------------


def test_get_user_by_id_returns_the_full_resource(client: FunctionClient) -> None:
    """GET /Users/{id} answers 200 with the resource, its ETag equal to meta.version."""
    user = entra_user(client)
    result = client.get(f"/Users/{user['id']}")
    assert result.status == 200
    assert result.json == user
    assert result.header("ETag") == user["meta"]["version"]


def test_get_unknown_user_is_404_scim_error(client: FunctionClient) -> None:
    """GET of an id that does not exist answers 404 with a SCIM error body."""
    assert_scim_error(client.get(f"/Users/{uuid.uuid4()}"), 404)


# -- PATCH -----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Replace", "replace", "REPLACE"])
def test_patch_op_is_case_insensitive(client: FunctionClient, op: str) -> None:
    """(a) Replace, replace and REPLACE all apply."""
    user = entra_user(client)
    result = patched(client, user["id"], {"op": op, "path": "displayName", "value": "A. L."})
    assert result["displayName"] == "A. L."


def test_legacy_single_valued_replaces(client: FunctionClient) -> None:
    """(b) One Replace per attribute, incl. dotted and URN paths, all land; 200 + resource."""
    user = entra_user(client)
    result = patched(
        client, user["id"],
        {"op": "Replace", "path": "userName", "value": "anna.l@contoso.example"},
        {"op": "Replace", "path": "displayName", "value": "Anna L."},
        {"op": "Replace", "path": "name.givenName", "value": "Anna"},
        {"op": "Replace", "path": "name.familyName", "value": "Lindqvist-Berg"},
        {"op": "Replace", "path": "externalId", "value": "a.lindqvist2"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "100483"},
    )
    assert result["userName"] == "anna.l@contoso.example"
    assert result["displayName"] == "Anna L."
    assert result["name"] == {"formatted": "Anna Lindqvist", "givenName": "Anna",
                              "familyName": "Lindqvist-Berg"}
    assert result["externalId"] == "a.lindqvist2"
    assert result[ENTERPRISE]["employeeNumber"] == "100483"
    assert result[ENTERPRISE]["department"] == "Facilities"
    assert ids(find(client, 'userName eq "anna.l@contoso.example"')) == [user["id"]]
    assert find(client, 'userName eq "anna.lindqvist@contoso.example"')["totalResults"] == 0
    assert ids(find(client, 'externalId eq "a.lindqvist2"')) == [user["id"]]


def test_rename_onto_taken_username_is_409_and_changes_nothing(client: FunctionClient) -> None:
    """(b) A userName rename onto another user's name (any case) is 409; nothing applies."""
    entra_user(client, "taken@contoso.example", externalId="t")
    user = entra_user(client)
    result = client.patch_ops(
        f"/Users/{user['id']}",
        {"op": "Replace", "path": "displayName", "value": "Changed"},
        {"op": "Replace", "path": "userName", "value": "TAKEN@contoso.example"})
    assert_scim_error(result, 409, "uniqueness")
    assert get(client, user["id"]) == user


@pytest.mark.parametrize("op", ["Add", "add"])
def test_add_on_single_valued_attribute_sets_it(client: FunctionClient, op: str) -> None:
    """(c) Add on a single-valued attribute sets it, and replaces an existing value."""
    user = entra_user(client)
    assert patched(client, user["id"], {"op": op, "path": "nickName", "value": "Babs"}
                   )["nickName"] == "Babs"
    assert patched(client, user["id"], {"op": op, "path": "nickName", "value": "Bobby"}
                   )["nickName"] == "Bobby"


def test_filtered_value_path_updates_the_work_element_in_place(client: FunctionClient) -> None:
    """(d) emails/addresses[type eq "work"] sub-attributes change in place, nothing else."""
    user = entra_user(client, emails=[
        {"type": "work", "value": "anna.lindqvist@contoso.example", "primary": True},
        {"type": "home", "value": "anna@home.example"}])
    result = patched(
        client, user["id"],
        {"op": "Replace", "path": 'emails[type eq "work"].value',
         "value": "anna.l@contoso.example"},
        {"op": "replace", "path": 'emails[type eq "work"].primary', "value": True},
        {"op": "Replace", "path": 'addresses[type eq "work"].formatted', "value": "Building 5"})
    assert result["emails"] == [
        {"type": "work", "value": "anna.l@contoso.example", "primary": True},
        {"type": "home", "value": "anna@home.example"}]
    assert result["addresses"] == [{"type": "work", "formatted": "Building 5"}]
    assert ids(find(client, 'emails[type eq "work"].value eq "anna.l@contoso.example"')
               ) == [user["id"]]


@pytest.mark.parametrize("op", ["Replace", "add", "replace", "Add"])
def test_filtered_value_path_creates_the_missing_work_element(client: FunctionClient,
                                                              op: str) -> None:
    """(d) A value path whose work element is missing creates it (never a literal key)."""
    user = client.create_user("bare@contoso.example",
                              emails=[{"type": "home", "value": "bare@home.example"}])
    result = patched(
        client, user["id"],
        {"op": op, "path": 'emails[type eq "work"].value', "value": "bare@contoso.example"},
        {"op": op, "path": 'addresses[type eq "work"].formatted', "value": "Building 9"},
        {"op": op, "path": 'addresses[type eq "work"].locality', "value": "Stockholm"},
        {"op": op, "path": 'phoneNumbers[type eq "mobile"].value', "value": "+46 70 555 0101"})
    assert result["emails"] == [{"type": "home", "value": "bare@home.example"},
                                {"type": "work", "value": "bare@contoso.example"}]
    assert result["addresses"] == [{"type": "work", "formatted": "Building 9",
                                    "locality": "Stockholm"}]
    assert result["phoneNumbers"] == [{"type": "mobile", "value": "+46 70 555 0101"}]
    assert not [k for k in result if "[" in k or ("." in k and not k.startswith("urn:"))]


@pytest.mark.parametrize("path", [f"{ENTERPRISE}:department", f"{ENTERPRISE}.department"])
def test_enterprise_extension_path_sets_the_nested_attribute(client: FunctionClient,
                                                             path: str) -> None:
    """(e) urn:…:User:department (and the pre-2018 dotted form) lands under the URN."""
    user = client.create_user("ext@contoso.example")
    result = patched(client, user["id"], {"op": "Add", "path": path, "value": "Facilities"})
    assert result[ENTERPRISE] == {"department": "Facilities"}
    assert ENTERPRISE in result["schemas"]
    assert not [k for k in result if k.startswith(ENTERPRISE) and k != ENTERPRISE]


MANAGER_SHAPES = {
    "entra-string": lambda m, base: {"op": "add", "path": MANAGER, "value": m},
    "validator-object": lambda m, base: {"op": "replace", "path": MANAGER, "value": {"value": m}},
    "legacy-Add-string": lambda m, base: {"op": "Add", "path": MANAGER, "value": m},
    "2018-list-with-ref": lambda m, base: {"op": "Add", "path": "manager",
                                           "value": [{"$ref": f"{base}/Users/{m}", "value": m}]},
    "pathless-urn-key": lambda m, base: {"op": "replace", "value": {MANAGER: m}},
    "pathless-extension-object": lambda m, base: {"op": "add",
                                                  "value": {ENTERPRISE: {"manager": m}}},
}


@pytest.mark.parametrize("shape", sorted(MANAGER_SHAPES))
def test_manager_is_accepted_in_every_shape_and_returned_as_object(client: FunctionClient,
                                                                   shape: str) -> None:
    """(f) Every manager PATCH shape stores the id and returns manager as an object."""
    boss = client.create_user("boss@contoso.example")
    user = entra_user(client)
    result = patched(client, user["id"], MANAGER_SHAPES[shape](boss["id"], client.base))
    manager = result[ENTERPRISE]["manager"]
    assert isinstance(manager, dict) and manager["value"] == boss["id"]
    assert result[ENTERPRISE]["department"] == "Facilities"
    assert "manager" not in result


MANAGER_REMOVALS = {
    "entra-filter": lambda m: {"op": "remove", "path": f'manager[value eq "{m}"]'},
    "urn-remove": lambda m: {"op": "remove", "path": MANAGER},
    "legacy-Remove": lambda m: {"op": "Remove", "path": MANAGER},
    "replace-empty-string": lambda m: {"op": "replace", "path": MANAGER, "value": ""},
}


@pytest.mark.parametrize("shape", sorted(MANAGER_REMOVALS))
def test_manager_removal_forms_clear_the_manager(client: FunctionClient, shape: str) -> None:
    """(f) Every manager removal form clears it and keeps the other enterprise attributes."""
    boss = client.create_user("boss@contoso.example")
    user = entra_user(client)
    patched(client, user["id"], {"op": "add", "path": MANAGER, "value": boss["id"]})
    result = patched(client, user["id"], MANAGER_REMOVALS[shape](boss["id"]))
    assert "manager" not in result[ENTERPRISE]
    assert result[ENTERPRISE]["department"] == "Facilities"
    assert "manager" not in result


@pytest.mark.parametrize("attribute", ["manager", "manager.value", MANAGER, f"{MANAGER}.value"])
def test_manager_reference_check_query(client: FunctionClient, attribute: str) -> None:
    """id eq "u" and manager eq "m" &attributes=id: 1 id-only hit when it matches, else 0."""
    boss = client.create_user("boss@contoso.example")
    other = client.create_user("other@contoso.example")
    user = entra_user(client)
    patched(client, user["id"], {"op": "add", "path": MANAGER, "value": boss["id"]})
    hit = find(client, f'id eq "{user["id"]}" and {attribute} eq "{boss["id"]}"',
               attributes="id")
    assert hit["totalResults"] == 1
    assert hit["Resources"] == [{"schemas": [USER_SCHEMA, ENTERPRISE], "id": user["id"]}]
    miss = find(client, f'id eq "{user["id"]}" and {attribute} eq "{other["id"]}"',
                attributes="id")
    assert miss == empty_list()


def test_pathless_replace_with_dotted_and_urn_keys(client: FunctionClient) -> None:
    """(g) The flagged path-less object: keys are paths (dotted, URN); all land, no literals."""
    user = entra_user(client)
    result = patched(
        client, user["id"],
        {"op": "replace", "path": 'emails[type eq "work"].value',
         "value": "anna.l@contoso.example"},
        {"op": "replace", "value": {
            "displayName": "Anna L.",
            "name.givenName": "Anna",
            "name.familyName": "Lindqvist-Berg",
            f"{ENTERPRISE}:employeeNumber": "100483",
            "active": False,
            "userName": "anna.l@contoso.example",
        }})
    assert result["displayName"] == "Anna L."
    assert result["name"] == {"formatted": "Anna Lindqvist", "givenName": "Anna",
                              "familyName": "Lindqvist-Berg"}
    assert result[ENTERPRISE] == {"employeeNumber": "100483", "department": "Facilities",
                                  "division": "Operations"}
    assert result["active"] is False
    assert result["userName"] == "anna.l@contoso.example"
    assert result["emails"] == [{"primary": True, "type": "work",
                                 "value": "anna.l@contoso.example"}]
    assert not [k for k in result if "[" in k or ("." in k and not k.startswith("urn:"))]
    assert not [k for k in result[ENTERPRISE] if ":" in k or "." in k]


def test_pathless_replace_with_nested_objects_merges(client: FunctionClient) -> None:
    """(g) RFC-style nested objects in a path-less replace merge into the resource."""
    user = entra_user(client)
    result = patched(client, user["id"], {"op": "replace", "value": {
        "name": {"givenName": "Annie"},
        ENTERPRISE: {"department": "Estates"},
        'emails[type eq "work"].value': "annie@contoso.example"}})
    assert result["name"] == {"formatted": "Anna Lindqvist", "givenName": "Annie",
                              "familyName": "Lindqvist"}
    assert result[ENTERPRISE] == {"employeeNumber": "100482", "department": "Estates",
                                  "division": "Operations"}
    assert result["emails"][0]["value"] == "annie@contoso.example"


@pytest.mark.parametrize(("value", "expected"), [
    ("False", False), ("false", False), ("FALSE", False), (False, False),
    ("True", True), ("true", True), (" TRUE ", True), (True, True)])
def test_boolean_strings_in_any_case_become_json_booleans(client: FunctionClient,
                                                          value: Any, expected: bool) -> None:
    """(h) active and emails[..].primary accept true/false strings in any case, stored as bools."""
    user = entra_user(client, active=not expected,
                      emails=[{"type": "work", "value": "a@contoso.example",
                               "primary": not expected}])
    result = patched(client, user["id"],
                     {"op": "Replace", "path": "active", "value": value},
                     {"op": "Replace", "path": 'emails[type eq "work"].primary', "value": value})
    assert result["active"] is expected
    assert result["emails"][0]["primary"] is expected


def test_multiple_operations_apply_in_order(client: FunctionClient) -> None:
    """(i) Several operations on the same attribute apply in order."""
    user = entra_user(client)
    result = patched(client, user["id"],
                     {"op": "Replace", "path": "displayName", "value": "First"},
                     {"op": "Replace", "path": "displayName", "value": "Second"},
                     {"op": "Add", "path": "nickName", "value": "Nick"},
                     {"op": "Remove", "path": "nickName"},
                     {"op": "Add", "path": "title", "value": "Lead"})
    assert result["displayName"] == "Second"
    assert "nickName" not in result
    assert result["title"] == "Lead"


def test_operations_are_atomic(client: FunctionClient) -> None:
    """(i) When one operation fails, none of the request's operations is applied."""
    user = entra_user(client)
    result = client.patch_ops(f"/Users/{user['id']}",
                              {"op": "Replace", "path": "displayName", "value": "Changed"},
                              {"op": "Replace", "path": "userName", "value": "new@x.example"},
                              {"op": "Replace", "path": "active", "value": "maybe"})
    assert_scim_error(result, 400, "invalidValue")
    assert get(client, user["id"]) == user
    assert ids(find(client, 'userName eq "anna.lindqvist@contoso.example"')) == [user["id"]]


def test_legacy_roles_json_string_value_is_stored_verbatim(client: FunctionClient) -> None:
    """(j) Legacy roles Add whose value is a JSON-encoded string is stored and echoed as is."""
    user = entra_user(client)
    role = '{"id":"5e1c8b3a-0000-4000-8000-000000000001","value":"Admin","displayName":"Admin"}'
    result = patched(client, user["id"],
                     {"op": "Add", "path": "roles", "value": [{"value": role}]})
    assert result["roles"] == [{"value": role}]


def test_flagged_roles_replace_with_objects_is_stored(client: FunctionClient) -> None:
    """(j) Flagged roles replace with full role objects stores them (primary as a bool)."""
    user = entra_user(client)
    roles = [{"primary": "True", "type": "WindowsAzureActiveDirectoryRole",
              "display": "Admin", "value": "Admin"}]
    result = patched(client, user["id"], {"op": "replace", "path": "roles", "value": roles})
    assert result["roles"] == [{**roles[0], "primary": True}]


# -- disable ---------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "value"), [("Replace", "False"), ("Replace", False),
                                           ("replace", "False"), ("replace", False)])
def test_disable_keeps_the_user_readable_and_findable(client: FunctionClient, op: str,
                                                      value: Any) -> None:
    """active=false in all four shapes: 200 with active false; GET and filters still find it."""
    user = entra_user(client)
    result = client.patch_ops(f"/Users/{user['id']}", {"op": op, "path": "active", "value": value})
    assert result.status == 200, result.body
    assert result.json["active"] is False
    assert get(client, user["id"])["active"] is False
    listing = find(client, 'userName eq "anna.lindqvist@contoso.example"')
    assert ids(listing) == [user["id"]] and listing["Resources"][0]["active"] is False
    assert ids(find(client, 'externalId eq "a.lindqvist"')) == [user["id"]]
    assert ids(find(client, "active eq false")) == [user["id"]]


@pytest.mark.parametrize(("op", "value"), [("Replace", "True"), ("replace", True),
                                           ("Replace", "true")])
def test_reenable_sets_active_true(client: FunctionClient, op: str, value: Any) -> None:
    """Re-enable is the same PATCH with True/"True": the user is active again."""
    user = entra_user(client)
    patched(client, user["id"], {"op": "Replace", "path": "active", "value": "False"})
    result = patched(client, user["id"], {"op": op, "path": "active", "value": value})
    assert result["active"] is True
    assert ids(find(client, "active eq true")) == [user["id"]]


# -- hard delete -----------------------------------------------------------------------


def test_delete_is_204_then_404(client: FunctionClient) -> None:
    """DELETE answers 204 without a body; the user is gone; a second DELETE is 404."""
    user = entra_user(client)
    keep = client.create_user("keep@contoso.example")
    result = client.delete(f"/Users/{user['id']}")
    assert result.status == 204 and result.body == b""
    assert_scim_error(client.get(f"/Users/{user['id']}"), 404)
    assert find(client, 'userName eq "anna.lindqvist@contoso.example"') == empty_list()
    assert_scim_error(client.delete(f"/Users/{user['id']}"), 404)
    assert ids(client.get("/Users").json) == [keep["id"]]


def test_delete_removes_the_user_from_every_group(client: FunctionClient) -> None:
    """A deleted user disappears from the members of every group it belonged to."""
    user = entra_user(client)
    other = client.create_user("other@contoso.example")
    groups = [client.create_group(name, members=[{"value": user["id"]}, {"value": other["id"]}])
              for name in ("Facilities", "Estates")]
    assert client.delete(f"/Users/{user['id']}").status == 204
    for group in groups:
        members = client.get(f"/Groups/{group['id']}").json["members"]
        assert [m["value"] for m in members] == [other["id"]]
        check = client.get("/Groups", params={
            "filter": f'id eq "{group["id"]}" and members[value eq "{user["id"]}"]',
            "excludedAttributes": "members"})
        assert check.json["totalResults"] == 0
    assert client.get("/Groups", params={"filter": f'members eq "{other["id"]}"'}
                      ).json["totalResults"] == 2
    assert GROUP_SCHEMA in groups[0]["schemas"]


def test_write_responses_leave_groups_out_unless_asked(client: FunctionClient) -> None:
    """PUT and PATCH of a user answer without ``groups`` (no extra read), GET shows them,
    and a write that asks for them with ``attributes=groups`` gets them."""
    user = client.create_user("grouped@x.example")["id"]
    group = client.create_group("G", members=[{"value": user}])["id"]
    patched = client.patch_ops(f"/Users/{user}", {"op": "replace", "path": "displayName",
                                                  "value": "G1"})
    put = client.put(f"/Users/{user}", {"schemas": [USER_SCHEMA], "userName": "grouped@x.example"})
    assert patched.status == put.status == 200
    assert "groups" not in patched.json and "groups" not in put.json
    assert [g["value"] for g in client.get(f"/Users/{user}").json["groups"]] == [group]
    asked = client.patch_ops(f"/Users/{user}", {"op": "replace", "path": "displayName",
                                                "value": "G2"}, params={"attributes": "groups"})
    assert [g["value"] for g in asked.json["groups"]] == [group]
