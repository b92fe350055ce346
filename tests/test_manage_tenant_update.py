"""PATCH /manage/v1/tenants/{id}: renaming through TenantAdmin, and If-Match checked
inside the same conditional write of the registry row (a stale or racing update gets 412
and changes nothing)."""

from __future__ import annotations

import importlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from scim_core import Request, Settings
from scim_core.http import Response
from scim_core.manage import ManageApi
from scim_core.manage.keys import ApiKeys
from scim_core.manage.problems import TYPE_PREFIX
from scim_core.manage.rows import side_rows
from scim_core.store import MemoryStore
from scim_core.store.secrets import local_secrets
from scim_core.tenants.model import Tenant
from scim_core.tenants.registry import MemoryTenantRegistry
from tests.support import TOKEN

BASE = "https://vendor.example/manage/v1"
SETTINGS = Settings(store="memory", bearer_token=TOKEN)


class MeetingRegistry(MemoryTenantRegistry):
    """A registry whose first ``held`` updates (two) wait for each other: every racer has read
    the row before any of them writes it."""

    def __init__(self, held: int) -> None:
        super().__init__()
        self.meet = threading.Barrier(2, timeout=10)
        self.held = held
        self.lock = threading.Lock()

    def update(self, tenant: Tenant) -> Tenant:
        with self.lock:
            wait = self.held > 0
            self.held -= 1
        if wait:
            self.meet.wait()
        return super().update(tenant)


class RacingStore(MemoryStore):
    def __init__(self, registry: MemoryTenantRegistry) -> None:
        super().__init__()
        self._registry = registry


class Api:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.manage = ManageApi(store, local_secrets(store), SETTINGS)
        _, self.key = ApiKeys(side_rows(store)).create("manage")

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> Response:
        sent = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                **(headers or {})}
        data = b"" if body is None else json.dumps(body).encode()
        return self.manage.handle(Request(method, path, BASE, {}, sent, data))


@pytest.fixture
def api() -> Api:
    made = Api(MemoryStore())
    assert made.call("POST", "/tenants", {"id": "acme", "name": "Acme"}).status == 201
    return made


def test_tenant_admin_renames_and_keeps_the_rest() -> None:
    """rename changes the display name only (id, state, creation stay); a bad name or an
    unknown tenant is refused."""
    admin = Api(MemoryStore()).manage.admin()  # however the admin is built, as the API's
    refused = importlib.import_module(type(admin).__module__).TenantAdminError
    tenant, _ = admin.create("Acme", tenant_id="acme")
    renamed = admin.rename("acme", "  Acme Corp  ")
    assert (renamed.id, renamed.name, renamed.state, renamed.created) == (
        "acme", "Acme Corp", tenant.state, tenant.created)
    assert admin.show("acme").name == "Acme Corp"
    with pytest.raises(refused):
        admin.rename("acme", "\x00")
    with pytest.raises(refused):
        admin.rename("nobody", "X")
    assert admin.show("acme").name == "Acme Corp"


def test_patch_renames_and_changes_the_etag(api: Api) -> None:
    """PATCH {name} with the current ETag renames the tenant; the ETag changes."""
    tag = api.call("GET", "/tenants/acme").headers["ETag"]
    changed = api.call("PATCH", "/tenants/acme", {"name": "Acme Corp"}, {"If-Match": tag})
    assert changed.status == 200, changed.body
    assert changed.document()["name"] == "Acme Corp" and changed.headers["ETag"] != tag
    assert api.call("GET", "/tenants/acme").document()["name"] == "Acme Corp"


def test_patch_renames_and_disables_in_one_write(api: Api) -> None:
    """PATCH {name, enabled: false} applies both in one answer."""
    changed = api.call("PATCH", "/tenants/acme", {"name": "Acme Corp", "enabled": False})
    assert changed.status == 200, changed.body
    assert (changed.document()["name"], changed.document()["state"]) == (
        "Acme Corp", "disabled")


def test_a_stale_if_match_is_412_and_changes_nothing(api: Api) -> None:
    """PATCH with an ETag of an earlier version answers 412 with the current ETag."""
    old = api.call("GET", "/tenants/acme").headers["ETag"]
    assert api.call("PATCH", "/tenants/acme", {"enabled": False}).status == 200
    now = api.call("GET", "/tenants/acme")
    refused = api.call("PATCH", "/tenants/acme", {"name": "Other"}, {"If-Match": old})
    assert refused.status == 412, refused.body
    assert refused.document()["type"] == TYPE_PREFIX + "precondition-failed"
    assert refused.headers["ETag"] == now.headers["ETag"]
    assert api.call("GET", "/tenants/acme").document() == now.document()


def test_a_bad_name_is_400(api: Api) -> None:
    """PATCH with an empty name is a 400 problem and changes nothing."""
    refused = api.call("PATCH", "/tenants/acme", {"name": "   "})
    assert refused.status == 400, refused.body
    assert api.call("GET", "/tenants/acme").document()["name"] == "Acme"


def test_two_racing_updates_with_one_etag_one_wins_the_other_gets_412() -> None:
    """Two PATCHes with the same If-Match that both read the row before either writes:
    one is applied, the other answers 412 and its change is not."""
    registry = MeetingRegistry(held=0)
    api = Api(RacingStore(registry))
    assert api.call("POST", "/tenants", {"id": "acme", "name": "Acme"}).status == 201
    tag = api.call("GET", "/tenants/acme").headers["ETag"]
    registry.held = 2
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda name: api.call("PATCH", "/tenants/acme", {"name": name},
                                  {"If-Match": tag}), ["First", "Second"]))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 412], [a.body for a in answers]
    winner = next(a for a in answers if a.status == 200).document()["name"]
    assert api.call("GET", "/tenants/acme").document()["name"] == winner
