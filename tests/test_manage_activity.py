"""The activity log and connection health through the management API: a tenant's
requests (SCIM and management calls naming it) searched by name, status and operation,
with the read scope, tenant-bound keys and problems for bad parameters."""

from __future__ import annotations

from typing import Any

import pytest

from scim_core import Request
from scim_core.activity.recorder import ActivityRecorder
from scim_core.http import Response
from tests.support import USER_SCHEMA
from tests.test_manage_api import BASE, World, problem


@pytest.fixture
def world(table_store: Any) -> World:
    return World(table_store)


def flush(world: World) -> None:
    recorder = world.scim.recorder
    assert isinstance(recorder, ActivityRecorder)
    assert recorder.flush()


def get(world: World, path: str, query: dict[str, str]) -> Response:
    return world.manage.handle(Request("GET", path, BASE, query,
                                       {"Authorization": f"Bearer {world.key}"}))


def alice(name: str = "alice@contoso.com") -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name, "active": True}


def test_search_by_username_finds_the_failed_request_and_why(world: World) -> None:
    """GET /tenants/{id}/activity?name= finds every SCIM request naming the user, the
    refused duplicate with its status, scimType and detail; status=4xx keeps only it."""
    token = world.tenant("contoso")
    assert world.scim_call("contoso", token, "POST", "/Users", alice()).status == 201
    assert world.scim_call("contoso", token, "POST", "/Users", alice()).status == 409
    assert world.scim_call("contoso", token, "POST", "/Users", alice("bob@x.com")).status == 201
    flush(world)
    found = world.call("GET", "/tenants/contoso/activity", name="Alice@Contoso.com")
    assert found.status == 200, found.body
    entries = found.document()["entries"]
    assert [e["status"] for e in entries] == [409, 201]
    failed = entries[0]
    assert failed["userName"] == "alice@contoso.com" and failed["scimType"] == "uniqueness"
    assert failed["detail"] and failed["operation"] == "POST /Users"
    only = world.call("GET", "/tenants/contoso/activity", name="alice@contoso.com",
                      status="4xx").document()["entries"]
    assert [e["status"] for e in only] == [409]


def test_activity_pages_with_a_cursor(world: World) -> None:
    """limit and cursor page through the entries, newest first, without repeats."""
    token = world.tenant("contoso")
    for n in range(5):
        world.scim_call("contoso", token, "POST", "/Users", alice(f"u{n}@x.com"))
    flush(world)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = {"operation": "POST /Users", "limit": "2"}
        if cursor:
            query["cursor"] = cursor
        page = get(world, "/tenants/contoso/activity", query).document()
        seen += [e["userName"] for e in page["entries"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert seen == [f"u{n}@x.com" for n in reversed(range(5))]


def test_management_calls_naming_a_tenant_are_recorded_in_its_activity(world: World
                                                                        ) -> None:
    """A management call about a tenant is an entry of that tenant, under its route
    template; another tenant's log does not show it, and a refused credential is not
    recorded."""
    world.tenant("contoso")
    world.tenant("fabrikam")
    assert world.call("GET", "/tenants/contoso/users", userName="x@y.z").status == 200
    assert world.call("GET", "/tenants/contoso/users", key="smk_wrong").status == 401
    flush(world)
    entries = world.call("GET", "/tenants/contoso/activity").document()["entries"]
    routes = [e["route"] for e in entries]
    assert "/manage/v1/tenants/{tenant}/users" in routes
    assert all(e["status"] != 401 for e in entries)
    other = world.call("GET", "/tenants/fabrikam/activity").document()["entries"]
    assert all("/users" not in e["route"] for e in other)


def test_health_shows_requests_and_minutes(world: World) -> None:
    """GET /tenants/{id}/health answers first/last request, last success and the minute
    aggregates; a tenant never called answers seen: false."""
    token = world.tenant("contoso")
    world.tenant("fabrikam")
    assert world.scim_call("contoso", token, "GET", "/Users").status == 200
    flush(world)
    health = world.call("GET", "/tenants/contoso/health")
    assert health.status == 200, health.body
    document = health.document()
    assert document["seen"] and document["lastSuccess"] and document["firstRequest"]
    assert any(m["operation"] == "GET /Users" for m in document["minutes"])
    quiet = world.call("GET", "/tenants/fabrikam/health", since="2026-01-01T00:00:00Z")
    assert quiet.document()["seen"] is False and quiet.document()["minutes"] == []


def test_management_calls_leave_the_connection_health_waiting(world: World) -> None:
    """The vendor's management calls about a tenant are in its log but are not its SCIM
    client's connection: health still says no request was seen until Entra calls."""
    token = world.tenant("contoso")
    assert world.call("GET", "/tenants/contoso/users", userName="x@y.z").status == 200
    flush(world)
    assert world.call("GET", "/tenants/contoso/health").document()["seen"] is False
    assert world.scim_call("contoso", token, "GET", "/Users").status == 200
    flush(world)
    assert world.call("GET", "/tenants/contoso/health").document()["seen"] is True


def test_read_scope_and_tenant_bound_keys(world: World) -> None:
    """A read key reads activity and health; a key bound to another tenant gets 403; an
    unknown tenant 404."""
    world.tenant("contoso")
    world.tenant("fabrikam")
    _, reader = world.keys.create("read", description="r")
    _, bound = world.keys.create("read", tenant="fabrikam", description="b")
    assert world.call("GET", "/tenants/contoso/activity", key=reader).status == 200
    assert world.call("GET", "/tenants/contoso/health", key=reader).status == 200
    problem(world.call("GET", "/tenants/contoso/activity", key=bound), 403, "forbidden")
    problem(world.call("GET", "/tenants/contoso/health", key=bound), 403, "forbidden")
    assert world.call("GET", "/tenants/fabrikam/health", key=bound).status == 200
    problem(world.call("GET", "/tenants/nobody/activity"), 404, "not-found")
    problem(world.call("POST", "/tenants/contoso/activity"), 405, "method-not-allowed")


@pytest.mark.parametrize("query", [{"status": "9xx"}, {"limit": "many"}, {"limit": "0"},
                                   {"since": "yesterday"}, {"until": "13/13/2026"},
                                   {"cursor": "not-a-cursor"}])
def test_bad_activity_parameters_are_problems(world: World, query: dict[str, str]) -> None:
    """A malformed parameter answers 400 invalid-request naming it."""
    world.tenant("contoso")
    found = problem(get(world, "/tenants/contoso/activity", query), 400,
                    "invalid-request")
    assert next(iter(query)) in found["detail"]


def test_bad_health_parameter_is_a_problem(world: World) -> None:
    """health?since=garbage answers 400."""
    world.tenant("contoso")
    problem(world.call("GET", "/tenants/contoso/health", since="soon"), 400,
            "invalid-request")


def test_a_range_far_in_the_past_or_future_is_bounded(world: World) -> None:
    """since=0001 and until=9999 answer promptly (the range is cut to what is kept)."""
    world.tenant("contoso")
    assert world.call("GET", "/tenants/contoso/activity", since="0001-01-01T00:00:00Z",
                      until="9999-12-31T00:00:00Z").status == 200
    assert world.call("GET", "/tenants/contoso/health", since="0001-01-01T00:00:00Z",
                      until="9999-12-31T00:00:00Z").status == 200


def test_token_versions_and_health_show_each_versions_last_use(world: World) -> None:
    """GET /tokens and /health show, per token version, its creation and last use: the
    versions a SCIM request used have one, a version never used has none."""
    first = world.tenant("contoso")
    assert world.scim_call("contoso", first, "GET", "/Users").status == 200
    rotated = world.call("POST", "/tenants/contoso/tokens")
    assert rotated.status == 201, rotated.body
    second = str(rotated.document()["token"])
    world.scim.tokens.forget("contoso")  # as another process would, after its cache time
    assert world.scim_call("contoso", second, "GET", "/Users").status == 200
    assert world.call("POST", "/tenants/contoso/tokens/retire").status == 200
    assert world.call("POST", "/tenants/contoso/tokens").status == 201  # never used
    flush(world)
    items = world.call("GET", "/tenants/contoso/tokens").document()["items"]
    assert len(items) == 3
    newest, used_second, used_first = items
    assert newest["lastUsed"] is None
    assert used_second["lastUsed"] and used_first["lastUsed"]
    assert used_second["lastUsed"] >= used_first["lastUsed"]
    health = world.call("GET", "/tenants/contoso/health").document()
    by_version = {v["version"]: v for v in health["tokenVersions"]}
    assert by_version[used_first["version"]]["created"] == used_first["created"]
    assert by_version[used_first["version"]]["lastUsed"] == used_first["lastUsed"]
    assert by_version[newest["version"]]["lastUsed"] is None
