"""Discovery endpoints (RFC 7644 §4, RFC 7643 §5–7) through function_app.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scim_core.store import Store
from tests.conftest import make_api
from tests.support import (
    BASE,
    ENTERPRISE,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    USER_SCHEMA,
    FunctionClient,
    assert_scim_error,
    nulls,
    use_api,
)

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
TYPES = {"string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex"}
MUTABILITY = {"readOnly", "readWrite", "immutable", "writeOnly"}
RETURNED = {"always", "never", "default", "request"}
UNIQUENESS = {"none", "server", "global"}
ACME = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
ACME_SCHEMA: dict[str, Any] = {
    "id": ACME, "name": "AcmeUser", "description": "Acme badge data", "resourceType": "User",
    "attributes": [
        {"name": "badgeNumber", "type": "integer", "multiValued": False, "required": False,
         "description": "Badge number"},
        {"name": "contractor", "type": "boolean", "description": "Contractor?"},
        {"name": "site", "type": "string", "caseExact": False, "description": "Site"},
    ],
}


def discovery(client: FunctionClient, path: str) -> dict[str, Any]:
    result = client.get(path, token=None)
    assert result.status == 200, result.body
    assert (result.header("Content-Type") or "").startswith("application/scim+json")
    assert nulls(result.json) == []
    return dict(result.json)


def check_attribute(attr: dict[str, Any], where: str) -> None:
    """Every RFC 7643 §7 characteristic is present with an allowed value."""
    assert isinstance(attr["name"], str) and attr["name"], where
    assert attr["type"] in TYPES, where
    for key in ("multiValued", "required", "caseExact"):
        assert isinstance(attr[key], bool), (where, key)
    assert isinstance(attr["description"], str), where
    assert attr["mutability"] in MUTABILITY, where
    assert attr["returned"] in RETURNED, where
    assert attr["uniqueness"] in UNIQUENESS, where
    if attr["type"] == "complex":
        assert attr["subAttributes"], where
        for sub in attr["subAttributes"]:
            assert "subAttributes" not in sub, where
            check_attribute(sub, f"{where}.{sub['name']}")
    else:
        assert "subAttributes" not in attr, where


def test_service_provider_config_tells_the_truth(memory_client: FunctionClient) -> None:
    """ServiceProviderConfig: patch, filter, sort, etag on; bulk, changePassword off; bearer."""
    spc = discovery(memory_client, "/ServiceProviderConfig")
    assert spc["schemas"] == [SPC_SCHEMA]
    assert spc["patch"] == {"supported": True}
    assert spc["bulk"]["supported"] is False
    assert spc["filter"] == {"supported": True, "maxResults": 1000}
    assert spc["sort"] == {"supported": True}
    assert spc["etag"] == {"supported": True}
    assert spc["changePassword"] == {"supported": False}
    schemes = spc["authenticationSchemes"]
    assert [s["type"] for s in schemes] == ["oauthbearertoken"]
    assert schemes[0]["name"] and schemes[0]["description"]
    assert spc["meta"] == {"resourceType": "ServiceProviderConfig",
                           "location": f"{BASE}/ServiceProviderConfig"}


def test_service_provider_config_follows_the_settings(any_store: Store) -> None:
    """maxResults, page sizes and the payload limit advertised are the ones enforced."""
    use_api(make_api(any_store, max_results=2, default_page_size=1, max_body_bytes=2048))
    client = FunctionClient()
    spc = discovery(client, "/ServiceProviderConfig")
    assert spc["filter"]["maxResults"] == 2
    assert spc["pagination"]["maxPageSize"] == 2 and spc["pagination"]["defaultPageSize"] == 1
    assert spc["bulk"]["maxPayloadSize"] == 2048
    for i in range(3):
        client.create_user(f"spc{i}@x.example")
    assert client.get("/Users", params={"count": "10"}).json["itemsPerPage"] == 2
    assert client.get("/Users").json["itemsPerPage"] == 1
    big = {"userName": "big@x.example", "padding": "x" * 2048}
    assert_scim_error(client.post("/Users", big), 413)


def test_schemas_lists_the_three_schemas(memory_client: FunctionClient) -> None:
    """/Schemas is a ListResponse of User, EnterpriseUser and Group with RFC 7643 §7 fields."""
    listing = discovery(memory_client, "/Schemas")
    assert listing["schemas"] == [LIST_RESPONSE]
    assert listing["totalResults"] == listing["itemsPerPage"] == 3
    assert listing["startIndex"] == 1
    by_id = {s["id"]: s for s in listing["Resources"]}
    assert set(by_id) == {USER_SCHEMA, ENTERPRISE, GROUP_SCHEMA}
    for urn, schema in by_id.items():
        assert schema["schemas"] == [SCHEMA_SCHEMA]
        assert schema["name"] and isinstance(schema["description"], str)
        assert schema["meta"] == {"resourceType": "Schema", "location": f"{BASE}/Schemas/{urn}"}
        for attr in schema["attributes"]:
            check_attribute(attr, f"{urn}:{attr['name']}")
    user_attrs = {a["name"]: a for a in by_id[USER_SCHEMA]["attributes"]}
    assert user_attrs["userName"]["required"] is True
    assert user_attrs["userName"]["uniqueness"] == "server"
    assert user_attrs["userName"]["caseExact"] is False
    assert user_attrs["active"]["type"] == "boolean"
    assert user_attrs["password"]["returned"] == "never"
    manager = next(a for a in by_id[ENTERPRISE]["attributes"] if a["name"] == "manager")
    assert manager["type"] == "complex" and manager["multiValued"] is False
    group_attrs = {a["name"]: a for a in by_id[GROUP_SCHEMA]["attributes"]}
    assert group_attrs["displayName"]["required"] is True
    assert group_attrs["members"]["multiValued"] is True


def _all_attributes(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for attr in schema["attributes"]:
        found.append((attr["name"], attr))
        found.extend((f"{attr['name']}.{s['name']}", s) for s in attr.get("subAttributes", ()))
    return found


def test_reference_attributes_declare_reference_types(memory_client: FunctionClient) -> None:
    """Every attribute of type reference lists its referenceTypes (RFC 7643 §7)."""
    missing = [f"{schema['id']}:{name}"
               for schema in discovery(memory_client, "/Schemas")["Resources"]
               for name, attr in _all_attributes(schema)
               if attr["type"] == "reference" and not attr.get("referenceTypes")]
    assert missing == []


@pytest.mark.parametrize("urn", [USER_SCHEMA, ENTERPRISE, GROUP_SCHEMA])
def test_schema_by_urn(memory_client: FunctionClient, urn: str) -> None:
    """/Schemas/{urn} returns that schema, the same document as in the list."""
    schema = discovery(memory_client, f"/Schemas/{urn}")
    assert schema["id"] == urn
    listed = next(s for s in discovery(memory_client, "/Schemas")["Resources"] if s["id"] == urn)
    assert schema == listed


def test_resource_types(memory_client: FunctionClient) -> None:
    """/ResourceTypes lists User (with the enterprise extension) and Group."""
    listing = discovery(memory_client, "/ResourceTypes")
    assert listing["schemas"] == [LIST_RESPONSE] and listing["totalResults"] == 2
    by_name = {rt["name"]: rt for rt in listing["Resources"]}
    assert set(by_name) == {"User", "Group"}
    user = discovery(memory_client, "/ResourceTypes/User")
    assert user == by_name["User"]
    assert user["schemas"] == [RESOURCE_TYPE_SCHEMA]
    assert user["id"] == "User" and user["endpoint"] == "/Users"
    assert user["schema"] == USER_SCHEMA
    assert user["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert user["meta"] == {"resourceType": "ResourceType",
                            "location": f"{BASE}/ResourceTypes/User"}
    group = discovery(memory_client, "/ResourceTypes/Group")
    assert group["endpoint"] == "/Groups" and group["schema"] == GROUP_SCHEMA
    assert group.get("schemaExtensions", []) == []


@pytest.mark.parametrize("path", ["/Schemas/urn:nope:Thing", "/ResourceTypes/Device",
                                  "/Schemas/a/b", "/ServiceProviderConfig/extra",
                                  "/ResourceTypes/User/extra"])
def test_unknown_discovery_documents_are_404(memory_client: FunctionClient, path: str) -> None:
    """Unknown schemas, resource types or deeper paths are 404 SCIM errors."""
    assert_scim_error(memory_client.get(path, token=None), 404)


def test_discovery_needs_no_token_but_resources_do(memory_client: FunctionClient) -> None:
    """Discovery GETs work without a token; /Users and /Groups still need one."""
    for path in ("/ServiceProviderConfig", "/Schemas", "/ResourceTypes",
                 f"/Schemas/{USER_SCHEMA}", "/ResourceTypes/Group"):
        assert memory_client.get(path, token=None).status == 200, path
        assert memory_client.get(path, token="wrong-token").status == 200, path
    assert_scim_error(memory_client.get("/Users", token=None), 401)
    assert_scim_error(memory_client.get("/Groups", token=None), 401)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_discovery_is_read_only(memory_client: FunctionClient, method: str) -> None:
    """Writes to discovery endpoints are 405 with Allow: GET (and need a token first)."""
    for path in ("/Schemas", "/ServiceProviderConfig", "/ResourceTypes/User"):
        result = memory_client.request(method, path, {"x": 1})
        assert_scim_error(result, 405)
        assert result.header("Allow") == "GET"
        assert_scim_error(memory_client.request(method, path, {"x": 1}, token=None), 401)


# -- a configured extension schema ----------------------------------------------------------


@pytest.fixture
def acme_client(any_store: Store) -> FunctionClient:
    """An API configured with SCIM_EXTENSION_SCHEMAS holding the Acme user extension."""
    use_api(make_api(any_store, extension_schemas=json.dumps([ACME_SCHEMA])))
    return FunctionClient()


def test_configured_extension_is_discoverable(acme_client: FunctionClient) -> None:
    """A configured extension appears in /Schemas, /Schemas/{urn} and the User type."""
    listing = discovery(acme_client, "/Schemas")
    assert listing["totalResults"] == 4
    acme = discovery(acme_client, f"/Schemas/{ACME}")
    assert acme["name"] == "AcmeUser"
    assert [a["name"] for a in acme["attributes"]] == ["badgeNumber", "contractor", "site"]
    for attr in acme["attributes"]:
        check_attribute(attr, attr["name"])
    user_type = discovery(acme_client, "/ResourceTypes/User")
    assert {"schema": ACME, "required": False} in user_type["schemaExtensions"]
    assert not discovery(acme_client, "/ResourceTypes/Group").get("schemaExtensions")


def test_configured_extension_attributes_are_validated(acme_client: FunctionClient) -> None:
    """Extension values are type-checked and coerced on POST, PATCH and in filters."""
    created = acme_client.post("/Users", {
        "schemas": [USER_SCHEMA, ACME], "userName": "acme@x.example",
        ACME: {"badgeNumber": 42, "contractor": "True", "site": "HQ"}})
    assert created.status == 201, created.body
    assert created.json[ACME] == {"badgeNumber": 42, "contractor": True, "site": "HQ"}
    assert ACME in created.json["schemas"]
    path = f"/Users/{created.json['id']}"
    patched = acme_client.patch_ops(path, {"op": "Replace", "path": f"{ACME}:contractor",
                                           "value": "False"})
    assert patched.status == 200 and patched.json[ACME]["contractor"] is False
    for bad in ({"badgeNumber": "forty-two"}, {"contractor": "maybe"}, {"site": 7}):
        result = acme_client.post("/Users", {"userName": "bad@x.example", ACME: bad})
        assert_scim_error(result, 400, "invalidValue")
    before = acme_client.get(path).json
    assert_scim_error(acme_client.patch_ops(path, {"op": "replace", "path": f"{ACME}:badgeNumber",
                                                   "value": "x"}), 400, "invalidValue")
    assert acme_client.get(path).json == before
    hits = acme_client.get("/Users", params={"filter": f"{ACME}:badgeNumber gt 40"}).json
    assert [r["id"] for r in hits["Resources"]] == [created.json["id"]]
    assert acme_client.get("/Users", params={"filter": f'{ACME}:site eq "hq"'}
                           ).json["totalResults"] == 1
    assert acme_client.get("/Users", params={"filter": f"{ACME}:badgeNumber lt 40"}
                           ).json["totalResults"] == 0
