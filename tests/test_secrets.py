"""Secret stores: Key Vault (the real SecretClient against the fake), the table's local
secrets (on Azurite) and the memory ones keep one contract; local secrets hold salted hashes
only, and are refused in Azure unless allowed."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from scim_core import Settings, build_api
from scim_core.app import api_from_environment, build_admin
from scim_core.auth import local_secrets as local_module
from scim_core.auth.keyvault_secrets import KeyVaultSecrets
from scim_core.auth.local_secrets import (
    HASH_ITERATIONS,
    LocalSecrets,
    hash_token,
    verify_token,
)
from scim_core.auth.secrets import NameReserved, SecretStore, SecretStoreError
from scim_core.config import SettingsError
from scim_core.operations.tenants import TenantAdminError
from scim_core.store import MemoryStore
from scim_core.store.secrets import MemoryVersionRows, local_secrets
from scim_core.store.tables import TableStore
from scim_core.store.tables.secrets import SECRETS_PARTITION, TableVersionRows
from tests.kvfake import FakeClock
from tests.support import FunctionClient, use_api
from tests.test_tenant_admin import SoftDeleteVault

pytestmark = pytest.mark.timeout(120)

SECRET = "scim-token-contract"
STORES = ["keyvault", "table", "memory"]


def new_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[SecretStore]:
    """Each secret store in turn, on one settable clock."""
    if request.param == "keyvault":
        with SoftDeleteVault(clock=clock) as vault:
            kv = KeyVaultSecrets(vault.client())
            yield kv
            kv.close()
    elif request.param == "table":
        table: TableStore = request.getfixturevalue("table_store")
        yield LocalSecrets(TableVersionRows(table), clock=clock)
    else:
        yield LocalSecrets(MemoryVersionRows(), clock=clock)


def add(store: SecretStore, clock: FakeClock, token: str | None = None) -> str:
    """A new version one second after the last; returns its token."""
    clock.advance(1)
    token = token or new_token()
    store.add(SECRET, token)
    return token


# the contract ----------------------------------------------------------------------------


def test_versions_are_listed_in_creation_order_with_their_state(
        store: SecretStore, clock: FakeClock) -> None:
    """A missing secret has no versions; added versions are listed oldest first, enabled,
    with their creation time; a disabled one is listed as disabled."""
    assert store.versions(SECRET) == []
    add(store, clock)
    add(store, clock)
    first, second = store.versions(SECRET)
    assert first.created_on is not None and second.created_on is not None
    assert first.created_on < second.created_on
    assert first.enabled and second.enabled and first.reference
    store.disable(SECRET, first.version)
    assert [v.enabled for v in store.versions(SECRET)] == [False, True]
    assert not store.versions(SECRET)[0].valid_at(clock())


def test_token_source_accepts_the_newest_two_valid_versions(
        store: SecretStore, clock: FakeClock) -> None:
    """The request path accepts the newest two valid versions' tokens, and no older,
    disabled or unknown token."""
    oldest, middle, newest = add(store, clock), add(store, clock), add(store, clock)
    source = store.token_source(SECRET, cache_seconds=60)
    assert source.accepts(newest) and source.accepts(middle)
    assert not source.accepts(oldest)
    assert not source.accepts(new_token())
    assert not source.accepts(newest[:-1])
    store.disable(SECRET, store.versions(SECRET)[-1].version)
    fresh = store.token_source(SECRET, cache_seconds=60)
    assert not fresh.accepts(newest)
    assert fresh.accepts(middle) and fresh.accepts(oldest)


def test_delete_removes_every_version_and_says_what_stays_reserved(
        store: SecretStore, clock: FakeClock) -> None:
    """Deleting removes every version; deleting again is no error; Key Vault keeps the name
    (soft delete: a new version is refused as NameReserved) while local stores free it."""
    token = add(store, clock)
    deleted = store.delete(SECRET)
    assert deleted.existed
    assert store.versions(SECRET) == []
    assert not store.token_source(SECRET, cache_seconds=60).accepts(token)
    again = store.delete(SECRET)
    assert not again.existed
    if deleted.soft_deleted:
        assert deleted.purge_date is not None and again.purge_date == deleted.purge_date
        with pytest.raises(NameReserved):
            store.add(SECRET, new_token())
    else:
        assert store.keeps_values is False
        add(store, clock)
        assert len(store.versions(SECRET)) == 1


def test_unknown_versions_and_names_are_store_errors(store: SecretStore, clock: FakeClock
                                                    ) -> None:
    """Disabling a version that is not there, or using a malformed name, raises
    SecretStoreError (one line, no token)."""
    token = add(store, clock)
    with pytest.raises(SecretStoreError) as caught:
        store.disable(SECRET, "0" * 32)
    assert token not in str(caught.value)
    with pytest.raises(SecretStoreError):
        store.versions("not a name!")


def test_only_key_vault_reads_plain_values(store: SecretStore, clock: FakeClock) -> None:
    """read() returns a plain value kept as a secret in Key Vault (the Tenant URL) and
    nothing from local stores, which keep no values."""
    if store.keeps_values:
        store.add("scim-tenant-url", "https://scim.example/scim/v2")
        assert store.read("scim-tenant-url") == "https://scim.example/scim/v2"
    else:
        add(store, clock)
        assert store.read(SECRET) is None
    assert store.read("scim-missing") is None


# local secrets hold no token -------------------------------------------------------------


def raw_rows(table: TableStore) -> list[dict[str, Any]]:
    """Every row of the store's table, straight from Azurite."""
    return [dict(row) for row in table.table.list_entities()]


def test_table_rows_never_hold_a_token(table_store: TableStore) -> None:
    """Tenants created and rotated with local secrets leave no row of the table holding a
    token, while the tokens work on the real function."""
    admin = build_admin(Settings(store="memory"), store=table_store)
    _, token = admin.create("Hashed", tenant_id="hashed")
    rotated = admin.rotate("hashed").token
    default = admin.rotate().token
    use_api(build_api(Settings(store="memory"), store=table_store))
    assert FunctionClient("hashed", token).get("/Users").status == 200
    assert FunctionClient("hashed", rotated).get("/Users").status == 200
    assert FunctionClient(None, default).get("/Users").status == 200
    rows = raw_rows(table_store)
    secret_rows = [r for r in rows if r["PartitionKey"] == SECRETS_PARTITION]
    assert len(secret_rows) == 3
    assert all(r["hash"].startswith(f"pbkdf2-sha256${HASH_ITERATIONS}$") for r in secret_rows)
    assert all("value" not in r for r in secret_rows)
    text = repr(rows)
    for value in (token, rotated, default):
        assert value not in text


def test_plain_text_rows_of_older_versions_are_hashed_on_first_read(
        table_store: TableStore, caplog: pytest.LogCaptureFixture) -> None:
    """A row written by an older version (the token in 'value') keeps working: the first
    read replaces it by its salted hash, after which no row holds the token."""
    caplog.set_level(logging.DEBUG)
    token = new_token()
    with table_store.session():  # creates the table
        pass
    table_store.table.upsert_entity({
        "PartitionKey": SECRETS_PARTITION, "RowKey": "scim-token-legacy:00000001",
        "name": "scim-token-legacy", "version": "00000001", "value": token,
        "created": 1_700_000_000.0, "updated": 1_700_000_000.0, "enabled": True,
        "content_type": "text/plain"})
    source = local_secrets(table_store).token_source("scim-token-legacy", cache_seconds=60)
    assert source.accepts(token)
    (row,) = [r for r in raw_rows(table_store) if r["RowKey"] == "scim-token-legacy:00000001"]
    assert "value" not in row and verify_token(token, row["hash"])
    assert token not in repr(raw_rows(table_store))
    assert token not in caplog.text
    fresh = local_secrets(table_store).token_source("scim-token-legacy", cache_seconds=60)
    assert fresh.accepts(token)


def test_hashes_are_salted_per_version() -> None:
    """The same token hashed twice gives two different hashes that both verify it, and
    neither verifies another token; a malformed hash verifies nothing."""
    token = new_token()
    first, second = hash_token(token), hash_token(token)
    assert first != second
    assert verify_token(token, first) and verify_token(token, second)
    assert not verify_token(new_token(), first)
    assert not verify_token(token, "pbkdf2-sha256$x$y$z")
    assert not verify_token(token, token)


def test_a_verified_token_is_not_hashed_again_until_the_versions_change(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """The salted hash is computed on a cache miss only: a token that verified is known by
    its SHA-256 until its version is retired, which the next re-read makes refuse it."""
    calls: list[str] = []
    real = local_module.verify_token

    def counted(token: str, stored: str) -> bool:
        calls.append(stored)
        return real(token, stored)

    monkeypatch.setattr(local_module, "verify_token", counted)
    store = LocalSecrets(MemoryVersionRows(), clock=clock)
    old = add(store, clock)
    new = add(store, clock)
    source = store.token_source(SECRET, cache_seconds=10)
    assert source.accepts(old)
    assert len(calls) == 2  # both candidates, whichever matches
    for _ in range(50):
        assert source.accepts(old)
    assert len(calls) == 2
    store.disable(SECRET, store.versions(SECRET)[0].version)
    assert source.accepts(old)  # cached versions, within the cache interval
    clock.advance(10)
    assert not source.accepts(old)
    assert source.accepts(new)


def test_local_token_source_cannot_decide_without_storage(clock: FakeClock) -> None:
    """With the versions unreadable and nothing cached the source raises ServiceUnavailable
    (503), and with versions cached it keeps deciding from them."""
    from scim_core.errors import ServiceUnavailable

    class Broken(MemoryVersionRows):
        failing = False

        def list(self, name: str) -> list[Any]:
            if self.failing:
                raise SecretStoreError("storage down")
            return super().list(name)

    rows = Broken()
    store = LocalSecrets(rows, clock=clock)
    token = add(store, clock)
    rows.failing = True
    with pytest.raises(ServiceUnavailable):
        store.token_source(SECRET, cache_seconds=5).accepts(token)
    rows.failing = False
    warm = store.token_source(SECRET, cache_seconds=5)
    assert warm.accepts(token)
    rows.failing = True
    clock.advance(60)
    assert warm.accepts(token)
    assert not warm.accepts(new_token())


def test_memory_stores_share_their_secrets_with_the_admin() -> None:
    """The local secrets of one memory store are one object, so the API and the admin over
    that store see the same tokens; two stores never share them."""
    one, two = MemoryStore(), MemoryStore()
    assert local_secrets(one) is local_secrets(one)
    assert local_secrets(one) is not local_secrets(two)


def test_short_tokens_are_refused(clock: FakeClock) -> None:
    """Local secrets refuse a token too short to go unguessed under a light hash."""
    store = LocalSecrets(MemoryVersionRows(), clock=clock)
    with pytest.raises(SecretStoreError, match="at least 32"):
        store.add(SECRET, "short-token")
    assert store.versions(SECRET) == []


# in Azure --------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME"])
def test_local_secrets_are_refused_in_a_functions_host(marker: str) -> None:
    """In an environment the Azure Functions host sets up, the app without Key Vault does
    not start (SettingsError, which the function answers with 503), and the admin refuses
    to write tokens there; SCIM_ALLOW_LOCAL_SECRETS=true allows it."""
    env = {"SCIM_STORE": "memory", marker: "scim-func-abc123"}
    with pytest.raises(SettingsError, match="SCIM_ALLOW_LOCAL_SECRETS"):
        api_from_environment(env)
    settings = Settings.from_env(env)
    with pytest.raises(TenantAdminError, match="SCIM_KEYVAULT_URL"):
        build_admin(settings, store=MemoryStore()).rotate_token()
    allowed = {**env, "SCIM_ALLOW_LOCAL_SECRETS": "true"}
    api_from_environment(allowed)
    store = MemoryStore()
    token = build_admin(Settings.from_env(allowed), store=store).rotate_token()
    use_api(build_api(Settings.from_env(allowed), store=store))
    assert FunctionClient(None, token).get("/Users").status == 200


def test_a_local_run_needs_no_allow_setting() -> None:
    """Outside Azure (no host marker) local secrets need no setting, and a malformed allow
    setting is a settings error."""
    api_from_environment({"SCIM_STORE": "memory"})
    with pytest.raises(SettingsError, match="SCIM_ALLOW_LOCAL_SECRETS"):
        Settings.from_env({"SCIM_ALLOW_LOCAL_SECRETS": "maybe"})


def test_table_rows_location_names_no_key(table_store: TableStore) -> None:
    """The local secrets say where they are by endpoint and table, never by account key."""
    where = local_secrets(table_store).location
    assert table_store.table.table_name in where and "127.0.0.1" in where
    assert "AccountKey" not in where and "Eby8" not in where


def test_the_function_in_a_functions_host_without_a_vault_answers_503(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Built from an environment like the Azure Functions host's, without Key Vault and
    without the allow setting, the function does not start (not even with the static
    token): every request answers 503 and the log says which setting to set."""
    import function_app

    token = new_token()
    for name in ("SCIM_KEYVAULT_URL", "SCIM_ALLOW_LOCAL_SECRETS", "SCIM_EVENTS_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCIM_STORE", "memory")
    monkeypatch.setenv("SCIM_BEARER_TOKEN", token)
    monkeypatch.setenv("WEBSITE_SITE_NAME", "scim-func-abc123")
    function_app.reset_api(None)
    try:
        assert FunctionClient(None, token).get("/Users").status == 503
        assert "SCIM_ALLOW_LOCAL_SECRETS" in caplog.text
    finally:
        function_app.reset_api(None)
