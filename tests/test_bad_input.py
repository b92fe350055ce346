"""Bad input always gets a 4xx SCIM error and changes nothing (issue 3), through
function_app.py on both stores."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from scim_core.store import Store
from tests.conftest import make_api
from tests.support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_OP,
    USER_SCHEMA,
    FunctionClient,
    Result,
    assert_scim_error,
    use_api,
)

DEFAULT_MAX_BODY = 1_048_576


@dataclass
class Seed:
    user: dict[str, Any]
    other: dict[str, Any]
    group: dict[str, Any]


@pytest.fixture
def seed(client: FunctionClient) -> Seed:
    """Two users and a group holding one of them."""
    user = client.create_user("seed@x.example", displayName="Seed", active=True,
                              emails=[{"type": "work", "value": "seed@x.example"}],
                              **{ENTERPRISE: {"department": "D"}})
    other = client.create_user("other@x.example")
    group = client.create_group("Seeded", members=[{"value": user["id"]}])
    return Seed(user, other, group)


def snapshot(client: FunctionClient) -> tuple[Any, Any]:
    """Everything a client can see: every user, every group with its members."""
    users = client.get("/Users", params={"sortBy": "userName"})
    groups = client.get("/Groups", params={"sortBy": "displayName"})
    assert users.status == groups.status == 200
    return users.json, groups.json


def rejected(client: FunctionClient, send: Any, status: int,
             scim_type: str | None = None) -> dict[str, Any]:
    """Send a request, check it is refused with a SCIM error, and that nothing changed."""
    before = snapshot(client)
    result: Result = send()
    body = assert_scim_error(result, status, scim_type)
    assert snapshot(client) == before
    return body


# -- unparsable and wrongly shaped bodies ---------------------------------------------------

SYNTAX = {
    "malformed": b'{"userName": ',
    "trailing-garbage": b'{"userName": "a@x.example"} x',
    "invalid-utf8": b'{"userName": "\xff\xfe@x.example"}',
    "nan": b'{"userName": "n@x.example", "x": NaN}',
    "infinity": b'{"userName": "n@x.example", "x": Infinity}',
    "minus-infinity": b'{"userName": "n@x.example", "x": -Infinity}',
    "empty": b"",
    "whitespace": b"  \n ",
    "array": b'[{"userName": "a@x.example"}]',
    "empty-array": b"[]",
    "string": b'"a@x.example"',
    "number": b"42",
    "null": b"null",
    "too-deep": b'{"userName": "d@x.example", "x": ' + b"[" * 60 + b"]" * 60 + b"}",
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("case", sorted(SYNTAX))
def test_unparsable_user_body_is_400_invalid_syntax(client: FunctionClient, seed: Seed,
                                                    method: str, case: str) -> None:
    """Bodies that are not one JSON object get 400 invalidSyntax; nothing changes."""
    path = "/Users" if method == "POST" else f"/Users/{seed.user['id']}"
    rejected(client, lambda: client.request(method, path, raw=SYNTAX[case]), 400,
             "invalidSyntax")


@pytest.mark.parametrize("case", ["malformed", "invalid-utf8", "nan", "empty", "array"])
def test_unparsable_patch_and_group_bodies_are_400(client: FunctionClient, seed: Seed,
                                                   case: str) -> None:
    """PATCH (users, groups) and group POST/PUT refuse unparsable bodies the same way."""
    raw = SYNTAX[case]
    for method, path in (("PATCH", f"/Users/{seed.user['id']}"),
                         ("PATCH", f"/Groups/{seed.group['id']}"),
                         ("POST", "/Groups"), ("PUT", f"/Groups/{seed.group['id']}"),
                         ("POST", "/Users/.search")):
        rejected(client, lambda m=method, p=path: client.request(m, p, raw=raw), 400,
                 "invalidSyntax")


USER_VALUES: dict[str, dict[str, Any]] = {
    "userName-number": {"userName": 42},
    "userName-list": {"userName": ["a@x.example"]},
    "userName-object": {"userName": {"value": "a@x.example"}},
    "userName-missing": {"displayName": "No Name"},
    "userName-empty": {"userName": ""},
    "userName-blank": {"userName": "   "},
    "userName-null": {"userName": None},
    "active-object": {"active": {"value": True}},
    "active-maybe": {"active": "maybe"},
    "active-number": {"active": 1},
    "active-yes": {"active": "yes"},
    "displayName-number": {"displayName": 12},
    "externalId-number": {"externalId": 5},
    "name-string": {"name": "Anna Lindqvist"},
    "emails-string": {"emails": "a@x.example"},
    "emails-value-number": {"emails": [{"value": 5, "type": "work"}]},
    "emails-primary-maybe": {"emails": [{"value": "a@x.example", "primary": "sometimes"}]},
    "enterprise-string": {ENTERPRISE: "Facilities"},
    "enterprise-department-number": {ENTERPRISE: {"department": 7}},
    "manager-number": {ENTERPRISE: {"manager": 7}},
    "nul-character": {"displayName": "a\u0000b"},
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("case", sorted(USER_VALUES))
def test_wrong_user_values_are_400_invalid_value(client: FunctionClient, seed: Seed,
                                                 method: str, case: str) -> None:
    """Wrong types, bad Booleans and a missing/empty userName get 400 invalidValue."""
    body = {"schemas": [USER_SCHEMA], "userName": "new@x.example", **USER_VALUES[case]}
    if case == "userName-missing":
        body.pop("userName")
    path = "/Users" if method == "POST" else f"/Users/{seed.user['id']}"
    rejected(client, lambda: client.request(method, path, body), 400, "invalidValue")


GROUP_VALUES: dict[str, dict[str, Any]] = {
    "displayName-missing": {"externalId": "x"},
    "displayName-empty": {"displayName": ""},
    "displayName-number": {"displayName": 5},
    "members-string": {"displayName": "G2", "members": "someone"},
    "members-value-number": {"displayName": "G2", "members": [{"value": 5}]},
    "members-value-empty": {"displayName": "G2", "members": [{"value": ""}]},
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("case", sorted(GROUP_VALUES))
def test_wrong_group_values_are_400_invalid_value(client: FunctionClient, seed: Seed,
                                                  method: str, case: str) -> None:
    """Groups without a usable displayName or with malformed members get 400 invalidValue
    (unknown member ids are skipped: tests/test_entra_groups.py)."""
    body = {"schemas": [GROUP_SCHEMA], **GROUP_VALUES[case]}
    path = "/Groups" if method == "POST" else f"/Groups/{seed.group['id']}"
    rejected(client, lambda: client.request(method, path, body), 400, "invalidValue")


# -- size, routing, methods and media types --------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid user body of exactly ``size`` bytes."""
    base = {"schemas": [USER_SCHEMA], "userName": "size@x.example", "padding": ""}
    overhead = len(json.dumps(base).encode())
    return json.dumps({**base, "padding": "x" * (size - overhead)}).encode()


def test_oversize_bodies_are_413(client: FunctionClient, seed: Seed) -> None:
    """Bodies above SCIM_MAX_BODY_BYTES (default 1 MiB) get 413 on every write."""
    raw = _padded(DEFAULT_MAX_BODY + 1)
    assert len(raw) == DEFAULT_MAX_BODY + 1
    ops = json.dumps({"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "nickName", "value": "x" * DEFAULT_MAX_BODY}]}).encode()
    for method, path, body in (("POST", "/Users", raw), ("PUT", f"/Users/{seed.user['id']}", raw),
                               ("PATCH", f"/Users/{seed.user['id']}", ops),
                               ("PATCH", f"/Groups/{seed.group['id']}", ops),
                               ("POST", "/Groups", raw), ("POST", "/Users/.search", raw)):
        rejected(client, lambda m=method, p=path, b=body: client.request(m, p, raw=b), 413)


def test_body_limit_is_exact_and_configurable(any_store: Store) -> None:
    """A body of exactly the configured limit is accepted; one byte more is 413."""
    use_api(make_api(any_store, max_body_bytes=2048))
    client = FunctionClient()
    rejected(client, lambda: client.post("/Users", raw=_padded(2049)), 413)
    accepted = client.post("/Users", raw=_padded(2048))
    assert accepted.status == 201, accepted.body


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/Foo"), ("POST", "/Foo"), ("GET", "/"), ("GET", "/Users/{id}/extra"),
    ("DELETE", "/Users/{id}/extra"), ("PATCH", "/Groups/{gid}/members"),
    ("GET", "/Userz"), ("GET", "/Users/.search/x"), ("PUT", "/Bulk"), ("POST", "/Bulk"),
])
def test_unknown_endpoints_are_404(client: FunctionClient, seed: Seed, method: str,
                                   path: str) -> None:
    """Paths outside the SCIM endpoints answer 404 with a SCIM error; nothing changes."""
    real = path.format(id=seed.user["id"], gid=seed.group["id"])
    body = {"userName": "x@x.example"} if method in ("POST", "PUT", "PATCH") else None
    rejected(client, lambda: client.request(method, real, body), 404)


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "PUT", "GET"])
def test_unknown_resource_ids_are_404(client: FunctionClient, seed: Seed, method: str) -> None:
    """GET, PUT, PATCH and DELETE of an id that does not exist answer 404."""
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "T"}]}
    puts = {"Users": {"userName": "ghost@x.example"}, "Groups": {"displayName": "Ghost"}}
    for kind in ("Users", "Groups"):
        body = {"PUT": puts[kind], "PATCH": patch}.get(method)
        path = f"/{kind}/{uuid.uuid4()}"
        rejected(client, lambda p=path, b=body: client.request(method, p, b), 404)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/Users", "GET, POST"),
    ("PUT", "/Users", "GET, POST"),
    ("PATCH", "/Groups", "GET, POST"),
    ("POST", "/Users/{id}", "GET, PUT, PATCH, DELETE"),
    ("POST", "/Groups/{gid}", "GET, PUT, PATCH, DELETE"),
    ("GET", "/Users/.search", "POST"),
    ("DELETE", "/Groups/.search", "POST"),
])
def test_wrong_method_is_405_with_allow(client: FunctionClient, seed: Seed, method: str,
                                        path: str, allow: str) -> None:
    """A method the endpoint does not take answers 405 with an Allow header."""
    real = path.format(id=seed.user["id"], gid=seed.group["id"])
    body = {"userName": "x@x.example"} if method in ("POST", "PUT", "PATCH") else None
    before = snapshot(client)
    result = client.request(method, real, body)
    assert_scim_error(result, 405)
    assert result.header("Allow") == allow
    assert snapshot(client) == before


@pytest.mark.parametrize("content_type", ["text/xml", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/html"])
def test_unsupported_content_type_is_415(client: FunctionClient, seed: Seed,
                                         content_type: str) -> None:
    """A write whose Content-Type is not JSON answers 415 and writes nothing."""
    body = json.dumps({"userName": "ct@x.example"}).encode()
    headers = {"Content-Type": content_type}
    for method, path in (("POST", "/Users"), ("PUT", f"/Users/{seed.user['id']}"),
                         ("PATCH", f"/Users/{seed.user['id']}"), ("POST", "/Groups")):
        rejected(client, lambda m=method, p=path: client.request(m, p, raw=body,
                                                                 headers=headers), 415)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/scim+json;charset=UTF-8",
                                          "Application/SCIM+JSON"])
def test_json_content_types_are_accepted(client: FunctionClient, content_type: str) -> None:
    """application/json and application/scim+json, with or without a charset, are accepted."""
    result = client.post("/Users", raw=json.dumps({"userName": "ok@x.example"}).encode(),
                         headers={"Content-Type": content_type})
    assert result.status == 201, result.body


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png, text/plain"])
def test_accept_without_json_is_406(client: FunctionClient, seed: Seed, accept: str) -> None:
    """An Accept header that excludes JSON answers 406, for reads and writes (nothing written)."""
    headers = {"Accept": accept}
    rejected(client, lambda: client.get("/Users", headers=headers), 406)
    rejected(client, lambda: client.post("/Users", {"userName": "acc@x.example"},
                                         headers=headers), 406)
    rejected(client, lambda: client.delete(f"/Users/{seed.other['id']}", headers=headers), 406)


@pytest.mark.parametrize("accept", ["application/scim+json", "application/json", "*/*",
                                    "application/*", "text/html, application/json;q=0.5"])
def test_accept_with_json_is_served(client: FunctionClient, accept: str) -> None:
    """Accept values that allow JSON are served normally."""
    assert client.get("/Users", headers={"Accept": accept}).status == 200


# -- query parameters -----------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"startIndex": "abc"}, {"startIndex": "1.5"}, {"count": "ten"}, {"count": "1e3"},
    {"sortOrder": "sideways"}, {"sortBy": "userName", "sortOrder": "up"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_bad_paging_and_sorting_parameters_are_400(client: FunctionClient, seed: Seed,
                                                   params: dict[str, str]) -> None:
    """Non-integer startIndex/count and unknown sortOrder values answer 400 invalidValue."""
    for path in ("/Users", "/Groups"):
        assert_scim_error(client.get(path, params=params), 400, "invalidValue")


BAD_FILTERS = [
    'userName eq', 'userName xx "a"', '(userName eq "a"', 'userName eq "a" and',
    'emails[type eq "work"', 'userName eq "unterminated', "active gt true",
    'meta.created gt "yesterday"', 'userName eq "a" userName eq "b"', "not userName pr",
    'emails[type eq "work"].value.x eq "a"', "and", '"a" eq userName',
]


@pytest.mark.parametrize("expression", BAD_FILTERS)
def test_unparsable_filters_are_400_invalid_filter(client: FunctionClient, seed: Seed,
                                                   expression: str) -> None:
    """Filters that cannot be parsed or typed answer 400 invalidFilter, never a full list."""
    assert_scim_error(client.get("/Users", params={"filter": expression}), 400,
                      "invalidFilter")
    search = client.post("/Users/.search", {"filter": expression})
    assert_scim_error(search, 400, "invalidFilter")


# -- PATCH ----------------------------------------------------------------------------------

USER_PATCHES: dict[str, tuple[Any, str]] = {
    "body-array": ([{"op": "add", "path": "title", "value": "T"}], "invalidSyntax"),
    "no-operations": ({"schemas": [PATCH_OP]}, "invalidSyntax"),
    "operations-object": ({"schemas": [PATCH_OP], "Operations": {"op": "add"}},
                          "invalidSyntax"),
    "operations-empty": ({"schemas": [PATCH_OP], "Operations": []}, "invalidSyntax"),
    "operation-string": ({"Operations": ["add title"]}, "invalidSyntax"),
    "op-missing": ({"Operations": [{"path": "title", "value": "T"}]}, "invalidSyntax"),
    "op-unknown": ({"Operations": [{"op": "explode", "path": "title", "value": "T"}]},
                   "invalidSyntax"),
    "add-without-value": ({"Operations": [{"op": "add", "path": "title"}]}, "invalidSyntax"),
    "path-number": ({"Operations": [{"op": "add", "path": 42, "value": "T"}]}, "invalidPath"),
    "path-unclosed-filter": ({"Operations": [{"op": "replace", "value": "x",
                                              "path": 'emails[type eq "work"'}]}, "invalidPath"),
    "path-double-dot": ({"Operations": [{"op": "replace", "path": "name..givenName",
                                         "value": "x"}]}, "invalidPath"),
    "path-too-deep": ({"Operations": [{"op": "replace", "path": "name.givenName.first",
                                       "value": "x"}]}, "invalidPath"),
    "path-filter-on-simple": ({"Operations": [{"op": "replace", "value": "x",
                                               "path": 'userName[value eq "x"]'}]},
                              "invalidPath"),
    "remove-without-path": ({"Operations": [{"op": "remove"}]}, "noTarget"),
    "replace-filter-no-match": ({"Operations": [{"op": "replace", "value": "x",
                                                 "path": 'emails[value co "zzz"].value'}]},
                                "noTarget"),
    "id-read-only": ({"Operations": [{"op": "replace", "path": "id", "value": "x"}]},
                     "mutability"),
    "meta-read-only": ({"Operations": [{"op": "replace", "path": "meta.created",
                                        "value": "2000-01-01T00:00:00Z"}]}, "mutability"),
    "groups-read-only": ({"Operations": [{"op": "add", "path": "groups",
                                          "value": [{"value": "g"}]}]}, "mutability"),
    "remove-userName": ({"Operations": [{"op": "remove", "path": "userName"}]}, "mutability"),
    "userName-empty": ({"Operations": [{"op": "replace", "path": "userName", "value": ""}]},
                       "invalidValue"),
    "active-maybe": ({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]},
                     "invalidValue"),
    "givenName-number": ({"Operations": [{"op": "replace", "path": "name.givenName",
                                          "value": 5}]}, "invalidValue"),
    "primary-maybe": ({"Operations": [{"op": "replace", "value": "x",
                                       "path": 'emails[type eq "work"].primary'}]},
                      "invalidValue"),
    "emails-string": ({"Operations": [{"op": "add", "path": "emails", "value": "a@x"}]},
                      "invalidValue"),
    "pathless-not-object": ({"Operations": [{"op": "replace", "value": "x"}]},
                            "invalidValue"),
    "pathless-bad-boolean": ({"Operations": [{"op": "replace",
                                              "value": {"displayName": "ok",
                                                        "active": "maybe"}}]},
                             "invalidValue"),
    "value-nan": ({"Operations": [{"op": "replace", "path": "title",
                                   "value": float("nan")}]}, "invalidSyntax"),
}


@pytest.mark.parametrize("case", sorted(USER_PATCHES))
def test_bad_user_patch_is_400_with_the_right_scim_type(client: FunctionClient, seed: Seed,
                                                        case: str) -> None:
    """Bad envelopes, ops, paths and values answer 400 with the matching scimType."""
    body, scim_type = USER_PATCHES[case]
    if case == "value-nan":
        raw = json.dumps(body).encode()
        rejected(client, lambda: client.patch(f"/Users/{seed.user['id']}", raw=raw), 400,
                 scim_type)
        return
    rejected(client, lambda: client.patch(f"/Users/{seed.user['id']}", body), 400, scim_type)


GROUP_PATCHES: dict[str, tuple[dict[str, Any], str]] = {
    "members-string": ({"op": "add", "path": "members", "value": "someone"}, "invalidValue"),
    "member-value-empty": ({"op": "add", "path": "members", "value": [{"value": ""}]},
                           "invalidValue"),
    "member-sub-attribute": ({"op": "replace", "path": 'members[value eq "x"].display',
                              "value": "D"}, "invalidPath"),
    "replace-member-filter": ({"op": "replace", "path": 'members[value eq "x"]',
                               "value": {"value": "y"}}, "invalidPath"),
    "displayName-empty": ({"op": "replace", "path": "displayName", "value": ""},
                          "invalidValue"),
    "remove-displayName": ({"op": "remove", "path": "displayName"}, "mutability"),
    "displayName-number": ({"op": "replace", "value": {"displayName": 5}}, "invalidValue"),
}


@pytest.mark.parametrize("case", sorted(GROUP_PATCHES))
def test_bad_group_patch_is_400_and_changes_nothing(client: FunctionClient, seed: Seed,
                                                    case: str) -> None:
    """Bad member values/paths and bad group attributes answer 400; the group is unchanged."""
    op, scim_type = GROUP_PATCHES[case]
    ops = [{"op": "add", "path": "members", "value": [{"value": seed.other["id"]}]}, op]
    rejected(client, lambda: client.patch_ops(f"/Groups/{seed.group['id']}", *ops), 400,
             scim_type)


def test_too_many_operations_is_400_too_many(any_store: Store) -> None:
    """A PATCH holding more than SCIM_MAX_OPERATIONS operations is 400 tooMany."""
    use_api(make_api(any_store, max_operations=2))
    client = FunctionClient()
    user = client.create_user("ops@x.example")
    ops = [{"op": "add", "path": "title", "value": str(i)} for i in range(3)]
    rejected(client, lambda: client.patch_ops(f"/Users/{user['id']}", *ops), 400, "tooMany")
    assert client.patch_ops(f"/Users/{user['id']}", *ops[:2]).status == 200
