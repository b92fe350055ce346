"""RFC 7644 (and RFC 9865 cursor) protocol behaviour through function_app.py on both stores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scim_core.kinds import Kind
from scim_core.store import Store
from tests.conftest import make_api
from tests.support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    USER_SCHEMA,
    FunctionClient,
    Result,
    assert_scim_error,
    nulls,
    use_api,
)

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def listing(client: FunctionClient, path: str = "/Users", **params: str) -> dict[str, Any]:
    result = client.get(path, params=params or None)
    assert result.status == 200, result.body
    assert result.json["schemas"] == [LIST_RESPONSE]
    return dict(result.json)


def ids(document: dict[str, Any]) -> list[str]:
    return [r["id"] for r in document["Resources"]]


def user_names(document: dict[str, Any]) -> list[str]:
    return [r["userName"] for r in document["Resources"]]


def get(client: FunctionClient, path: str) -> dict[str, Any]:
    result = client.get(path)
    assert result.status == 200, result.body
    return dict(result.json)


def rich_user(client: FunctionClient, user_name: str = "put@x.example") -> dict[str, Any]:
    return client.create_user(
        user_name, displayName="Old Name", title="Boss", nickName="N", active="True",
        emails=[{"type": "work", "value": user_name, "primary": "true"}],
        **{ENTERPRISE: {"department": "Facilities", "employeeNumber": "7"}})


# -- PUT ------------------------------------------------------------------------------------


def test_put_replaces_and_ignores_server_owned_and_read_only(client: FunctionClient) -> None:
    """PUT replaces the resource: id/meta/readOnly in the body ignored, omitted attrs cleared."""
    user = rich_user(client)
    result = client.put(f"/Users/{user['id']}", {
        "schemas": [USER_SCHEMA], "id": "someone-else", "userName": "put@x.example",
        "displayName": "New Name",
        "meta": {"created": "2000-01-01T00:00:00Z", "version": 'W/"forged"'},
        "groups": [{"value": str(uuid.uuid4())}]})
    assert result.status == 200, result.body
    replaced = result.json
    assert replaced["id"] == user["id"]
    assert replaced["meta"]["created"] == user["meta"]["created"]
    assert replaced["meta"]["version"] not in (user["meta"]["version"], 'W/"forged"')
    assert result.header("ETag") == replaced["meta"]["version"]
    assert {k: v for k, v in replaced.items() if k != "meta"} == {
        "schemas": [USER_SCHEMA], "id": user["id"], "userName": "put@x.example",
        "displayName": "New Name"}
    assert get(client, f"/Users/{user['id']}") == replaced


def test_put_group_replaces_members(client: FunctionClient) -> None:
    """PUT on a group replaces its member list and attributes."""
    a = client.create_user("a@x.example")["id"]
    b = client.create_user("b@x.example")["id"]
    group = client.create_group("Team", externalId="ext", members=[{"value": a}])
    result = client.put(f"/Groups/{group['id']}", {"schemas": [GROUP_SCHEMA],
                                                    "displayName": "Team 2",
                                                    "members": [{"value": b}]})
    assert result.status == 200, result.body
    stored = get(client, f"/Groups/{group['id']}")
    assert [m["value"] for m in stored["members"]] == [b]
    assert stored["displayName"] == "Team 2" and "externalId" not in stored


def test_put_errors_change_nothing(client: FunctionClient) -> None:
    """PUT to an unknown id is 404; onto a taken userName 409; without userName 400."""
    client.create_user("taken@x.example")
    user = rich_user(client)
    assert_scim_error(client.put(f"/Users/{uuid.uuid4()}", {"userName": "z@x.example"}), 404)
    assert_scim_error(client.put(f"/Users/{user['id']}", {"userName": "TAKEN@x.example"}),
                      409, "uniqueness")
    assert_scim_error(client.put(f"/Users/{user['id']}", {"displayName": "No Name"}),
                      400, "invalidValue")
    assert get(client, f"/Users/{user['id']}") == user


# -- ETags and preconditions ----------------------------------------------------------------


def test_etag_header_equals_meta_version_on_every_resource_response(
        client: FunctionClient) -> None:
    """POST, GET, PUT and PATCH answer an ETag equal to meta.version; it moves on change."""
    created = client.post("/Users", {"userName": "etag@x.example"})
    user_id = created.json["id"]
    seen = [created]
    seen.append(client.get(f"/Users/{user_id}"))
    seen.append(client.put(f"/Users/{user_id}", {"userName": "etag@x.example", "title": "T"}))
    seen.append(client.patch_ops(f"/Users/{user_id}",
                                 {"op": "replace", "path": "title", "value": "U"}))
    for result in seen:
        assert result.header("ETag") == result.json["meta"]["version"]
        assert (result.header("ETag") or "").startswith('W/"')
    versions = [r.json["meta"]["version"] for r in seen]
    assert versions[0] == versions[1] and len(set(versions[1:])) == 3
    group = client.create_group("ETags")
    patched = client.patch_ops(f"/Groups/{group['id']}",
                               {"op": "add", "path": "members", "value": [{"value": user_id}]})
    assert patched.status == 204
    assert patched.header("ETag") == get(client, f"/Groups/{group['id']}")["meta"]["version"]
    assert patched.header("ETag") != group["meta"]["version"]


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_if_match_mismatch_is_412_and_changes_nothing(client: FunctionClient,
                                                      method: str) -> None:
    """A stale If-Match on PATCH, PUT or DELETE is 412 and the resource is unchanged."""
    user = rich_user(client)
    path = f"/Users/{user['id']}"
    headers = {"If-Match": 'W/"stale"'}
    if method == "PATCH":
        result = client.patch_ops(path, {"op": "replace", "path": "title", "value": "X"},
                                  headers=headers)
    elif method == "PUT":
        result = client.put(path, {"userName": "put@x.example"}, headers=headers)
    else:
        result = client.delete(path, headers=headers)
    assert_scim_error(result, 412)
    assert get(client, path) == user


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
@pytest.mark.parametrize("tag", ["current", "*", "list"])
def test_if_match_current_or_star_succeeds(client: FunctionClient, method: str,
                                           tag: str) -> None:
    """If-Match with the current version, "*" or a list holding it lets the write through."""
    user = rich_user(client)
    path = f"/Users/{user['id']}"
    version = user["meta"]["version"]
    value = {"current": version, "*": "*", "list": f'W/"other", {version}'}[tag]
    headers = {"If-Match": value}
    if method == "PATCH":
        result = client.patch_ops(path, {"op": "replace", "path": "title", "value": "X"},
                                  headers=headers)
        assert result.status == 200 and result.json["title"] == "X"
    elif method == "PUT":
        result = client.put(path, {"userName": "put@x.example"}, headers=headers)
        assert result.status == 200 and "title" not in result.json
    else:
        assert client.delete(path, headers=headers).status == 204
        assert client.get(path).status == 404


def test_if_none_match(client: FunctionClient) -> None:
    """If-None-Match with the current version or "*" is 304 without a body; stale gives 200."""
    user = rich_user(client)
    path = f"/Users/{user['id']}"
    for tag in (user["meta"]["version"], "*"):
        result = client.get(path, headers={"If-None-Match": tag})
        assert result.status == 304 and result.body == b""
        assert result.header("ETag") == user["meta"]["version"]
    fresh = client.get(path, headers={"If-None-Match": 'W/"old"'})
    assert fresh.status == 200 and fresh.json == user


def test_if_match_is_never_required(client: FunctionClient) -> None:
    """Writes without If-Match succeed (Entra never sends it)."""
    user = rich_user(client)
    path = f"/Users/{user['id']}"
    assert client.patch_ops(path, {"op": "replace", "path": "title", "value": "X"}
                            ).status == 200
    assert client.put(path, {"userName": "put@x.example"}).status == 200
    assert client.delete(path).status == 204


# -- index paging ---------------------------------------------------------------------------


@pytest.fixture
def five(client: FunctionClient) -> list[str]:
    """Five users; their ids in the server's default (unsorted list) order."""
    for i in range(5):
        client.create_user(f"page{i}@x.example")
    return ids(listing(client))


def test_start_index_and_count(client: FunctionClient, five: list[str]) -> None:
    """startIndex/count select a 1-based window; totalResults counts every match."""
    page = listing(client, startIndex="2", count="2")
    assert page["totalResults"] == 5 and page["startIndex"] == 2
    assert page["itemsPerPage"] == 2 and ids(page) == five[1:3]
    tail = listing(client, startIndex="4", count="10")
    assert tail["itemsPerPage"] == 2 and ids(tail) == five[3:]
    beyond = listing(client, startIndex="9")
    assert beyond["totalResults"] == 5 and beyond["itemsPerPage"] == 0
    assert beyond["Resources"] == []


@pytest.mark.parametrize("start", ["0", "-4"])
def test_start_index_below_one_is_one(client: FunctionClient, five: list[str],
                                      start: str) -> None:
    """startIndex values below 1 are read as 1 (RFC 7644 §3.4.2.4)."""
    page = listing(client, startIndex=start, count="2")
    assert page["startIndex"] == 1 and ids(page) == five[:2]


@pytest.mark.parametrize("count", ["0", "-3"])
def test_count_zero_or_negative_returns_only_total(client: FunctionClient, five: list[str],
                                                   count: str) -> None:
    """count=0 (and negative count, read as 0) returns totalResults and no resources."""
    page = listing(client, count=count)
    assert page == {"schemas": [LIST_RESPONSE], "totalResults": 5, "startIndex": 1,
                    "itemsPerPage": 0, "Resources": []}
    filtered = listing(client, count=count, filter='userName sw "page"')
    assert filtered["totalResults"] == 5 and filtered["Resources"] == []


def test_count_above_the_maximum_is_clamped(any_store: Store) -> None:
    """A count above filter.maxResults returns maxResults items; totalResults is exact."""
    use_api(make_api(any_store, max_results=3, default_page_size=2))
    client = FunctionClient()
    for i in range(5):
        client.create_user(f"clamp{i}@x.example")
    assert client.get("/ServiceProviderConfig").json["filter"]["maxResults"] == 3
    page = listing(client, count="50")
    assert page["totalResults"] == 5 and page["itemsPerPage"] == 3
    default = listing(client)
    assert default["totalResults"] == 5 and default["itemsPerPage"] == 2


# -- sorting --------------------------------------------------------------------------------


@pytest.fixture
def sortable(client: FunctionClient) -> None:
    client.create_user("bravo@x.example", displayName="Zed", name={"familyName": "Beta"})
    client.create_user("alpha@x.example", name={"familyName": "alpha"})
    client.create_user("Charlie@x.example", displayName="Ann", name={"familyName": "Gamma"})


@pytest.mark.usefixtures("sortable")
@pytest.mark.parametrize(("params", "expected"), [
    ({"sortBy": "userName"}, ["alpha", "bravo", "Charlie"]),
    ({"sortBy": "userName", "sortOrder": "ascending"}, ["alpha", "bravo", "Charlie"]),
    ({"sortBy": "userName", "sortOrder": "descending"}, ["Charlie", "bravo", "alpha"]),
    ({"sortBy": "USERNAME", "sortOrder": "Descending"}, ["Charlie", "bravo", "alpha"]),
    ({"sortBy": "name.familyName"}, ["alpha", "bravo", "Charlie"]),
    ({"sortBy": "displayName"}, ["Charlie", "bravo", "alpha"]),
    ({"sortBy": "displayName", "sortOrder": "descending"}, ["bravo", "Charlie", "alpha"]),
    ({"sortBy": "userName", "startIndex": "2", "count": "1"}, ["bravo"]),
    ({"sortBy": "userName", "filter": 'userName ew "@x.example" and not (userName sw "a")'},
     ["bravo", "Charlie"]),
], ids=["asc-default", "asc", "desc", "names-any-case", "sub-attribute", "absent-last-asc",
        "absent-last-desc", "sorted-page", "sorted-filter"])
def test_sort_by_and_sort_order(client: FunctionClient, params: dict[str, str],
                                expected: list[str]) -> None:
    """sortBy orders case-insensitively, descending reverses, absent values sort last."""
    page = listing(client, **params)
    assert [n.split("@")[0] for n in user_names(page)] == expected


# -- attributes / excludedAttributes --------------------------------------------------------


@pytest.mark.parametrize(("params", "expected"), [
    ({"attributes": "userName"}, {"schemas", "id", "userName"}),
    ({"attributes": "USERNAME,title"}, {"schemas", "id", "userName", "title"}),
    ({"attributes": "id"}, {"schemas", "id"}),
    ({"excludedAttributes": "emails,name,meta,id,schemas,title,nickName,active,"
                            f"{ENTERPRISE}"},
     {"schemas", "id", "userName", "displayName"}),
])
def test_attribute_projection_on_get_and_list(client: FunctionClient, params: dict[str, str],
                                              expected: set[str]) -> None:
    """attributes/excludedAttributes pick top-level keys; id and schemas always stay."""
    user = rich_user(client)
    single = client.get(f"/Users/{user['id']}", params=params)
    assert single.status == 200 and set(single.json) == expected
    assert single.json["id"] == user["id"]
    for resource in listing(client, **params)["Resources"]:
        assert set(resource) == expected


def test_sub_attribute_and_extension_projection(client: FunctionClient) -> None:
    """attributes may name sub-attributes and URN-qualified extension attributes."""
    user = rich_user(client)
    result = client.get(f"/Users/{user['id']}", params={
        "attributes": f"emails.value,{ENTERPRISE}:department"})
    assert result.json == {"schemas": [USER_SCHEMA, ENTERPRISE], "id": user["id"],
                           "emails": [{"value": "put@x.example"}],
                           ENTERPRISE: {"department": "Facilities"}}
    trimmed = client.get(f"/Users/{user['id']}", params={
        "excludedAttributes": f"emails.primary,{ENTERPRISE}:employeeNumber"}).json
    assert trimmed["emails"] == [{"type": "work", "value": "put@x.example"}]
    assert trimmed[ENTERPRISE] == {"department": "Facilities"}
    assert trimmed["title"] == "Boss"


def test_projection_on_post_put_and_patch(client: FunctionClient) -> None:
    """POST, PUT and PATCH honour attributes/excludedAttributes in their responses."""
    created = client.post("/Users", {"userName": "proj@x.example", "title": "T"},
                          params={"attributes": "userName"})
    assert created.status == 201 and set(created.json) == {"schemas", "id", "userName"}
    assert (created.header("Location") or "").endswith(created.json["id"])
    path = f"/Users/{created.json['id']}"
    put = client.put(path, {"userName": "proj@x.example", "title": "U", "displayName": "D"},
                     params={"excludedAttributes": "title,meta"})
    assert put.status == 200
    assert set(put.json) == {"schemas", "id", "userName", "displayName"}
    patched = client.patch_ops(path, {"op": "replace", "path": "displayName", "value": "E"},
                               params={"attributes": "displayName"})
    assert patched.status == 200 and patched.json == {
        "schemas": [USER_SCHEMA], "id": created.json["id"], "displayName": "E"}


def test_group_patch_with_attributes_answers_200_with_the_resource(
        client: FunctionClient) -> None:
    """A group PATCH asking for attributes answers 200 with them instead of 204."""
    user_id = client.create_user("m@x.example")["id"]
    group = client.create_group("Projected")
    result = client.patch_ops(f"/Groups/{group['id']}",
                              {"op": "add", "path": "members", "value": [{"value": user_id}]},
                              params={"attributes": "displayName,members"})
    assert result.status == 200
    assert result.json["displayName"] == "Projected"
    assert [m["value"] for m in result.json["members"]] == [user_id]
    assert set(result.json) == {"schemas", "id", "displayName", "members"}


# -- POST /.search --------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
def test_search_post_equals_get(client: FunctionClient, endpoint: str) -> None:
    """POST /{type}/.search with a SearchRequest answers exactly what the same GET answers."""
    members = [client.create_user(f"s{i}@x.example", displayName=f"S{i}")["id"]
               for i in range(4)]
    for i in range(3):
        client.create_group(f"S{i}", members=[{"value": m} for m in members[: i + 1]])
    query = {"filter": 'displayName sw "s"', "startIndex": "2", "count": "2",
             "sortBy": "displayName", "sortOrder": "descending",
             "excludedAttributes": "meta"}
    expected = listing(client, endpoint, **query)
    assert expected["totalResults"] == (4 if endpoint == "/Users" else 3)
    body = {"schemas": [SEARCH_REQUEST], "filter": query["filter"], "startIndex": 2,
            "count": 2, "sortBy": "displayName", "sortOrder": "descending",
            "excludedAttributes": ["meta"]}
    result = client.post(f"{endpoint}/.search", body)
    assert result.status == 200, result.body
    assert result.json == expected
    narrow = client.post(f"{endpoint}/.search", {"schemas": [SEARCH_REQUEST],
                                                 "attributes": ["displayName"]})
    assert narrow.json == listing(client, endpoint, attributes="displayName")


# -- RFC 9865 cursor paging -----------------------------------------------------------------


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
def test_cursor_paging_visits_every_resource_once(client: FunctionClient,
                                                  filtered: bool) -> None:
    """cursor= starts cursor paging; following nextCursor visits each match exactly once."""
    created = {client.create_user(f"cur{i}@x.example")["id"] for i in range(7)}
    client.create_user("zzz-other@x.example")
    extra = {"filter": 'userName sw "cur"'} if filtered else {}
    total = 7 if filtered else 8
    seen: list[str] = []
    page = listing(client, cursor="", count="3", **extra)
    pages = 1
    while True:
        assert page["totalResults"] == total
        assert page["itemsPerPage"] == len(page["Resources"]) <= 3
        seen.extend(ids(page))
        if "nextCursor" not in page:
            break
        assert isinstance(page["nextCursor"], str) and page["nextCursor"]
        page = listing(client, cursor=page["nextCursor"], count="3", **extra)
        pages += 1
        assert pages <= 5
    assert len(seen) == len(set(seen)) == total
    assert created <= set(seen)
    assert pages == 3


@pytest.mark.parametrize("cursor", ["!!!!", "not a cursor", "%%%", "x" * 5000])
@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
def test_invalid_cursor_is_400_invalid_cursor(client: FunctionClient, cursor: str,
                                              filtered: bool) -> None:
    """A cursor the server never issued is 400 invalidCursor (RFC 9865)."""
    client.create_user("c@x.example")
    params = {"cursor": cursor, **({"filter": 'userName pr'} if filtered else {})}
    assert_scim_error(client.get("/Users", params=params), 400, "invalidCursor")


def test_cursor_with_start_index_is_400(client: FunctionClient) -> None:
    """cursor and startIndex together are refused with 400."""
    assert_scim_error(client.get("/Users", params={"cursor": "", "startIndex": "1"}), 400)


# -- filters end to end ---------------------------------------------------------------------


@pytest.fixture
def people(client: FunctionClient) -> dict[str, dict[str, Any]]:
    alice = client.create_user(
        "alice@x.example", displayName="Alice Smith", title="Engineer", active=True,
        emails=[{"type": "work", "value": "alice@x.example"}],
        **{ENTERPRISE: {"department": "Facilities"}})
    bob = client.create_user(
        "bob@y.example", displayName="Bob Jones", active=False,
        emails=[{"type": "work", "value": "bob@x.example"},
                {"type": "home", "value": "bob@home.example"}])
    carol = client.create_user(
        "carol@y.example", title="engineer", active=True,
        emails=[{"type": "home", "value": "carol@x.example"}])
    return {"alice": alice, "bob": bob, "carol": carol}


FILTERS = [
    ('userName eq "alice@x.example" or userName eq "bob@y.example"', {"alice", "bob"}),
    ('not (userName eq "alice@x.example")', {"bob", "carol"}),
    ('(title eq "Engineer" or displayName sw "Bob") and active eq true', {"alice", "carol"}),
    ('title eq "Engineer" or (displayName sw "Bob" and active eq true)', {"alice", "carol"}),
    ('userName co "@y."', {"bob", "carol"}),
    ('userName sw "ALI"', {"alice"}),
    ('userName ew ".example"', {"alice", "bob", "carol"}),
    ("displayName pr", {"alice", "bob"}),
    ("not (displayName pr)", {"carol"}),
    ('emails[type eq "work" and value co "@x"]', {"alice", "bob"}),
    ('emails[type eq "home"]', {"bob", "carol"}),
    ('emails.value ew "@home.example"', {"bob"}),
    ('userName ne "alice@x.example"', {"bob", "carol"}),
    ('USERNAME EQ "ALICE@X.EXAMPLE"', {"alice"}),
    ("active eq false", {"bob"}),
    ('userName gt "b"', {"bob", "carol"}),
    ('userName le "bob@y.example"', {"alice", "bob"}),
    (f'{USER_SCHEMA}:userName eq "carol@y.example"', {"carol"}),
    (f'{ENTERPRISE}:department eq "facilities"', {"alice"}),
    ('meta.lastModified gt "2999-01-01T00:00:00Z"', set()),
    ('meta.created lt "2000-01-01T00:00:00Z"', set()),
    ('meta.resourceType eq "User"', {"alice", "bob", "carol"}),
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_grammar(client: FunctionClient, people: dict[str, dict[str, Any]],
                        expression: str, expected: set[str]) -> None:
    """Each RFC 7644 §3.4.2.2 filter form selects exactly the expected users."""
    page = listing(client, filter=expression)
    assert {n.split("@")[0] for n in user_names(page)} == expected
    assert page["totalResults"] == len(expected)


def test_filter_on_meta_timestamps(client: FunctionClient,
                                   people: dict[str, dict[str, Any]]) -> None:
    """meta.lastModified/created compare as instants against the server's own values."""
    stamps = [datetime.fromisoformat(p["meta"]["lastModified"].replace("Z", "+00:00"))
              for p in people.values()]
    before = (min(stamps) - timedelta(seconds=1)).astimezone(UTC)
    text = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(listing(client, filter=f'meta.lastModified gt "{text}"')["Resources"]) == 3
    first = people["alice"]["meta"]["created"]
    assert "alice@x.example" in user_names(listing(client, filter=f'meta.created ge "{first}"'))
    assert "alice@x.example" not in user_names(
        listing(client, filter=f'meta.created gt "{first}"'))


# -- representation rules -------------------------------------------------------------------


def test_no_nulls_anywhere_in_responses(client: FunctionClient) -> None:
    """No response body (resources, lists, groups, discovery, errors) ever holds a null."""
    user = client.post("/Users", {"userName": "n@x.example", "nickName": None,
                                  "name": {"givenName": None, "familyName": "F"},
                                  "emails": [{"value": "n@x.example", "type": None}],
                                  ENTERPRISE: {"department": None, "division": "D"}})
    assert user.status == 201, user.body
    path = f"/Users/{user.json['id']}"
    group = client.post("/Groups", {"displayName": "G", "externalId": None,
                                    "members": [{"value": user.json["id"], "$ref": None,
                                                 "display": None}]})
    results = [
        user, group,
        client.get(path), client.get("/Users"), client.get("/Groups"),
        client.get(f"/Groups/{group.json['id']}"),
        client.patch_ops(path, {"op": "replace", "path": "title", "value": None},
                         {"op": "add", "path": "name", "value": {"middleName": None}}),
        client.get("/Schemas"), client.get("/ResourceTypes"),
        client.get("/ServiceProviderConfig"),
        client.get(f"/Users/{uuid.uuid4()}"), client.post("/Users", {}),
    ]
    for result in results:
        assert result.body, result.status
        assert nulls(result.json) == [], (result.status, nulls(result.json))


def test_booleans_are_json_booleans(client: FunctionClient) -> None:
    """Boolean attributes sent as strings come back (everywhere) as JSON true/false."""
    user = client.create_user("b@x.example", active="True",
                              emails=[{"value": "b@x.example", "type": "work",
                                       "primary": "true"}],
                              roles=[{"value": "R", "primary": "FALSE"}])
    listed = listing(client, filter='userName eq "b@x.example"')["Resources"][0]
    patched = client.patch_ops(f"/Users/{user['id']}",
                               {"op": "replace", "path": "active", "value": "False"}).json
    for resource, active in ((user, True), (listed, True), (patched, False)):
        assert resource["active"] is active
        assert resource["emails"][0]["primary"] is True
        assert resource["roles"][0]["primary"] is False


def _content_type_cases(client: FunctionClient) -> list[tuple[str, Result]]:
    user = client.post("/Users", {"userName": "ct@x.example"})
    path = f"/Users/{user.json['id']}"
    group = client.create_group("CT")
    return [
        ("POST 201", user),
        ("GET 200", client.get(path)),
        ("GET list", client.get("/Users")),
        ("PATCH 200", client.patch_ops(path, {"op": "add", "path": "title", "value": "T"})),
        ("PUT 200", client.put(path, {"userName": "ct@x.example"})),
        ("search 200", client.post("/Users/.search", {"schemas": [SEARCH_REQUEST]})),
        ("discovery", client.get("/Schemas")),
        ("400", client.post("/Users", raw=b"{")),
        ("401", client.get("/Users", token=None)),
        ("404", client.get(f"/Users/{uuid.uuid4()}")),
        ("405", client.delete("/Users")),
        ("406", client.get("/Users", headers={"Accept": "text/html"})),
        ("409", client.post("/Users", {"userName": "CT@x.example"})),
        ("412", client.patch_ops(path, {"op": "add", "path": "title", "value": "T"},
                                 headers={"If-Match": 'W/"x"'})),
        ("415", client.post("/Users", raw=b"<user/>", headers={"Content-Type": "text/xml"})),
        ("400 group", client.patch_ops(f"/Groups/{group['id']}", {"op": "bogus"})),
    ]


def test_every_response_with_a_body_is_scim_json(client: FunctionClient) -> None:
    """Successes and errors alike answer Content-Type application/scim+json."""
    for label, result in _content_type_cases(client):
        assert result.body, label
        content_type = result.header("Content-Type") or ""
        assert content_type.split(";")[0].strip() == "application/scim+json", (label,
                                                                              content_type)
        result.json  # noqa: B018 - the body parses as JSON


def test_users_can_be_filtered_on_their_groups(client: FunctionClient) -> None:
    """groups.value eq, groups[value eq] and groups pr select the users in a group."""
    inside = client.create_user("inside@x.example")
    client.create_user("outside@x.example")
    group = client.create_group("Filtered", members=[{"value": inside["id"]}])
    for expression in (f'groups.value eq "{group["id"]}"', f'groups[value eq "{group["id"]}"]',
                       f'groups eq "{group["id"]}"', "groups pr",
                       f'userName sw "in" and groups.value eq "{group["id"]}"'):
        assert user_names(listing(client, filter=expression)) == ["inside@x.example"], expression
    assert user_names(listing(client, filter=f'not (groups.value eq "{group["id"]}")')) == [
        "outside@x.example"]
    assert listing(client, filter='groups.value eq "no-such-group"')["totalResults"] == 0


def test_deleting_a_member_user_gives_the_group_a_new_version(client: FunctionClient) -> None:
    """A group whose member user is deleted gets a new ETag, so If-None-Match sees the change."""
    kept = client.create_user("kept@x.example")
    gone = client.create_user("gone@x.example")
    group = client.create_group("Versioned", members=[{"value": kept["id"]},
                                                      {"value": gone["id"]}])
    before = client.get(f"/Groups/{group['id']}")
    etag = before.header("ETag") or ""
    assert etag and client.get(f"/Groups/{group['id']}",
                               headers={"If-None-Match": etag}).status == 304
    assert client.delete(f"/Users/{gone['id']}").status == 204
    after = client.get(f"/Groups/{group['id']}", headers={"If-None-Match": etag})
    assert after.status == 200
    assert after.header("ETag") not in (None, etag)
    assert [m["value"] for m in after.json["members"]] == [kept["id"]]
    assert after.json["meta"]["version"] == after.header("ETag")


@pytest.mark.parametrize(("method", "path"), [("GET", "/Me"), ("PATCH", "/Me")])
def test_endpoints_the_rfc_defines_but_we_do_not_offer_answer_501(
        client: FunctionClient, method: str, path: str) -> None:
    """/Me answers 501 Not Implemented (RFC 7644 §3.11, §3.12)."""
    body = {"schemas": [SEARCH_REQUEST]} if method != "GET" else None
    assert_scim_error(client.request(method, path, body), 501)


# -- searching across resource types (RFC 7644 §3.4.3)------------------------------------------


def test_root_search_covers_users_and_groups(client: FunctionClient) -> None:
    """POST /.search searches Users and Groups together: a filter naming a common
    attribute finds both kinds, one naming a User attribute finds users only, and paging
    and sorting apply to the combined list."""
    user = client.create_user("root@x.example", externalId="shared")["id"]
    group = client.create_group("Root Group", externalId="shared")["id"]
    client.create_user("other@x.example")

    def search(**body: Any) -> dict[str, Any]:
        result = client.post("/.search", {"schemas": [SEARCH_REQUEST], **body})
        assert result.status == 200, result.body[:300]
        assert result.json["schemas"] == [LIST_RESPONSE]
        return dict(result.json)

    both = search(filter='externalId eq "shared"')
    assert sorted(r["id"] for r in both["Resources"]) == sorted([user, group])
    assert {r["meta"]["resourceType"] for r in both["Resources"]} == {"User", "Group"}
    users_only = search(filter='userName sw "root"')
    assert [r["id"] for r in users_only["Resources"]] == [user]
    everything = search(sortBy="meta.created", count=2)
    assert everything["totalResults"] == 3 and len(everything["Resources"]) == 2
    names = search(filter='externalId eq "shared"', attributes=["userName", "displayName"])
    assert all(set(r) <= {"id", "schemas", "userName", "displayName"}
               for r in names["Resources"])


def test_root_search_refuses_what_no_resource_type_accepts(client: FunctionClient) -> None:
    """A root /.search whose filter is malformed is 400 invalidFilter; GET is 405."""
    result = client.post("/.search", {"schemas": [SEARCH_REQUEST], "filter": "userName eq"})
    assert_scim_error(result, 400, "invalidFilter")
    assert_scim_error(client.get("/.search"), 405)


@pytest.mark.parametrize("where", ["query", "body"])
def test_attribute_names_with_a_value_filter_name_their_attribute(
        client: FunctionClient, where: str) -> None:
    """``attributes=emails[type eq "work"]`` (as Microsoft's test collection sends it)
    returns ``emails``, and ``excludedAttributes`` of one leaves ``emails`` out."""
    client.create_user("vf@x.example", displayName="VF",
                       emails=[{"value": "vf@x.example", "type": "work"}])
    named = 'emails[type eq "work"],displayName'
    if where == "query":
        shown = client.get("/Users", params={"attributes": named}).json["Resources"][0]
        hidden = client.get("/Users", params={"excludedAttributes": 'emails[type eq "work"]'}
                            ).json["Resources"][0]
    else:
        def search(**body: Any) -> Any:
            result = client.post("/Users/.search", {"schemas": [SEARCH_REQUEST], **body})
            return result.json["Resources"][0]
        shown = search(attributes=['emails[type eq "work"]', "displayName"])
        hidden = search(excludedAttributes=['emails[type eq "work"].value'])
    assert set(shown) == {"id", "schemas", "emails", "displayName"}
    assert shown["emails"] == [{"value": "vf@x.example", "type": "work"}]
    assert "emails" not in hidden or all("value" not in e for e in hidden["emails"])
    assert hidden["displayName"] == "VF"


def test_a_conditional_delete_loses_to_a_change_made_after_its_check(
        any_store: Store) -> None:
    """DELETE with If-Match answers 412 and deletes nothing when the user changes between
    the service's check and the store's delete (the store enforces the version read)."""
    use_api(make_api(any_store))
    client = FunctionClient()
    user = client.create_user("raced@x.example")
    view = any_store.tenant("default")
    delete = view.delete

    def change_then_delete(kind: Kind, resource_id: str, **options: Any) -> None:
        assert client.patch_ops(f"/Users/{resource_id}",
                                {"op": "replace", "path": "displayName",
                                 "value": "Changed"}).status == 200
        delete(kind, resource_id, **options)

    view.delete = change_then_delete  # type: ignore[method-assign]
    any_store.tenant = lambda name, epoch=None: view  # type: ignore[method-assign]
    result = client.delete(f"/Users/{user['id']}",
                           headers={"If-Match": user["meta"]["version"]})
    assert_scim_error(result, 412)
    any_store.tenant = type(any_store).tenant.__get__(any_store)  # type: ignore[method-assign]
    assert client.get(f"/Users/{user['id']}").json["displayName"] == "Changed"


def test_a_conditional_member_patch_loses_to_a_change_made_after_its_check(
        any_store: Store) -> None:
    """A group member PATCH with If-Match answers 412 and adds nothing when the group
    changes between the service's check and its write."""
    use_api(make_api(any_store))
    client = FunctionClient()
    user = client.create_user("member@x.example")["id"]
    group = client.create_group("Raced")
    view = any_store.tenant("default")
    update, change_members = view.update, view.change_members
    raced: list[str] = []

    def rename_first() -> None:
        if not raced:
            raced.append("renamed")
            assert client.patch_ops(f"/Groups/{group['id']}", {
                "op": "replace", "path": "displayName", "value": "Renamed"}).status == 204

    def rename_then_update(*args: Any, **kwargs: Any) -> Any:
        rename_first()
        return update(*args, **kwargs)

    def rename_then_change(*args: Any, **kwargs: Any) -> Any:
        rename_first()
        return change_members(*args, **kwargs)

    view.update = rename_then_update  # type: ignore[method-assign]
    view.change_members = rename_then_change  # type: ignore[method-assign]
    any_store.tenant = lambda name, epoch=None: view  # type: ignore[method-assign]
    result = client.patch_ops(f"/Groups/{group['id']}",
                              {"op": "add", "path": "members", "value": [{"value": user}]},
                              headers={"If-Match": group["meta"]["version"]})
    assert raced == ["renamed"]
    assert_scim_error(result, 412)
    after = client.get(f"/Groups/{group['id']}").json
    assert after["displayName"] == "Renamed" and after.get("members", []) == []
