"""The composition root (scim_core/app.py) is the one place that builds Azure credentials;
the clients below it take the one it gives them."""

from __future__ import annotations

import ast
import dataclasses
import secrets
from pathlib import Path
from typing import Any

import pytest

from scim_core import app as app_module
from scim_core.activity.build import activity_rows
from scim_core.activity.tables import TableActivityRows
from scim_core.app import build_admin, build_api
from scim_core.auth import keyvault as keyvault_module
from scim_core.config import Settings
from scim_core.events.nudge import QueueNudge
from scim_core.store.tables.store import TableStore
from tests.kvfake import FakeCredential, FakeKeyVault

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*(path for package in ("scim_core", "scim_reader", "bench", "scripts")
             for path in sorted((ROOT / package).rglob("*.py"))),
           ROOT / "function_app.py", ROOT / "devhost.py"]
BUILDERS = {"production_credential", "admin_credential"}
"""What scim_core/auth/credentials.py builds credentials with."""
CREDENTIALS = ROOT / "scim_core" / "auth" / "credentials.py"
COMPOSITION_ROOT = ROOT / "scim_core" / "app.py"

BY_ENDPOINT = Settings(store="tables", tables_endpoint="https://contoso.table.core.windows.net",
                       events_queue="scim-events", activity=False)
"""A table and an events queue reached by endpoint (nothing here sends to them)."""


def _names(tree: ast.AST) -> set[str]:
    """Every identifier ``tree`` uses: names, attributes, imported names."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.rsplit(".", 1)[-1])
    return found


def _imports_identity(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                alias.name.startswith("azure.identity") for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("azure.identity"):
            return True
    return False


def test_only_the_composition_root_builds_credentials() -> None:
    """No module of the app, the reader, bench, scripts or the hosts other than scim_core/app.py
    names production_credential or admin_credential, and only auth/credentials.py imports
    azure.identity."""
    assert COMPOSITION_ROOT in SOURCES and CREDENTIALS in SOURCES
    naming, importing = [], []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if path not in (COMPOSITION_ROOT, CREDENTIALS) and _names(tree) & BUILDERS:
            naming.append(str(path.relative_to(ROOT)))
        if path != CREDENTIALS and _imports_identity(tree):
            importing.append(str(path.relative_to(ROOT)))
    assert naming == [], "only scim_core/app.py may build credentials"
    assert importing == [], "only scim_core/auth/credentials.py may import azure.identity"
    assert _names(ast.parse(COMPOSITION_ROOT.read_text(encoding="utf-8"))) >= BUILDERS


def test_the_app_makes_one_managed_identity_that_every_endpoint_client_shares(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the table, the events queue, the activity table and Key Vault all reached by
    endpoint, build_api makes one credential with production_credential, and the store's
    table, the queue, the activity table and the vault's requests all use it."""
    made: list[FakeCredential] = []

    def production(client_id: str | None = None) -> FakeCredential:
        made.append(FakeCredential())
        return made[-1]

    monkeypatch.setattr(app_module, "production_credential", production)
    with FakeKeyVault() as vault:
        build_client = keyvault_module.secret_client
        monkeypatch.setattr(keyvault_module, "secret_client", lambda url, credential, **options:
                            build_client(url, credential, **vault.client_kwargs(**options)))
        settings = dataclasses.replace(BY_ENDPOINT, keyvault_url=vault.url)
        token = secrets.token_urlsafe(32)
        vault.add_version(settings.token_secret_name, token)
        api = build_api(settings)
        store = api.store
        assert isinstance(store, TableStore)
        try:
            [credential] = made
            assert store.table.credential is credential
            nudge = store.feeds.on_commit
            assert isinstance(nudge, QueueNudge) and nudge.client.credential is credential
            rows = activity_rows(settings, store)
            assert isinstance(rows, TableActivityRows) and rows.client.credential is credential
            assert credential.calls == 0
            assert api.tokens.source("default").accepts(token)
            assert credential.calls > 0 and len(made) == 1
        finally:
            store.close()


def test_settings_that_reach_nothing_by_endpoint_make_no_credential(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection string for the table and the queue, and no Key Vault: the app makes no
    credential at all."""
    made: list[str] = []

    def production(client_id: str | None = None) -> FakeCredential:
        made.append("production")
        return FakeCredential()

    monkeypatch.setattr(app_module, "production_credential", production)
    settings = Settings(store="tables", tables_connection="UseDevelopmentStorage=true",
                        events_queue="scim-events", bearer_token="x" * 32, activity=False)
    api = build_api(settings)
    try:
        assert made == []
    finally:
        api.store.close()  # type: ignore[attr-defined]


def test_the_admin_reads_activity_with_its_own_credential() -> None:
    """The admin command's activity table is reached with the admin's credential, the one
    its store uses, not with a managed identity of its own."""
    credential = FakeCredential()
    with build_admin(BY_ENDPOINT, credential=credential) as admin:
        store: Any = admin.store
        assert store.table.credential is credential
        rows = activity_rows(admin.settings, store)
        assert isinstance(rows, TableActivityRows) and rows.client.credential is credential
        assert credential.calls == 0
