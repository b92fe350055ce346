"""Indexes derived from the schema registry: uniqueness and point reads follow /Schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scim_core.schema import Registry
from scim_core.store import Store
from tests.azurite import TableHarness
from tests.conftest import make_api
from tests.support import USER_SCHEMA, FunctionClient, assert_scim_error, use_api

BADGE = "urn:example:params:scim:schemas:extension:badge:2.0:User"
BADGE_SCHEMA = {
    "id": BADGE, "name": "Badge", "resourceType": "User",
    "attributes": [
        {"name": "badgeId", "type": "string", "uniqueness": "server", "caseExact": False},
        {"name": "serial", "type": "string", "uniqueness": "server", "caseExact": True},
        {"name": "floor", "type": "string"},
    ],
}


@pytest.fixture
def badge_client(any_store: Store) -> FunctionClient:
    """An API whose users carry an extension with two unique attributes, on each store."""
    use_api(make_api(any_store, extension_schemas=json.dumps([BADGE_SCHEMA])))
    return FunctionClient()


def badge_user(client: FunctionClient, name: str, **badge: Any) -> Any:
    return client.post("/Users", {"schemas": [USER_SCHEMA, BADGE], "userName": name,
                                  BADGE: badge})


def test_the_registry_derives_every_index_from_the_schemas() -> None:
    """Unique and looked-up attributes, core and extension alike, come from the schemas."""
    registry = Registry.default(json.dumps([BADGE_SCHEMA]))
    user, group = registry.resource_type("User"), registry.resource_type("Group")
    assert user is not None and group is not None
    assert [(s.name, s.unique, s.case_exact) for s in registry.indexes(user)] == [
        ("userName", True, False), ("email", False, False), ("externalId", False, True),
        (f"{BADGE}:badgeId", True, False), (f"{BADGE}:serial", True, True)]
    assert [(s.name, s.unique) for s in registry.indexes(group)] == [
        ("displayName", True), ("externalId", False)]


def test_a_unique_extension_attribute_is_enforced(badge_client: FunctionClient) -> None:
    """A second user with a taken unique extension value is 409 uniqueness (case-folded
    unless the attribute is caseExact) and stores nothing; PATCH and PUT onto it too."""
    first = badge_user(badge_client, "a@x.example", badgeId="B-1", serial="S-1")
    assert first.status == 201, first.body
    assert_scim_error(badge_user(badge_client, "b@x.example", badgeId="b-1"), 409, "uniqueness")
    assert_scim_error(badge_user(badge_client, "c@x.example", serial="S-1"), 409, "uniqueness")
    assert badge_user(badge_client, "d@x.example", serial="s-1").status == 201
    names = [r["userName"] for r in badge_client.get("/Users").json["Resources"]]
    assert sorted(names) == ["a@x.example", "d@x.example"]
    second = badge_user(badge_client, "e@x.example", badgeId="B-2").json["id"]
    patched = badge_client.patch_ops(f"/Users/{second}", {"op": "replace",
                                                          "path": f"{BADGE}:badgeId",
                                                          "value": "B-1"})
    assert_scim_error(patched, 409, "uniqueness")
    replaced = badge_client.put(f"/Users/{second}", {"userName": "e@x.example",
                                                     BADGE: {"badgeId": "b-1"}})
    assert_scim_error(replaced, 409, "uniqueness")
    assert badge_client.get(f"/Users/{second}").json[BADGE] == {"badgeId": "B-2"}


def test_a_freed_unique_extension_value_can_be_taken_again(
        badge_client: FunctionClient) -> None:
    """Once its holder changes or is deleted, a unique extension value is free again."""
    first = badge_user(badge_client, "a@x.example", badgeId="B-1").json["id"]
    assert badge_client.patch_ops(f"/Users/{first}", {"op": "replace",
                                                      "path": f"{BADGE}:badgeId",
                                                      "value": "B-9"}).status == 200
    second = badge_user(badge_client, "b@x.example", badgeId="B-1")
    assert second.status == 201, second.body
    assert badge_client.delete(f"/Users/{second.json['id']}").status == 204
    assert badge_user(badge_client, "c@x.example", badgeId="b-1").status == 201


def test_a_unique_extension_attribute_is_found_by_a_point_read(
        badge_client: FunctionClient) -> None:
    """``eq`` on a unique extension attribute finds its user through the index, and the
    exact evaluator still decides (a case-exact value must match exactly)."""
    wanted = badge_user(badge_client, "a@x.example", badgeId="B-7", serial="S-7").json["id"]
    badge_user(badge_client, "b@x.example", badgeId="B-8", serial="S-8")
    for text in (f'{BADGE}:badgeId eq "b-7"', f'{BADGE}:serial eq "S-7"',
                 'badgeId eq "B-7" and userName pr'):
        found = badge_client.get("/Users", params={"filter": text}).json
        assert [r["id"] for r in found["Resources"]] == [wanted], text
    missing = badge_client.get("/Users", params={"filter": f'{BADGE}:serial eq "s-7"'})
    assert missing.json["totalResults"] == 0


def test_a_unique_extension_lookup_costs_the_same_reads_as_username(
        table_harness: TableHarness) -> None:
    """On Table Storage, ``eq`` on a unique extension attribute is one point read of its
    index row (which carries a copy of the user), as ``userName eq`` is, however many users
    the tenant holds."""
    use_api(make_api(table_harness.store, extension_schemas=json.dumps([BADGE_SCHEMA])))
    client = FunctionClient()
    for n in range(12):
        assert badge_user(client, f"u{n}@x.example", badgeId=f"B-{n}").status == 201
    log = table_harness.requests
    costs = []
    for text in (f'{BADGE}:badgeId eq "B-5"', 'userName eq "u5@x.example"'):
        log.clear()
        assert client.get("/Users", params={"filter": text}).json["totalResults"] == 1
        costs.append((log.count, log.point_reads()))
    assert costs == [(1, 1), (1, 1)]
