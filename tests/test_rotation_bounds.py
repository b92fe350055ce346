"""When a rotation takes effect: a retired token stops within one SCIM_TOKEN_CACHE_SECONDS, a
new token is accepted at once or within min(cache interval, 5 s), and wrong tokens cannot
make the vault be read more often than that (Key Vault fake and local secrets)."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from scim_core import admin
from scim_core.app import LocalDefaultToken, build_admin, build_api
from scim_core.auth.keyvault import KeyVaultTokenSource
from scim_core.auth.local_secrets import LocalSecrets
from scim_core.config import Settings
from scim_core.http import Request
from scim_core.operations.tenants import TenantAdmin
from scim_core.store import MemoryStore
from scim_core.store.secrets import MemoryVersionRows
from tests.kvfake import FakeClock, FakeCredential, FakeKeyVault

pytestmark = pytest.mark.timeout(60)

SECRET = "scim-bearer-token"


@pytest.fixture
def vault(clock: FakeClock) -> Iterator[FakeKeyVault]:
    with FakeKeyVault(clock=clock) as fake:
        yield fake


def run_admin(vault: FakeKeyVault, command: str) -> str:
    out = io.StringIO()
    code = admin.main([command, "--vault-url", vault.url], credential=FakeCredential(),
                      client_kwargs=vault.client_kwargs(), out=out)
    assert code == 0
    return out.getvalue()


def vault_source(vault: FakeKeyVault, clock: FakeClock, cache_seconds: float
                 ) -> KeyVaultTokenSource:
    """The source as the app builds it: the default 5 s interval, only the TTL set."""
    return KeyVaultTokenSource(vault.client(), SECRET, cache_seconds=cache_seconds, clock=clock)


def rotate(vault: FakeKeyVault) -> str:
    run_admin(vault, "rotate-token")
    return vault.versions(SECRET)[-1].value


@pytest.mark.parametrize("cache_seconds", [1, 3, 60])
def test_retired_token_stops_one_cache_interval_after_retire(
        vault: FakeKeyVault, clock: FakeClock, cache_seconds: int) -> None:
    """A token retired right after the cache was loaded is refused once SCIM_TOKEN_CACHE_SECONDS
    has passed, not at the next 5 s refresh window."""
    old = rotate(vault)
    clock.advance(1)
    new = rotate(vault)
    source = vault_source(vault, clock, cache_seconds)
    assert source.accepts(old) and source.accepts(new)
    run_admin(vault, "retire-token")
    clock.advance(cache_seconds - 0.01)
    assert source.accepts(old)  # still cached: the documented window
    clock.advance(0.01)
    before = vault.count("list_versions")
    assert not source.accepts(old)
    assert source.accepts(new)
    assert vault.count("list_versions") == before + 1  # one reload decided both


@pytest.mark.parametrize(("cache_seconds", "bound"), [(1, 1.0), (3, 3.0), (60, 5.0)])
def test_new_token_accepted_within_min_of_cache_interval_and_5s(
        vault: FakeKeyVault, clock: FakeClock, cache_seconds: int, bound: float) -> None:
    """A token rotated in just after a reload is accepted after min(cache interval, 5 s) at the
    latest, even while the old token keeps the cache fresh."""
    old = rotate(vault)
    source = vault_source(vault, clock, cache_seconds)
    assert source.accepts(old)  # a reload, now
    new = rotate(vault)
    clock.advance(bound - 0.01)
    assert source.accepts(old)
    clock.advance(0.01)
    assert source.accepts(new)


def test_new_token_accepted_at_once_when_no_reload_is_recent(
        vault: FakeKeyVault, clock: FakeClock) -> None:
    """With SCIM_TOKEN_CACHE_SECONDS=1, a token rotated in a second after the last reload works
    on its first request."""
    old = rotate(vault)
    source = vault_source(vault, clock, 1)
    assert source.accepts(old)
    clock.advance(1)
    new = rotate(vault)
    assert source.accepts(new)


@pytest.mark.parametrize(("cache_seconds", "window"), [(0, 1.0), (1, 1.0), (60, 5.0)])
def test_wrong_token_flood_reads_the_vault_once_per_window(
        vault: FakeKeyVault, clock: FakeClock, cache_seconds: int, window: float) -> None:
    """400 wrong tokens sent concurrently cause at most one vault read per
    min(max(cache interval, 1 s), 5 s), however short the cache interval."""
    token = rotate(vault)
    source = vault_source(vault, clock, cache_seconds)
    assert source.accepts(token)
    wrong = [secrets.token_urlsafe(32) for _ in range(400)]
    loaded = vault.count("list_versions")
    for reads in (0, 1, 2):
        with ThreadPoolExecutor(max_workers=16) as pool:
            assert not any(pool.map(source.accepts, wrong))
        assert vault.count("list_versions") == loaded + reads
        clock.advance(window)


# local secrets (no Key Vault) ------------------------------------------------------------


def local_setup(clock: FakeClock, cache_seconds: int) -> tuple[TenantAdmin, LocalDefaultToken]:
    store = MemoryStore()
    vault = LocalSecrets(MemoryVersionRows(), clock=clock)
    tenant_admin = build_admin(Settings(store="memory"), store=store, secrets=vault, clock=clock)
    source = LocalDefaultToken(vault, SECRET, cache_seconds=cache_seconds, clock=clock)
    return tenant_admin, source


def test_local_secrets_retire_and_rotate_take_effect_within_one_interval(
        clock: FakeClock) -> None:
    """With local secrets and SCIM_TOKEN_CACHE_SECONDS=1, a retired token is refused one second
    after retire-token, and a new token one second after rotate-token at the latest."""
    tenant_admin, source = local_setup(clock, 1)
    old = tenant_admin.rotate_token()
    assert source.accepts(old)
    new = tenant_admin.rotate_token()
    clock.advance(1)
    assert source.accepts(new)
    tenant_admin.retire_token()
    assert source.accepts(old)  # loaded just before retire-token: cached
    clock.advance(1)
    assert not source.accepts(old)
    assert source.accepts(new)


def get_users(api: Any, token: str) -> int:
    request = Request(method="GET", path="/Users", headers={"Authorization": f"Bearer {token}"},
                      base_url="http://127.0.0.1/scim/v2")
    return int(api.handle(request).status)


def test_app_with_local_secrets_accepts_a_new_token_within_the_interval_in_real_time() -> None:
    """The app as built from settings (local secrets, SCIM_TOKEN_CACHE_SECONDS=1): a token
    rotated in right after a request is served within the interval plus a generous margin
    (before the fix: about 5 s)."""
    store = MemoryStore()
    api = build_api(Settings(store="memory", token_cache_seconds=1), store=store)
    tenant_admin = build_admin(Settings(store="memory"), store=store)
    old = tenant_admin.rotate_token()
    assert get_users(api, old) == 200
    new = tenant_admin.rotate_token()
    started = time.monotonic()
    while get_users(api, new) != 200:
        assert time.monotonic() - started < 3.0, "the new token was refused for over 3 s"
        time.sleep(0.05)
