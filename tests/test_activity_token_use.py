"""Token versions' last use: each token source tells which version a token matched from
what it holds already (no storage or vault call, no hash derived), and the activity
health keeps each version's last use, written at most once a minute per process."""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scim_core import Request
from scim_core.activity import ActivityLog
from scim_core.activity.layout import HEALTH_ROW
from scim_core.activity.recorder import ActivityRecorder
from scim_core.activity.rows import MemoryActivityRows, Row
from scim_core.auth import StaticTokenSource
from scim_core.auth import local_secrets as local_module
from scim_core.auth.keyvault import KeyVaultTokenSource
from scim_core.auth.local_secrets import LocalTokenSource
from scim_core.http import Response
from scim_core.store import MemoryStore
from scim_core.store.secrets import local_secrets
from tests.kvfake import FakeClock, FakeKeyVault
from tests.test_activity import ENDPOINTS

SECRET = "scim-token-contoso"


def test_static_source_names_its_one_version() -> None:
    """The static token is version ``static``; any other token has none."""
    source = StaticTokenSource("s3cret-token")
    assert source.version_of("s3cret-token") == "static"
    assert source.version_of("other") is None


def test_local_source_tells_the_version_without_reading_or_hashing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After accepts, version_of names each token's version with no load and no salted
    hash; an unknown token, or one never accepted, has none."""
    kept = local_secrets(MemoryStore())
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    v1 = kept.add(SECRET, first).version
    v2 = kept.add(SECRET, second).version
    loads = 0

    def load() -> list[Any]:
        nonlocal loads
        loads += 1
        return kept._rows.list(SECRET)  # type: ignore[attr-defined]

    source = LocalTokenSource(load, SECRET, cache_seconds=60)
    assert source.accepts(first) and source.accepts(second)
    before, hashed = loads, 0
    real = local_module.verify_token

    def counting(token: str, stored: str) -> bool:
        nonlocal hashed
        hashed += 1
        return real(token, stored)

    monkeypatch.setattr(local_module, "verify_token", counting)
    assert source.version_of(first) == v1 and source.version_of(second) == v2
    assert source.version_of("never-accepted") is None
    assert (loads, hashed) == (before, 0)


@pytest.fixture
def vault(clock: FakeClock) -> Iterator[FakeKeyVault]:
    with FakeKeyVault(clock=clock) as fake:
        yield fake


def test_keyvault_source_tells_the_version_without_a_vault_call(
        vault: FakeKeyVault, clock: FakeClock) -> None:
    """version_of answers from the cached versions: no Key Vault request; None before the
    cache is loaded and for an unknown token."""
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    v1 = vault.add_version(SECRET, first)
    clock.advance(1)
    v2 = vault.add_version(SECRET, second)
    source = KeyVaultTokenSource(vault.client(), SECRET, cache_seconds=60, clock=clock)
    assert source.version_of(first) is None  # nothing cached yet, and nothing read for it
    assert vault.count("list_versions") == 0
    assert source.accepts(first)
    vault.reset_counts()
    assert source.version_of(first) == v1 and source.version_of(second) == v2
    assert source.version_of("unknown") is None
    assert vault.count("list_versions") == 0 and vault.count("get") == 0


class CountingRows(MemoryActivityRows):
    """Memory rows counting writes of the health row."""

    def __init__(self) -> None:
        super().__init__()
        self.health_puts = 0

    def put(self, row: Row, *, etag: str | None) -> bool:
        done = super().put(row, etag=etag)
        if done and row["RowKey"] == HEALTH_ROW:
            self.health_puts += 1
        return done


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "the writer did not get there"
        time.sleep(0.01)


def test_token_use_is_written_at_most_once_a_minute(clock: FakeClock) -> None:
    """Uses of a version within a minute of its last health write wait; a use a minute
    later is written with its time, per version."""
    rows = CountingRows()
    recorder = ActivityRecorder(rows, endpoints=ENDPOINTS, interval=0.01, wake_at=1,
                                max_wait=0, health_interval=60, clock=clock)
    log = ActivityLog(rows, clock=clock)
    request = Request("GET", "/Users", "http://127.0.0.1/scim/v2", {}, {})
    ok = Response.json(200, {"Resources": []})

    def use(version: str, count: int) -> None:
        recorder.record(request, ok, "contoso", None, 0.001, token_version=version)
        wait_for(lambda: recorder.counters.written >= count)

    use("v1", 1)
    wait_for(lambda: rows.health_puts == 1)
    first = log.health("contoso")["tokenVersions"]
    assert [v["version"] for v in first] == ["v1"]
    clock.advance(10)
    use("v1", 2)
    use("v2", 3)
    assert rows.health_puts == 1 and log.health("contoso")["tokenVersions"] == first
    clock.advance(61)
    use("v2", 4)
    wait_for(lambda: rows.health_puts == 2)
    later = {v["version"]: v["lastUsed"] for v in log.health("contoso")["tokenVersions"]}
    assert later["v1"] > first[0]["lastUsed"]  # its use at +10 s, written with the rest
    assert later["v2"] > later["v1"]
    recorder.close()


def test_an_auth_failure_notes_no_token_use(clock: FakeClock) -> None:
    """A refused request records no version's use, even if one is passed."""
    rows = MemoryActivityRows()
    recorder = ActivityRecorder(rows, endpoints=ENDPOINTS, clock=clock)
    request = Request("GET", "/Users", "http://127.0.0.1/scim/v2", {}, {})
    recorder.record(request, Response.json(401, {}), "contoso", "wrong token", 0.001,
                    token_version="v1")
    assert recorder.flush()
    assert ActivityLog(rows, clock=clock).health("contoso")["tokenVersions"] == []


def test_the_admin_health_command_shows_each_versions_last_use() -> None:
    """`health --tenant` prints each token version's creation and its last use (None for
    a version no request used)."""
    from scim_core import Settings, build_api
    from scim_core.admin import main
    from scim_core.manage import ManageApi

    store = MemoryStore()
    settings = Settings(store="memory", bearer_token="static-token")
    kept = local_secrets(store)
    api = build_api(settings, store=store, secrets=kept)
    admin = ManageApi(store, kept, settings).admin()
    _, token = admin.create("Contoso", tenant_id="contoso")
    ask = Request("GET", "/Users", "http://127.0.0.1/tenants/contoso/scim/v2", {},
                  {"Authorization": f"Bearer {token}"}, tenant="contoso")
    assert api.handle(ask).status == 200
    assert isinstance(api.recorder, ActivityRecorder) and api.recorder.flush(10.0)
    admin.rotate("contoso")  # a second version, never used
    out = io.StringIO()
    assert main(["health", "--tenant", "contoso"], out=out, env={"SCIM_STORE": "memory"},
                store=store) == 0
    versions = json.loads(out.getvalue())["tokenVersions"]
    assert len(versions) == 2 and all(v["created"] for v in versions)
    assert sorted(v["lastUsed"] is None for v in versions) == [False, True]
