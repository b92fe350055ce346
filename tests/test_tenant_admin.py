"""Tenant administration: the Python API (``TenantAdmin``) on both stores,
and ``python -m scim_core.admin tenant ...`` end to end, against Azurite with local secrets and
against the Key Vault fake, each checked through the real function."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from scim_core import Settings, build_api
from scim_core.admin import main
from scim_core.app import build_admin
from scim_core.auth import StaticTokenSource
from scim_core.operations.tenants import TenantAdmin, TenantAdminError, tenant_url
from scim_core.store import GROUP, USER, MemoryStore, Store
from scim_core.store.errors import StorageUnavailable
from scim_core.store.secrets import local_secrets
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.secrets import SECRETS_PARTITION
from scim_core.tenants import DISABLED, ENABLED
from tests.azurite import Azurite, unique_table_name
from tests.kvfake import FakeClock, FakeCredential, FakeKeyVault, _Error
from tests.support import TOKEN, FunctionClient, use_api

pytestmark = pytest.mark.timeout(120)

SITE = "https://scim.test.example"
"""The host FunctionClient calls: a Tenant URL printed for it can be used as printed."""


def serve(store: Store, secrets: Any = None, **settings: Any) -> None:
    """Make the function serve ``store`` as a freshly started app would (empty caches):
    tenants' tokens from ``secrets`` (default: the store's local secrets), the default
    tenant's from the local secrets too unless ``bearer_token`` is given."""
    use_api(build_api(Settings(store="memory", **settings), store=store, secrets=secrets))


def tenant_admin(store: Store, **options: Any) -> TenantAdmin:
    return build_admin(Settings(store="memory"), store=store, **options)


def data_rows(store: Store, tenant_id: str) -> int:
    """How many rows the tenant holds: raw table rows of its partition but its feed row
    (a deleted tenant's tombstone), or the memory store's resources, index entries and
    memberships."""
    if isinstance(store, TableStore):
        return len(list(store.table.query_entities(
            "PartitionKey eq @p and RowKey ne 'feed'",
            parameters={"p": keys.partition_key(tenant_id)})))
    view = store.tenant(tenant_id)
    rows = view._t  # type: ignore[attr-defined]
    return (len(rows.entries) + len(rows.index) + sum(len(m) for m in rows.members.values())
            + sum(len(m) for m in rows.member_of.values()))


def fill(client: FunctionClient, users: int = 6) -> None:
    """Users and a group holding them, through the SCIM API."""
    ids = [client.create_user(f"user{i}@example.com")["id"] for i in range(users)]
    client.create_group("Everyone", members=[{"value": i} for i in ids])


# the Python API on both stores ------------------------------------------------------------


def test_created_tenant_token_works_on_its_own_url_only(any_store: Store) -> None:
    """create() registers an enabled tenant with a generated unguessable id and returns a
    token that works on that tenant's URL, and not on the default tenant's."""
    admin = tenant_admin(any_store)
    tenant, token = admin.create("  Contoso Ltd ")
    assert re.fullmatch(r"[a-z2-7]{16}", tenant.id)
    assert (tenant.name, tenant.state) == ("Contoso Ltd", ENABLED)
    assert admin.show(tenant.id) == tenant
    assert [t.id for t in admin.list()] == ["default", tenant.id]
    serve(any_store, bearer_token=TOKEN)
    assert FunctionClient(tenant.id, token).get("/Users").status == 200
    assert FunctionClient(None, token).get("/Users").status == 401
    assert FunctionClient(tenant.id, TOKEN).get("/Users").status == 401
    assert admin.endpoint(tenant.id) == f"http://127.0.0.1:7071/tenants/{tenant.id}/scim/v2"


def test_disabled_tenant_answers_403_and_serves_again_when_enabled(any_store: Store) -> None:
    """disable() makes the tenant answer 403 (data kept); enable() serves it again."""
    admin = tenant_admin(any_store)
    _, token = admin.create("Fabrikam", tenant_id="fabrikam")
    serve(any_store)
    client = FunctionClient("fabrikam", token)
    user = client.create_user("kept@example.com")
    assert admin.disable("fabrikam").state == DISABLED
    serve(any_store)
    refused = client.get(f"/Users/{user['id']}")
    assert refused.status == 403 and "disabled" in refused.json["detail"]
    assert admin.enable("fabrikam").state == ENABLED
    serve(any_store)
    assert client.get(f"/Users/{user['id']}").status == 200


def test_rotation_keeps_the_old_token_until_retired(any_store: Store) -> None:
    """rotate_token() adds a token while the old one still works; retire_token() ends the
    old one; a second rotation before retiring is refused."""
    admin = tenant_admin(any_store)
    _, old = admin.create("Rotating", tenant_id="rotating")
    new = admin.rotate_token("rotating")
    assert new != old
    serve(any_store)
    assert FunctionClient("rotating", old).get("/Users").status == 200
    assert FunctionClient("rotating", new).get("/Users").status == 200
    with pytest.raises(TenantAdminError, match="already pending"):
        admin.rotate_token("rotating")
    assert admin.retire_token("rotating").disabled == 1
    serve(any_store)
    assert FunctionClient("rotating", old).get("/Users").status == 401
    assert FunctionClient("rotating", new).get("/Users").status == 200


def test_a_cancelled_rotation_leaves_the_previous_token_working(any_store: Store) -> None:
    """cancel_rotation() after a rotation whose token was lost: the new token is refused,
    the previous one still works, and a new rotation can start; without a pending rotation
    it is refused and changes nothing."""
    admin = tenant_admin(any_store)
    _, old = admin.create("Cancelling", tenant_id="cancelling")
    with pytest.raises(TenantAdminError, match="nothing to cancel"):
        admin.cancel_rotation("cancelling")
    lost = admin.rotate_token("cancelling")
    done = admin.cancel_rotation("cancelling")
    assert done.cancelled_version != done.kept_version
    serve(any_store)
    assert FunctionClient("cancelling", old).get("/Users").status == 200
    assert FunctionClient("cancelling", lost).get("/Users").status == 401
    again = admin.rotate_token("cancelling")
    serve(any_store)
    assert FunctionClient("cancelling", again).get("/Users").status == 200
    assert FunctionClient("cancelling", old).get("/Users").status == 200


def test_delete_removes_every_row_and_the_token(any_store: Store) -> None:
    """delete() removes the tenant's rows in bounded steps, its token secret and its
    registry row; its URL then answers 401 and the id can be used again at once locally."""
    admin = tenant_admin(any_store)
    _, token = admin.create("Doomed", tenant_id="doomed")
    _, other_token = admin.create("Kept", tenant_id="kept")
    serve(any_store)
    fill(FunctionClient("doomed", token))
    fill(FunctionClient("kept", other_token), users=2)
    before = data_rows(any_store, "doomed")
    kept_before = data_rows(any_store, "kept")
    progress: list[int] = []
    done = admin.delete("doomed", step_rows=4, on_progress=progress.append)
    assert data_rows(any_store, "doomed") == 0
    assert done.rows > 0 and progress[-1] == done.rows and len(progress) >= 2
    assert before > 0
    assert done.secret_deleted and not done.soft_deleted and done.reusable_after is None
    assert "at once" in done.message
    assert any_store.tenant_registry().get("doomed") is None
    assert local_secrets(any_store).versions("scim-token-doomed") == []
    assert data_rows(any_store, "kept") == kept_before
    serve(any_store)
    assert FunctionClient("doomed", token).get("/Users").status == 401
    assert FunctionClient("kept", other_token).get("/Users").status == 200
    with pytest.raises(TenantAdminError, match="no tenant"):
        admin.show("doomed")
    admin.create("Reborn", tenant_id="doomed")


class FailingPurgeStore:
    """A store whose tenants' purge fails on its ``fail_at``-th call (1-based)."""

    def __init__(self, store: Store, fail_at: int) -> None:
        self._store = store
        self.fail_at = fail_at
        self.calls = 0
        self.table = getattr(store, "table", None)

    def tenant(self, name: str, epoch: int | None = None) -> Any:
        view = self._store.tenant(name, epoch)
        outer = self

        class View:
            def mark_deleting(self) -> None:
                view.mark_deleting()

            def mark_deleted(self) -> None:
                view.mark_deleted()

            def start_epoch(self, state: str) -> int:
                return view.start_epoch(state)

            def purge(self, *, limit: int) -> int:
                outer.calls += 1
                if outer.calls == outer.fail_at:
                    raise StorageUnavailable("Storage is unavailable; retry later.",
                                             retry_after=5)
                return view.purge(limit=limit)

        return View()

    def tenant_registry(self) -> Any:
        return self._store.tenant_registry()


def test_delete_resumes_after_an_interruption(any_store: Store) -> None:
    """A delete that fails in the middle of the purge leaves the tenant 'deleting' (its URL
    answers 401); calling delete again finishes it, leaving no row behind."""
    admin = tenant_admin(any_store)
    _, token = admin.create("Interrupted", tenant_id="interrupted")
    serve(any_store)
    fill(FunctionClient("interrupted", token))
    failing = FailingPurgeStore(any_store, fail_at=2)
    broken = tenant_admin(failing, secrets=local_secrets(any_store))  # type: ignore[arg-type]
    with pytest.raises(TenantAdminError, match="Table Storage failed"):
        broken.delete("interrupted", step_rows=3)
    assert admin.show("interrupted").state == "deleting"
    left = data_rows(any_store, "interrupted")
    assert left > 0
    serve(any_store)
    assert FunctionClient("interrupted", token).get("/Users").status == 401
    with pytest.raises(TenantAdminError, match="being deleted"):
        admin.enable("interrupted")
    with pytest.raises(TenantAdminError, match="being deleted"):
        admin.rotate_token("interrupted")
    done = admin.delete("interrupted", step_rows=3)
    assert 0 < done.rows <= left
    assert data_rows(any_store, "interrupted") == 0
    assert any_store.tenant_registry().get("interrupted") is None


def test_default_tenant_is_implicit_but_can_be_disabled_and_rotated() -> None:
    """The default tenant cannot be created or deleted; disabling registers it (403 on
    /scim/v2), enabling serves again; its token comes from local secrets when
    SCIM_BEARER_TOKEN is unset, and until it has one /scim/v2 fails closed (503)."""
    store = MemoryStore()
    admin = tenant_admin(store)
    serve(store)
    assert FunctionClient(None, "anything").get("/Users").status == 503
    token = admin.rotate_token()
    serve(store)
    assert FunctionClient(None, token).get("/Users").status == 200
    assert FunctionClient(None, "wrong").get("/Users").status == 401
    assert store.tenant_registry().get("default") is None
    admin.disable("default")
    assert store.tenant_registry().get("default") is not None
    serve(store)
    assert FunctionClient(None, token).get("/Users").status == 403
    admin.enable("default")
    serve(store)
    assert FunctionClient(None, token).get("/Users").status == 200
    serve(store, bearer_token=TOKEN)
    assert FunctionClient(None, TOKEN).get("/Users").status == 200
    assert FunctionClient(None, token).get("/Users").status == 401
    with pytest.raises(TenantAdminError, match="implicit"):
        admin.create("Default", tenant_id="default")
    with pytest.raises(TenantAdminError, match="cannot be deleted"):
        admin.delete("default")


@pytest.mark.parametrize(("call", "message"), [
    (lambda a: a.create("Bad", tenant_id="Has Spaces"), "3 to 63"),
    (lambda a: a.create("Bad", tenant_id="ab"), "3 to 63"),
    (lambda a: a.create(" "), "tenant name"),
    (lambda a: a.create("x\x00y"), "tenant name"),
    (lambda a: a.create("Again", tenant_id="taken"), "already exists"),
    (lambda a: a.show("missing"), "no tenant"),
    (lambda a: a.disable("missing"), "no tenant"),
    (lambda a: a.rotate_token("missing"), "no tenant"),
    (lambda a: a.endpoint("missing"), "no tenant"),
    (lambda a: a.delete("taken", step_rows=0), "step_rows"),
], ids=["bad-id", "short-id", "blank-name", "control-name", "taken", "show-missing",
        "disable-missing", "rotate-missing", "endpoint-missing", "bad-step"])
def test_bad_requests_raise_one_clear_error(call: Any, message: str) -> None:
    """Invalid ids and names, a taken id and unknown tenants raise TenantAdminError with a
    message that says what is wrong, and change nothing."""
    store = MemoryStore()
    admin = tenant_admin(store)
    admin.create("Taken", tenant_id="taken")
    before = list(store.tenant_registry().list())
    with pytest.raises(TenantAdminError, match=message):
        call(admin)
    assert list(store.tenant_registry().list()) == before


def test_tenant_url_follows_the_default_tenants() -> None:
    """A tenant's URL is the default tenant's with /scim/v2 made /tenants/<id>/scim/v2."""
    assert tenant_url("https://app.example/scim/v2/", "acme") == \
        "https://app.example/tenants/acme/scim/v2"
    assert tenant_url("https://app.example/scim/v2", "default") == "https://app.example/scim/v2"
    admin = build_admin(Settings(store="memory", base_url="https://scim.contoso.example/scim/v2"),
                        store=MemoryStore())
    admin.create("Acme", tenant_id="acme")
    assert admin.endpoint("acme") == "https://scim.contoso.example/tenants/acme/scim/v2"


class Closing(MemoryStore):
    """A memory store that records being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True


def test_build_admin_leaves_a_given_store_and_secrets_open() -> None:
    """The admin closes only what build_admin built for it: a store and secret store that
    the caller gave stay open."""
    given = Closing()
    secrets = local_secrets(given)
    with build_admin(Settings(store="tables"), store=given, secrets=secrets) as admin:
        assert admin.store is given and admin.secrets is secrets
        admin.create("Acme", tenant_id="acme")
    assert not given.closed
    assert admin.show("acme").state == ENABLED


def test_an_admin_without_a_reachable_store_still_serves_what_needs_none() -> None:
    """With SCIM_STORE=memory (another process's memory) the default tenant's Tenant URL
    still resolves, while listing tenants or rotating a token says why it cannot."""
    admin = build_admin(Settings(store="memory", base_url="https://scim.contoso.example/scim/v2"))
    assert admin.endpoint() == "https://scim.contoso.example/scim/v2"
    for call in (admin.list, admin.rotate_token):
        with pytest.raises(TenantAdminError, match="SCIM_STORE=memory"):
            call()


def test_tenant_admin_takes_its_store_and_secrets() -> None:
    """TenantAdmin runs over the store and secret store it is given, building neither."""
    store = MemoryStore()
    secrets = local_secrets(store)
    admin = TenantAdmin(store, secrets, Settings(store="memory"))
    _, token = admin.create("Acme", tenant_id="acme")
    assert [v.valid_at(time.time()) for v in secrets.versions("scim-token-acme")] == [True]
    serve(store, secrets)
    assert FunctionClient("acme", token).get("/Users").status == 200


# the commands, against Azurite with local secrets -----------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str

    def line(self, label: str) -> str:
        found = re.search(rf"^{label}: +(\S+)$", self.out, re.MULTILINE)
        assert found, self.out
        return found.group(1)


@pytest.fixture
def local_env(azurite: Azurite, tmp_path: Path) -> Iterator[dict[str, str]]:
    """App settings of a local run on the session's Azurite (a fresh table, deleted after),
    split like a developer's: the store in local.settings.json, the rest in the environment."""
    table = unique_table_name()
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {
        "SCIM_STORE": "tables", "SCIM_TABLES_CONNECTION": azurite.connection_string,
        "SCIM_TABLE_NAME": table}}), encoding="utf-8")
    env = {"SCIM_BASE_URL": f"{SITE}/scim/v2"}
    yield env
    TableClient.from_connection_string(azurite.connection_string, table).delete_table()


def command(capsys: pytest.CaptureFixture[str], env: dict[str, str], root: Path,
            *argv: str, **options: Any) -> Run:
    out = io.StringIO()
    code = main(list(argv), env=env, root=root, out=out, **options)
    captured = capsys.readouterr()
    err = captured.err
    if err.startswith("target: "):  # every command's first line on stderr
        err = err.partition("\n")[2]
    return Run(code, out.getvalue() + captured.out, err)


def app_settings(env: dict[str, str], root: Path) -> Settings:
    from scim_core.config import app_environment

    return Settings.from_env(app_environment(env, root))


def serve_settings(settings: Settings) -> None:
    """The function as the app builds itself from ``settings`` (a fresh process)."""
    use_api(build_api(settings))


def test_commands_manage_a_local_runs_tenants_end_to_end(
        local_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Next to a local run (Azurite, local secrets, settings from the environment over
    local.settings.json) every tenant command works, and what it prints works on the real
    function: the created tenant's Tenant URL and Secret Token, 403 while disabled, both
    tokens during a rotation, 401 after delete; no token is ever logged or on stderr."""
    caplog.set_level(logging.DEBUG)
    settings = app_settings(local_env, tmp_path)
    assert settings.base_url == local_env["SCIM_BASE_URL"]
    run = [command(capsys, local_env, tmp_path, "tenant", "create", "--id", "contoso",
                   "--name", "Contoso")]
    assert run[-1].code == 0, run[-1].err
    url, token = run[-1].line("Tenant URL"), run[-1].line("Secret Token")
    client = FunctionClient("contoso", token)
    assert url == client.base == f"{SITE}/tenants/contoso/scim/v2"
    assert run[-1].out.count(token) == 1
    serve_settings(settings)
    fill(client, users=3)

    run.append(command(capsys, local_env, tmp_path, "tenant", "list"))
    assert re.search(r"^contoso +enabled +Contoso$", run[-1].out, re.MULTILINE)
    assert re.search(r"^default +enabled +Default$", run[-1].out, re.MULTILINE)
    run.append(command(capsys, local_env, tmp_path, "tenant", "show", "contoso"))
    assert "State:         enabled" in run[-1].out and url in run[-1].out
    run.append(command(capsys, local_env, tmp_path, "show-endpoint", "--tenant", "contoso"))
    assert run[-1].out == url + "\n"

    run.append(command(capsys, local_env, tmp_path, "tenant", "disable", "contoso"))
    assert run[-1].code == 0 and "SCIM_TENANT_CACHE_SECONDS (60 seconds)" in run[-1].out
    serve_settings(settings)
    assert client.get("/Users").status == 403
    run.append(command(capsys, local_env, tmp_path, "tenant", "enable", "contoso"))
    serve_settings(settings)
    assert client.get("/Users").status == 200

    run.append(command(capsys, local_env, tmp_path, "rotate-token", "--tenant", "contoso"))
    assert run[-1].code == 0, run[-1].err
    new = run[-1].line("Secret Token")
    assert run[-1].line("Tenant URL") == url
    assert "retire-token --tenant contoso" in run[-1].out
    serve_settings(settings)
    assert client.get("/Users").status == 200
    assert FunctionClient("contoso", new).get("/Users").status == 200
    run.append(command(capsys, local_env, tmp_path, "retire-token", "--tenant", "contoso"))
    assert "Disabled 1 older version(s)" in run[-1].out
    serve_settings(settings)
    assert client.get("/Users").status == 401
    assert FunctionClient("contoso", new).get("/Users").status == 200

    run.append(command(capsys, local_env, tmp_path, "tenant", "delete", "contoso"))
    assert run[-1].code == 2 and "--yes" in run[-1].err
    run.append(command(capsys, local_env, tmp_path, "tenant", "delete", "contoso", "--yes"))
    assert run[-1].code == 0, run[-1].err
    assert "can be used for a new tenant at once" in run[-1].out
    raw = TableClient.from_connection_string(settings.tables_connection, settings.table_name)
    left = list(raw.query_entities("PartitionKey eq 'contoso'"))
    assert [(row["RowKey"], row["tenantState"]) for row in left] == [("feed", "deleted")]
    assert [e for e in raw.query_entities(f"PartitionKey eq '{SECRETS_PARTITION}'")
            if e["RowKey"].startswith("scim-token-contoso:")] == []
    assert list(raw.query_entities("PartitionKey eq '$tenants' and RowKey eq 'contoso'")) == []
    serve_settings(settings)
    assert FunctionClient("contoso", new).get("/Users").status == 401
    run.append(command(capsys, local_env, tmp_path, "tenant", "show", "contoso"))
    assert run[-1].code == 1 and run[-1].err == "error: no tenant with id 'contoso'\n"

    for secret in (token, new):
        assert secret not in caplog.text
        assert all(secret not in r.err for r in run)


def test_default_tenant_commands_use_the_local_secrets(
        local_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without SCIM_BEARER_TOKEN and Key Vault, rotate-token gives the default tenant of a
    local run its token (in the local secrets), printed as the two lines make run prints,
    with the dev host's URL on --port when no SCIM_BASE_URL is set."""
    env = {k: v for k, v in local_env.items() if k != "SCIM_BASE_URL"}
    done = command(capsys, env, tmp_path, "rotate-token", "--port", "8080")
    assert done.code == 0, done.err
    assert done.line("Tenant URL") == "http://127.0.0.1:8080/scim/v2"
    token = done.line("Secret Token")
    serve_settings(app_settings(env, tmp_path))
    assert FunctionClient(None, token).get("/Users").status == 200
    created = command(capsys, env, tmp_path, "tenant", "create", "--name", "Generated")
    assert re.fullmatch(r"http://127\.0\.0\.1:7071/tenants/[a-z2-7]{16}/scim/v2",
                        created.line("Tenant URL"))


def test_memory_store_settings_are_refused_by_the_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With SCIM_STORE=memory the commands cannot reach the app's tenants and say so."""
    done = command(capsys, {"SCIM_STORE": "memory"}, tmp_path, "tenant", "list")
    assert done.code == 1 and "SCIM_STORE=memory" in done.err


# the commands, against the Key Vault fake ---------------------------------------------------


class SoftDeleteVault(FakeKeyVault):
    """The fake with Key Vault's soft delete and purge protection: DELETE moves a secret to
    the deleted secrets until its scheduled purge date, and its name cannot be set again."""

    RETENTION_DAYS = 90

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deleted: dict[str, float] = {}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "deletedsecrets":
            with self._lock:
                if parts[1] in self.deleted:
                    return self._deleted(parts[1])
            raise _Error(404, "SecretNotFound", f"Deleted secret {parts[1]} not found.")
        if len(parts) == 2 and parts[0] == "secrets" and method in ("DELETE", "PUT"):
            with self._lock:
                if parts[1] in self.deleted:
                    raise _Error(409, "Conflict", "Secret is currently in a deleted but "
                                 "recoverable state, and its name cannot be reused.")
                if method == "DELETE":
                    if self._secrets.pop(parts[1], None) is None:
                        raise _Error(404, "SecretNotFound", f"Secret {parts[1]} not found.")
                    self.deleted[parts[1]] = self.clock()
                    return self._deleted(parts[1])
        return super().handle(method, path, query, body)

    def _deleted(self, name: str) -> dict[str, Any]:
        when = int(self.deleted[name])
        return {"recoveryId": f"{self.url}/deletedsecrets/{name}", "deletedDate": when,
                "scheduledPurgeDate": when + self.RETENTION_DAYS * 86400,
                "id": f"{self.url}/secrets/{name}/0", "attributes": {
                    "enabled": True, "created": when, "updated": when,
                    "recoveryLevel": "Recoverable"}}


def test_commands_use_key_vault_for_tokens_and_explain_soft_delete(
        local_env: dict[str, str], tmp_path: Path, clock: FakeClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With SCIM_KEYVAULT_URL the tenant's token goes to Key Vault as scim-token-<id>, the
    Tenant URL is derived from the deployment's scim-tenant-url secret, the token works on
    it, and delete says that soft delete keeps the id reserved until the purge date; creating
    the id again is then refused with that reason."""
    with SoftDeleteVault(clock=clock) as vault:
        vault.add_version("scim-tenant-url", f"{SITE}/scim/v2")
        env = {k: v for k, v in local_env.items() if k != "SCIM_BASE_URL"}
        env["SCIM_KEYVAULT_URL"] = vault.url
        options = {"credential": FakeCredential(), "client_kwargs": vault.client_kwargs()}
        created = command(capsys, env, tmp_path, "tenant", "create", "--name", "Northwind",
                          **options)
        assert created.code == 0, created.err
        url, token = created.line("Tenant URL"), created.line("Secret Token")
        tenant_id = url.split("/")[-3]
        assert url == f"{SITE}/tenants/{tenant_id}/scim/v2"
        assert [v.value for v in vault.versions(f"scim-token-{tenant_id}")] == [token]
        settings = app_settings(env, tmp_path)
        store = TableStore(TableClient.from_connection_string(settings.tables_connection,
                                                              settings.table_name))
        use_api(build_api(Settings(store="memory"), store=store,
                          tokens=StaticTokenSource(TOKEN), secrets=vault.client()))
        assert FunctionClient(tenant_id, token).create_user("kv@example.com")
        rotated = command(capsys, env, tmp_path, "rotate-token", "--tenant", tenant_id,
                          **options)
        assert f"retire-token --vault-url {vault.url} --tenant {tenant_id}" in rotated.out
        assert command(capsys, env, tmp_path, "show-endpoint", "--tenant", tenant_id,
                       **options).out == url + "\n"

        clock.advance(1)
        deleted = command(capsys, env, tmp_path, "tenant", "delete", tenant_id, "--yes",
                          **options)
        assert deleted.code == 0, deleted.err
        purge = time.strftime("%Y-%m-%d", time.gmtime(clock() + 90 * 86400))
        assert f"until {purge}" in deleted.out
        assert "cannot be used for a new tenant before then" in deleted.out
        assert vault.versions(f"scim-token-{tenant_id}") == []
        again = command(capsys, env, tmp_path, "tenant", "create", "--id", tenant_id,
                        "--name", "Again", **options)
        assert again.code == 1 and "cannot be used again" in again.err
        assert store.tenant_registry().get(tenant_id) is None
        assert list(store.tenant(tenant_id).scan(USER)) == []
        assert list(store.tenant(tenant_id).scan(GROUP)) == []
        store.close()

