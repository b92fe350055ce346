"""Tenant isolation (issue 15, item 4) on both stores: ids, uniqueness, filters, searches,
memberships and versions are per tenant, through each tenant's own URL and token.

Every test ends by checking that no row of one tenant reaches another (``check_tenants_apart``)
and, on Table Storage, each tenant's raw rows (``check_table_rows``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from scim_core.store import Store
from scim_core.store.tables import TableStore
from tests.kvfake import FakeKeyVault
from tests.reliability import check_store_invariants, check_table_rows
from tests.support import (
    GROUP_SCHEMA,
    USER_SCHEMA,
    FunctionClient,
    Result,
    assert_scim_error,
    check_tenants_apart,
    register_tenant,
    tenant_api,
    use_api,
)

A, B = "acme", "globex"
NAME = "same.person@contoso.example"
EXTERNAL = "0a1b2c3d-same-external-id"
GROUP = "Same Group"


@dataclass
class Pair:
    """Two registered tenants on one store, each with a client of its own Tenant URL."""

    store: Store
    a: FunctionClient
    b: FunctionClient

    def check(self) -> None:
        """Each tenant's invariants hold and no row of one tenant reaches the other."""
        check_tenants_apart(self.store, [A, B, "default"])
        for tenant in (A, B):
            check_store_invariants(self.store, tenant)
            if isinstance(self.store, TableStore):
                check_table_rows(self.store.table, tenant)


@pytest.fixture
def pair(any_store: Store) -> Iterator[Pair]:
    """Tenants acme and globex, with their tokens in a Key Vault fake, on each store."""
    with FakeKeyVault() as vault:
        tokens = {t: register_tenant(any_store, vault, t) for t in (A, B)}
        use_api(tenant_api(any_store, vault, tenant_cache_seconds=0))
        yield Pair(any_store, FunctionClient(A, tokens[A]), FunctionClient(B, tokens[B]))


def _user(client: FunctionClient, **extra: Any) -> dict[str, Any]:
    return client.create_user(NAME, externalId=EXTERNAL, **extra)


def _ids(result: Result) -> list[str]:
    assert result.status == 200, (result.status, result.body[:300])
    return sorted(r["id"] for r in result.json["Resources"])


def _members(client: FunctionClient, group_id: str) -> list[str]:
    result = client.get(f"/Groups/{group_id}")
    assert result.status == 200, result.body[:300]
    return sorted(m["value"] for m in result.json.get("members", []))


def test_the_same_names_and_external_id_exist_in_two_tenants(pair: Pair) -> None:
    """The same userName, externalId and group displayName are created in both tenants (201),
    each lookup finds only its tenant's own, and uniqueness still holds inside each tenant."""
    made = {}
    for client in (pair.a, pair.b):
        user = _user(client)
        group = client.create_group(GROUP, externalId=EXTERNAL)
        made[client.root] = (user["id"], group["id"])
    assert made[pair.a.root][0] != made[pair.b.root][0]
    for client in (pair.a, pair.b):
        user_id, group_id = made[client.root]
        assert _ids(client.get("/Users", params={"filter": f'userName eq "{NAME.upper()}"'})) \
            == [user_id]
        assert _ids(client.get("/Users", params={"filter": f'externalId eq "{EXTERNAL}"'})) \
            == [user_id]
        assert _ids(client.get("/Groups", params={"filter": f'displayName eq "{GROUP}"',
                                                  "excludedAttributes": "members"})) \
            == [group_id]
        assert _ids(client.get("/Groups", params={"filter": f'externalId eq "{EXTERNAL}"'})) \
            == [group_id]
        assert_scim_error(client.post("/Users", {"schemas": [USER_SCHEMA], "userName": NAME}),
                          409, "uniqueness")
        assert_scim_error(client.post("/Groups", {"schemas": [GROUP_SCHEMA],
                                                  "displayName": GROUP}), 409, "uniqueness")
    pair.check()


WRITES: dict[str, tuple[str, Any]] = {
    "GET": ("GET", None),
    "PUT": ("PUT", {"schemas": [USER_SCHEMA], "userName": "taken.over@contoso.example"}),
    "PATCH": ("PATCH", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": False}]}),
    "DELETE": ("DELETE", None),
}


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
@pytest.mark.parametrize("method", list(WRITES))
def test_an_id_of_another_tenant_is_404(pair: Pair, method: str, endpoint: str) -> None:
    """GET, PUT, PATCH and DELETE of tenant A's user or group id under tenant B answer 404,
    as for an id that never existed, and leave A's resource (body and ETag) untouched."""
    if endpoint == "Users":
        mine = _user(pair.a)
        _user(pair.b)
    else:
        member = _user(pair.a)["id"]
        mine = pair.a.create_group(GROUP, members=[{"value": member}])
        pair.b.create_group(GROUP)
    before = pair.a.get(f"/{endpoint}/{mine['id']}")
    verb, body = WRITES[method]
    if endpoint == "Groups" and verb == "PUT":
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Taken Over"}
    if endpoint == "Groups" and verb == "PATCH":
        body = {**body, "Operations": [{"op": "replace", "path": "displayName",
                                        "value": "Taken Over"}]}
    probe = pair.b.request(verb, f"/{endpoint}/{mine['id']}", body)
    never = pair.b.request(verb, f"/{endpoint}/00000000-0000-4000-8000-000000000000", body)
    assert_scim_error(probe, 404)
    assert_scim_error(never, 404)
    assert probe.json == never.json | {"detail": probe.json["detail"]}
    after = pair.a.get(f"/{endpoint}/{mine['id']}")
    assert after.status == 200
    assert after.json == before.json
    assert after.header("ETag") == before.header("ETag")
    pair.check()


def test_filters_and_searches_see_only_the_tenants_own(pair: Pair) -> None:
    """Filters (point lookups and scans), POST /Users/.search, the root POST /.search and
    cursor paging under each tenant return that tenant's resources only, and an id eq
    filter naming the other tenant's id finds nothing."""
    own: dict[str, set[str]] = {}
    for client, count in ((pair.a, 4), (pair.b, 3)):
        ids = {client.create_user(f"member{i}@contoso.example")["id"] for i in range(count)}
        ids.add(client.create_group("Shared Name")["id"])
        own[client.root] = ids
    for client, other in ((pair.a, pair.b), (pair.b, pair.a)):
        mine, theirs = own[client.root], own[other.root]
        scanned = _ids(client.get("/Users", params={"filter": 'userName co "contoso"'}))
        assert set(scanned) < mine and len(scanned) == len(mine) - 1
        assert _ids(client.get("/Users")) == scanned
        for stranger in theirs:
            assert _ids(client.get("/Users", params={"filter": f'id eq "{stranger}"'})) == []
            assert _ids(client.get("/Groups", params={"filter": f'id eq "{stranger}"'})) == []
        found = client.post("/Users/.search", {"filter": 'userName sw "member"'})
        assert set(_ids(found)) == set(scanned)
        everything = client.post("/.search", {"filter": 'meta.resourceType pr'})
        assert set(_ids(everything)) == mine
        named = client.post("/.search", {"filter": 'displayName eq "Shared Name"'})
        assert set(_ids(named)) <= mine and len(_ids(named)) == 1
        seen: list[str] = []
        page = client.get("/Users", params={"cursor": "", "count": "2"}).json
        for _ in range(5):
            seen += [r["id"] for r in page["Resources"]]
            if "nextCursor" not in page:
                break
            page = client.get("/Users", params={"cursor": page["nextCursor"],
                                                "count": "2"}).json
        assert sorted(seen) == scanned
    pair.check()


def test_a_cursor_of_one_tenant_pages_only_the_other_tenants_own(pair: Pair) -> None:
    """A cursor issued to tenant A and presented to tenant B pages B's users only (or is
    refused with 400): a cursor carries no way into another tenant's partition."""
    a_ids = {pair.a.create_user(f"a{i}@contoso.example")["id"] for i in range(5)}
    b_ids = {pair.b.create_user(f"b{i}@contoso.example")["id"] for i in range(5)}
    cursor = pair.a.get("/Users", params={"cursor": "", "count": "2"}).json["nextCursor"]
    crossed = pair.b.get("/Users", params={"cursor": cursor, "count": "10"})
    if crossed.status == 400:
        assert_scim_error(crossed, 400)
    else:
        assert set(_ids(crossed)) <= b_ids and not set(_ids(crossed)) & a_ids
    pair.check()


@pytest.mark.parametrize("write", ["POST", "PUT", "PATCH add", "PATCH replace"])
def test_a_member_id_of_another_tenant_never_becomes_a_membership(pair: Pair, write: str
                                                                  ) -> None:
    """A group write in tenant B naming tenant A's user id skips that id as an unknown
    member (B's own member is added), and no row of either tenant joins them."""
    stranger = _user(pair.a)["id"]
    a_group = pair.a.create_group(GROUP, members=[{"value": stranger}])["id"]
    local = _user(pair.b)["id"]
    members = [{"value": stranger}, {"value": local}]
    if write == "POST":
        result = pair.b.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": GROUP,
                                         "members": members})
        assert result.status == 201, result.body[:300]
        group = result.json["id"]
    else:
        group = pair.b.create_group(GROUP)["id"]
        if write == "PUT":
            result = pair.b.put(f"/Groups/{group}", {"schemas": [GROUP_SCHEMA],
                                                     "displayName": GROUP, "members": members})
            assert result.status == 200, result.body[:300]
        else:
            op = "add" if write == "PATCH add" else "replace"
            result = pair.b.patch_ops(f"/Groups/{group}",
                                      {"op": op, "path": "members", "value": members})
            assert result.status in (200, 204), result.body[:300]
    assert _members(pair.b, group) == [local]
    member_filter = {"filter": f'id eq "{group}" and members[value eq "{stranger}"]',
                     "excludedAttributes": "members"}
    assert _ids(pair.b.get("/Groups", params=member_filter)) == []
    b_view, a_view = pair.store.tenant(B), pair.store.tenant(A)
    assert not b_view.is_member(group, stranger)
    assert b_view.groups_of(stranger) == [] and b_view.groups_of(local) == [group]
    assert a_view.groups_of(stranger) == [a_group]
    assert _members(pair.a, a_group) == [stranger]
    pair.check()


def test_versions_are_per_tenant(pair: Pair) -> None:
    """Writes in tenant B leave the ETag of A's same-named user unchanged; A's ETag does not
    match B's user (If-Match answers 412) and is refused on B with A's id (404)."""
    a_user = _user(pair.a)
    b_user = _user(pair.b)
    a_tag = pair.a.get(f"/Users/{a_user['id']}").header("ETag")
    b_tag = pair.b.get(f"/Users/{b_user['id']}").header("ETag")
    assert a_tag and b_tag and a_tag != b_tag
    for _ in range(3):
        changed = pair.b.patch_ops(f"/Users/{b_user['id']}",
                                   {"op": "replace", "path": "displayName", "value": "B"})
        assert changed.status in (200, 204), changed.body[:300]
    b_now = pair.b.get(f"/Users/{b_user['id']}").header("ETag")
    assert b_now != b_tag
    assert pair.a.get(f"/Users/{a_user['id']}").header("ETag") == a_tag
    refused = pair.b.patch_ops(f"/Users/{b_user['id']}",
                               {"op": "replace", "path": "displayName", "value": "X"},
                               headers={"If-Match": a_tag})
    assert_scim_error(refused, 412)
    assert_scim_error(pair.b.get(f"/Users/{a_user['id']}", headers={"If-None-Match": a_tag}),
                      404)
    assert pair.a.get(f"/Users/{a_user['id']}",
                      headers={"If-None-Match": a_tag}).status == 304
    pair.check()


def test_deleting_a_user_in_one_tenant_leaves_the_other_intact(pair: Pair) -> None:
    """Deleting tenant A's user (member of A's group) removes it from A only: B's
    same-named user, its group membership and its lookups stay, and A can reuse the name."""
    made = {}
    for client in (pair.a, pair.b):
        user = _user(client)["id"]
        group = client.create_group(GROUP, members=[{"value": user}])["id"]
        made[client.root] = (user, group)
    a_user, a_group = made[pair.a.root]
    b_user, b_group = made[pair.b.root]
    assert pair.a.delete(f"/Users/{a_user}").status == 204
    assert_scim_error(pair.a.get(f"/Users/{a_user}"), 404)
    assert _members(pair.a, a_group) == []
    assert pair.b.get(f"/Users/{b_user}").status == 200
    assert _members(pair.b, b_group) == [b_user]
    groups = pair.b.get(f"/Users/{b_user}", params={"attributes": "groups"}).json["groups"]
    assert [g["value"] for g in groups] == [b_group]
    assert _ids(pair.b.get("/Users", params={"filter": f'userName eq "{NAME}"'})) == [b_user]
    assert _ids(pair.b.get("/Users", params={"filter": f'externalId eq "{EXTERNAL}"'})) \
        == [b_user]
    again = _user(pair.a)["id"]
    assert again != a_user
    assert _ids(pair.a.get("/Users", params={"filter": f'userName eq "{NAME}"'})) == [again]
    pair.check()
