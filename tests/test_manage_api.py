"""The management API over Table Storage on Azurite, through its HTTP-neutral faces: the
same store and local secrets serve SCIM requests (ScimApi) and management requests."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from scim_core import Request, Settings, build_api
from scim_core.http import Response
from scim_core.manage import ManageApi
from scim_core.manage.directory import Directory
from scim_core.manage.keys import ApiKeys
from scim_core.manage.problems import TYPE_PREFIX
from scim_core.manage.rows import side_rows
from scim_core.store.secrets import local_secrets
from tests.support import GROUP_SCHEMA, TOKEN, USER_SCHEMA

BASE = "https://vendor.example/manage/v1"
SITE = "https://vendor.example"


class World:
    """A store on Azurite, its ScimApi and ManageApi, and a manage-scope key."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.secrets = local_secrets(store)
        settings = Settings(store="tables", bearer_token=TOKEN)
        self.scim = build_api(settings, store=store, secrets=self.secrets)
        self.manage = ManageApi(store, self.secrets, settings, recorder=self.scim.recorder)
        self.keys = ApiKeys(side_rows(store))
        _, self.key = self.keys.create("manage", description="tests")

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None,
             **query: str) -> Response:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        sent = {"Authorization": f"Bearer {key or self.key}", **(headers or {})}
        if data:
            sent.setdefault("Content-Type", "application/json")
        return self.manage.handle(Request(method, path, BASE, query, sent, data))

    def scim_call(self, tenant: str, token: str, method: str, path: str,
                  body: Any = None) -> Response:
        data = b"" if body is None else json.dumps(body).encode()
        return self.scim.handle(Request(
            method, path, f"{SITE}/tenants/{tenant}/scim/v2", {},
            {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
            data, tenant=tenant))

    def tenant(self, tenant_id: str) -> str:
        created = self.call("POST", "/tenants", {"id": tenant_id, "name": tenant_id.title()})
        assert created.status == 201, created.body
        return str(created.document()["token"])


@pytest.fixture
def world(table_store: Any) -> World:
    return World(table_store)


def problem(response: Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status == status, response.body
    assert response.headers["Content-Type"] == "application/problem+json"
    document = response.document()
    assert document["type"] == TYPE_PREFIX + kind and document["status"] == status
    return dict(document)


def test_create_answers_tenant_url_and_a_working_token_once(world: World) -> None:
    """POST /tenants answers the Tenant URL and a token that the SCIM API accepts; reading
    the tenant again never shows a token."""
    created = world.call("POST", "/tenants", {"id": "contoso", "name": "Contoso"})
    assert created.status == 201
    document = created.document()
    assert document["tenantUrl"] == f"{SITE}/tenants/contoso/scim/v2"
    assert created.headers["Cache-Control"] == "no-store"
    assert world.scim_call("contoso", document["token"], "GET", "/Users").status == 200
    shown = world.call("GET", "/tenants/contoso")
    assert shown.status == 200 and "token" not in shown.document()
    assert shown.document()["state"] == "enabled" and shown.headers["ETag"]


def test_credentials_never_work_in_each_others_place(world: World) -> None:
    """A SCIM token gets 401 with WWW-Authenticate from /manage; an API key gets 401 from
    SCIM; no credential at all gets 401."""
    token = world.tenant("acme")
    refused = world.call("GET", "/tenants", key=token)
    problem(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert world.manage.handle(Request("GET", "/tenants", BASE)).status == 401
    assert world.scim_call("acme", world.key, "GET", "/Users").status == 401


def test_read_scope_and_tenant_binding_get_403(world: World) -> None:
    """A read key cannot manage tenants (403); a key bound to one tenant reads only it."""
    world.tenant("acme")
    world.tenant("umbrella")
    _, reader = world.keys.create("read")
    problem(world.call("GET", "/tenants/acme", key=reader), 403, "forbidden")
    problem(world.call("POST", "/tenants", {"name": "X"}, key=reader), 403, "forbidden")
    assert world.call("GET", "/tenants/acme/users", key=reader).status == 200
    _, bound = world.keys.create("read", tenant="acme")
    assert world.call("GET", "/tenants/acme/users", key=bound).status == 200
    problem(world.call("GET", "/tenants/umbrella/users", key=bound), 403, "forbidden")


def test_admin_refusals_become_problems_with_stable_types(world: World) -> None:
    """The tenant admin's own messages come back as problems: invalid id 400, taken id
    409 tenant-exists, unknown tenant 404, the default tenant's delete 409."""
    world.tenant("acme")
    bad = problem(world.call("POST", "/tenants", {"id": "Not An Id", "name": "X"}), 400,
                  "invalid-request")
    assert "tenant id" in bad["detail"]
    problem(world.call("POST", "/tenants", {"id": "acme", "name": "Again"}), 409,
            "tenant-exists")
    problem(world.call("GET", "/tenants/nobody"), 404, "not-found")
    problem(world.call("DELETE", "/tenants/default"), 409, "conflict")
    problem(world.call("POST", "/tenants", {"name": 5}), 400, "invalid-request")
    problem(world.call("POST", "/tenants", raw=b"{not json"), 400, "invalid-request")
    problem(world.call("POST", "/tenants", raw=b"{" + b" " * 70_000 + b"}"), 413,
            "payload-too-large")
    problem(world.call("PUT", "/tenants"), 405, "method-not-allowed")


def test_update_honours_if_match_and_disables_scim(world: World) -> None:
    """PATCH with a stale ETag is refused (412, nothing changed); with the current one it
    disables the tenant, whose Tenant URL then answers 403."""
    token = world.tenant("acme")
    tag = world.call("GET", "/tenants/acme").headers["ETag"]
    problem(world.call("PATCH", "/tenants/acme", {"enabled": False},
                       headers={"If-Match": '"stale"'}), 412, "precondition-failed")
    assert world.call("GET", "/tenants/acme").document()["enabled"] is True
    changed = world.call("PATCH", "/tenants/acme", {"enabled": False},
                         headers={"If-Match": tag})
    assert changed.status == 200 and changed.document()["state"] == "disabled"
    assert changed.headers["ETag"] != tag
    world.scim.tenants.forget("acme")
    assert world.scim_call("acme", token, "GET", "/Users").status == 403


def test_delete_answers_202_with_a_status_to_poll(world: World) -> None:
    """DELETE answers 202; the deletion status says deleted; the token stops working and
    the tenant is gone."""
    token = world.tenant("acme")
    world.scim_call("acme", token, "POST", "/Users", {"schemas": [USER_SCHEMA],
                                                      "userName": "a@x"})
    deleted = world.call("DELETE", "/tenants/acme")
    assert deleted.status == 202 and deleted.headers["Location"].endswith(
        "/tenants/acme/deletion")
    status = world.call("GET", "/tenants/acme/deletion")
    assert status.status == 200 and status.document()["status"] in ("deleting", "deleted")
    for _ in range(100):
        if world.call("GET", "/tenants/acme/deletion").document()["status"] == "deleted":
            break
        threading.Event().wait(0.1)
    problem(world.call("GET", "/tenants/acme"), 404, "not-found")
    world.scim.tenants.forget("acme")
    assert world.scim_call("acme", token, "GET", "/Users").status == 401


def test_rotate_retire_and_list_versions_without_values(world: World) -> None:
    """Rotation answers a new token; the version list holds metadata only, never a value;
    after retire the new token works and the first is refused."""
    first = world.tenant("acme")
    rotated = world.call("POST", "/tenants/acme/tokens")
    assert rotated.status == 201
    second = rotated.document()["token"]
    listed = world.call("GET", "/tenants/acme/tokens")
    assert [v["valid"] for v in listed.document()["items"]] == [True, True]
    assert first not in listed.body.decode() and second not in listed.body.decode()
    retired = world.call("POST", "/tenants/acme/tokens/retire")
    assert retired.status == 200 and retired.document()["disabled"] == 1
    world.scim.tokens.forget("acme")
    assert world.scim_call("acme", second, "GET", "/Users").status == 200
    assert world.scim_call("acme", first, "GET", "/Users").status == 401


def test_directory_pages_lookups_and_memberships(world: World) -> None:
    """Users page with limit and next; lookups by userName (any case), externalId and
    displayName; a group's members and a user's groups: what SCIM wrote."""
    token = world.tenant("acme")
    ids = []
    for n in range(3):
        made = world.scim_call("acme", token, "POST", "/Users", {
            "schemas": [USER_SCHEMA], "userName": f"user{n}@acme.example",
            "externalId": f"ext-{n}"})
        ids.append(made.document()["id"])
    group = world.scim_call("acme", token, "POST", "/Groups", {
        "schemas": [GROUP_SCHEMA], "displayName": "Staff",
        "members": [{"value": ids[0]}]}).document()
    first = world.call("GET", "/tenants/acme/users", limit="2").document()
    assert len(first["items"]) == 2 and first["next"]
    rest = world.call("GET", "/tenants/acme/users", limit="2", next=first["next"]).document()
    assert {u["id"] for u in first["items"] + rest["items"]} == set(ids)
    by_name = world.call("GET", "/tenants/acme/users", userName="USER1@acme.example")
    assert [u["id"] for u in by_name.document()["items"]] == [ids[1]]
    by_ext = world.call("GET", "/tenants/acme/users", externalId="ext-2")
    assert [u["id"] for u in by_ext.document()["items"]] == [ids[2]]
    assert world.call("GET", "/tenants/acme/groups", displayName="staff").document()[
        "items"][0]["id"] == group["id"]
    members = world.call("GET", f"/tenants/acme/groups/{group['id']}/members").document()
    assert [m["userId"] for m in members["items"]] == [ids[0]]
    groups = world.call("GET", f"/tenants/acme/users/{ids[0]}/groups").document()
    assert [g["groupId"] for g in groups["items"]] == [group["id"]]
    problem(world.call("GET", "/tenants/acme/users/nope"), 404, "not-found")
    problem(world.call("GET", "/tenants/acme/users", next="garbage!"), 400, "cursor-invalid")


def test_events_in_commit_order_and_expired_cursor(world: World) -> None:
    """Events page after a cursor with the next one; a cursor retention has passed gets
    410 cursor-expired telling the caller to resynchronise."""
    token = world.tenant("acme")
    start = world.call("GET", "/tenants/acme/events/position").document()["position"]
    for n in range(3):
        world.scim_call("acme", token, "POST", "/Users", {"schemas": [USER_SCHEMA],
                                                          "userName": f"u{n}@x"})
    page = world.call("GET", "/tenants/acme/events", after=start, limit="2").document()
    assert [e["type"] for e in page["events"]] == ["user.created", "user.created"]
    more = world.call("GET", "/tenants/acme/events", after=page["next"]).document()
    assert [e["position"] for e in more["events"]] == [int(page["next"]) + 1]
    world.store.tenant("acme").trim(before="9999-01-01T00:00:00Z", limit=100)
    expired = problem(world.call("GET", "/tenants/acme/events", after=start), 410,
                      "cursor-expired")
    assert "resynchronise" in expired["detail"]


def test_long_poll_answers_as_soon_as_an_event_exists(world: World) -> None:
    """wait=20 returns the event a SCIM write commits while it waits, well before 20 s."""
    token = world.tenant("acme")
    position = world.call("GET", "/tenants/acme/events/position").document()["position"]
    writer = threading.Timer(0.5, lambda: world.scim_call(
        "acme", token, "POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "late@x"}))
    writer.start()
    answer = world.call("GET", "/tenants/acme/events", after=position, wait="20")
    writer.join()
    assert [e["type"] for e in answer.document()["events"]] == ["user.created"]


def test_long_poll_holds_a_bounded_number_of_threads(world: World) -> None:
    """With one waiter allowed, a second long-poll answers at once without waiting."""
    world.tenant("acme")
    release = threading.Event()
    directory = Directory(world.store.table, max_waiters=1,
                          sleep=lambda seconds: release.wait(seconds))
    first: list[bool] = []
    waiter = threading.Thread(target=lambda: first.append(
        directory.events("acme", None, 10, 2.0)[1]))
    waiter.start()
    threading.Event().wait(0.2)
    _, waited = directory.events("acme", None, 10, 2.0)
    release.set()
    waiter.join()
    assert first == [True] and waited is False


def test_idempotency_key_replays_the_first_answer(world: World) -> None:
    """A retried create with the same Idempotency-Key answers the same tenant and token and
    creates nothing more; the same key with another body is refused; the stored row does
    not hold the token in the clear."""
    headers = {"Idempotency-Key": "8d0c7a7e-onboard-1"}
    first = world.call("POST", "/tenants", {"name": "Contoso"}, headers=headers)
    again = world.call("POST", "/tenants", {"name": "Contoso"}, headers=headers)
    assert first.status == again.status == 201 and first.body == again.body
    assert again.headers["Idempotent-Replayed"] == "true"
    names = [t["name"] for t in world.call("GET", "/tenants").document()["items"]]
    assert names.count("Contoso") == 1
    problem(world.call("POST", "/tenants", {"name": "Other"}, headers=headers), 422,
            "idempotency-key-reused")
    rows = list(side_rows(world.store).scan("$idempotency"))
    assert rows and first.document()["token"] not in json.dumps(rows)


def test_api_keys_created_listed_and_revoked_over_the_api(world: World) -> None:
    """POST /apikeys shows a key once; the list shows no value or hash; a revoked key gets
    401 at once in this process."""
    made = world.call("POST", "/apikeys", {"scope": "read", "description": "reporting"})
    assert made.status == 201
    value, key_id = made.document()["key"], made.document()["id"]
    assert world.call("GET", "/tenants/default/users", key=value).status == 200
    listed = world.call("GET", "/apikeys").body.decode()
    assert key_id in listed and value not in listed and "hash" not in listed
    assert world.call("DELETE", f"/apikeys/{key_id}").status == 200
    problem(world.call("GET", "/tenants/default/users", key=value), 401, "unauthorized")


def test_a_retried_rotation_issues_no_second_token(world: World) -> None:
    """Two POSTs to …/tokens with one Idempotency-Key answer the same token, and the
    tenant has two versions (the first and one rotation), not three."""
    world.tenant("acme")
    headers = {"Idempotency-Key": "rotate-acme-1"}
    first = world.call("POST", "/tenants/acme/tokens", headers=headers)
    again = world.call("POST", "/tenants/acme/tokens", headers=headers)
    assert first.status == 201 and again.body == first.body
    assert len(world.call("GET", "/tenants/acme/tokens").document()["items"]) == 2


def test_no_token_or_key_reaches_the_log(world: World, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    """Creating a tenant, rotating, creating a key and refusing a bad key log no value."""
    caplog.set_level("DEBUG")
    token = world.tenant("acme")
    rotated = world.call("POST", "/tenants/acme/tokens").document()["token"]
    key = world.call("POST", "/apikeys", {"scope": "read"}).document()["key"]
    world.call("GET", "/tenants", key=key[:-2] + "xx")
    for value in (token, rotated, key, world.key):
        assert value not in caplog.text


def test_a_stopped_deletion_goes_on_when_its_status_is_polled(world: World) -> None:
    """A tenant left 'deleting' (a process stopped mid-delete) is finished by polling
    GET …/deletion, which reports deleting, then deleted."""
    from scim_core.tenants.model import DELETING

    world.tenant("acme")
    registry = world.store.tenant_registry()
    tenant = registry.get("acme")
    registry.update(tenant.with_state(DELETING, tenant.changed))
    statuses = []
    for _ in range(100):
        statuses.append(world.call("GET", "/tenants/acme/deletion").document()["status"])
        if statuses[-1] == "deleted":
            break
        threading.Event().wait(0.1)
    assert statuses[-1] == "deleted" and registry.get("acme") is None


def test_memory_store_keeps_keys_beside_it() -> None:
    """Over a memory store, the API and the admin side see the same keys (one row set per
    store); another store sees none."""
    from scim_core.store import MemoryStore

    store = MemoryStore()
    _, key = ApiKeys(side_rows(store)).create("manage")
    api = ManageApi(store, local_secrets(store), Settings(store="memory", bearer_token=TOKEN))
    ask = Request("GET", "/tenants", BASE, {}, {"Authorization": f"Bearer {key}"})
    assert api.handle(ask).status == 200
    other = MemoryStore()
    assert ManageApi(other, local_secrets(other), api.settings).handle(ask).status == 401


def test_storage_failing_answers_503_and_creates_nothing(
        table_harness: Any, fault_proxy: Any) -> None:
    """With Table Storage answering 503 ServerBusy, reads and a create answer a 503 problem
    with Retry-After (never a 500), and no tenant exists once storage is back."""
    from tests.azurite import Fault

    world = World(table_harness.store)
    faulty_store = table_harness.another_store(
        connection_string=fault_proxy.connection_string)
    faulty = World.__new__(World)
    faulty.__dict__.update(world.__dict__)
    faulty.manage = ManageApi(faulty_store, local_secrets(faulty_store),
                              world.manage.settings)
    assert faulty.call("GET", "/tenants").status == 200  # the key is checked and cached
    fault_proxy.rule = lambda method, target, number: Fault.busy()
    for method, path, body in (("GET", "/tenants", None), ("GET", "/tenants/acme", None),
                               ("POST", "/tenants", {"id": "acme", "name": "Acme"})):
        answer = faulty.call(method, path, body)
        problem(answer, 503, "unavailable")
        assert answer.headers["Retry-After"]
    fault_proxy.rule = lambda method, target, number: None
    problem(world.call("GET", "/tenants/acme"), 404, "not-found")
