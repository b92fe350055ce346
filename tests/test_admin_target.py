"""The admin commands act on one deployment and say which: the environment's store and
vault settings replace local.settings.json's as a whole, every command names its table and
vault on stderr (never a key), and a local table with a remote vault (or the reverse) is
refused unless --allow-mixed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.data.tables import TableClient

from scim_core.admin import main
from scim_core.config import Settings, app_environment
from tests.azurite import Azurite, unique_table_name
from tests.kvfake import FakeCredential

pytestmark = pytest.mark.timeout(120)

REMOTE_TABLE = "https://scimprod.table.core.windows.net"
REMOTE_VAULT = "https://scim-kv-prod.vault.azure.net"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"


def write_settings(root: Path, values: dict[str, str]) -> None:
    (root / "local.settings.json").write_text(json.dumps({"Values": values}), encoding="utf-8")


@dataclass
class Run:
    code: int
    out: str
    target: str
    err: str


def run(capsys: pytest.CaptureFixture[str], env: dict[str, str], root: Path, *argv: str,
        credential: FakeCredential | None = None) -> Run:
    out = io.StringIO()
    code = main(list(argv), env=env, root=root, out=out,
                credential=credential or FakeCredential())
    captured = capsys.readouterr()
    target, _, err = captured.err.partition("\n")
    return Run(code, out.getvalue() + captured.out, target, err)


@pytest.fixture
def azurite_file(azurite: Azurite, tmp_path: Path) -> Iterator[str]:
    """local.settings.json next to a local run: Azurite (a fresh table) as the store;
    yields the table's URL."""
    table = unique_table_name()
    write_settings(tmp_path, {"SCIM_STORE": "tables",
                              "SCIM_TABLES_CONNECTION": azurite.connection_string,
                              "SCIM_TABLE_NAME": table})
    client = TableClient.from_connection_string(azurite.connection_string, table)
    yield f"{client.url}/{table}"
    client.delete_table()


# precedence ------------------------------------------------------------------------------


def test_the_environment_replaces_the_files_store_settings_as_a_whole(tmp_path: Path) -> None:
    """With SCIM_TABLES_ENDPOINT in the environment, local.settings.json's connection string
    and table name no longer apply (the deployment's table, not Azurite's); the file's other
    settings still do."""
    write_settings(tmp_path, {"SCIM_TABLES_CONNECTION": "UseDevelopmentStorage=true",
                              "SCIM_TABLE_NAME": "localtable", "SCIM_STORE": "tables",
                              "SCIM_BASE_URL": "http://127.0.0.1:7071/scim/v2"})
    settings = Settings.from_env(app_environment({"SCIM_TABLES_ENDPOINT": REMOTE_TABLE},
                                                 tmp_path))
    assert settings.tables_endpoint == REMOTE_TABLE
    assert settings.tables_connection == ""
    assert settings.table_name == "scim"
    assert settings.base_url == "http://127.0.0.1:7071/scim/v2"


def test_the_environment_replaces_the_files_vault_settings_as_a_whole(tmp_path: Path) -> None:
    """With SCIM_KEYVAULT_URL in the environment the file's SCIM_TOKEN_SECRET_NAME does not
    apply; with no vault setting in the environment the file's vault settings do."""
    write_settings(tmp_path, {"SCIM_KEYVAULT_URL": "https://other.vault.azure.net",
                              "SCIM_TOKEN_SECRET_NAME": "local-name"})
    chosen = Settings.from_env(app_environment({"SCIM_KEYVAULT_URL": REMOTE_VAULT}, tmp_path))
    assert (chosen.keyvault_url, chosen.token_secret_name) == (REMOTE_VAULT,
                                                              "scim-bearer-token")
    kept = Settings.from_env(app_environment({"SCIM_TABLE_NAME": "x"}, tmp_path))
    assert (kept.keyvault_url, kept.token_secret_name) == ("https://other.vault.azure.net",
                                                          "local-name")


def test_the_deployments_settings_in_the_environment_win_next_to_make_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The reported case: local.settings.json holds Azurite, the environment the deployment's
    table and vault; the command acts on (and names) the deployment's table, not Azurite."""
    write_settings(tmp_path, {"SCIM_STORE": "tables",
                              "SCIM_TABLES_CONNECTION": "UseDevelopmentStorage=true",
                              "SCIM_TABLE_NAME": "scim"})
    env = {"SCIM_TABLES_ENDPOINT": REMOTE_TABLE, "SCIM_KEYVAULT_URL": REMOTE_VAULT}
    done = run(capsys, env, tmp_path, "tenant", "show", "Not A Valid Id")
    assert done.code == 1 and "3 to 63" in done.err  # refused before any network call
    assert done.target == (f"target: table {REMOTE_TABLE}/scim; tokens in Key Vault "
                           f"{REMOTE_VAULT}")
    assert "127.0.0.1" not in done.target and "devstoreaccount1" not in done.target


# the printed target ----------------------------------------------------------------------


def test_every_command_names_its_table_and_vault_without_a_key(
        azurite_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A command next to a local run prints, as its first stderr line, Azurite's table
    endpoint and table and that the tokens are in its local secrets; the account key of the
    connection string never appears, and stdout stays the command's own."""
    done = run(capsys, {}, tmp_path, "tenant", "list")
    assert done.code == 0, done.err
    assert done.target == f"target: table {azurite_file}; tokens in that table's local secrets"
    assert azurite_file.startswith("http://127.0.0.1:")
    assert AZURITE_KEY not in done.target + done.out + done.err
    assert "AccountKey" not in done.target
    assert not done.out.startswith("target:")
    shown = run(capsys, {}, tmp_path, "show-endpoint", "--tenant", "default")
    assert shown.out == "http://127.0.0.1:7071/scim/v2\n"
    assert shown.target == done.target


# mixes -----------------------------------------------------------------------------------


def test_a_local_table_with_a_remote_vault_is_refused_unless_allowed(
        azurite_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Azurite from local.settings.json with the deployment's vault from the environment is
    refused (exit 2, nothing touched, no sign-in) and says how to fix it; --allow-mixed
    acts on it."""
    credential = FakeCredential()
    env = {"SCIM_KEYVAULT_URL": REMOTE_VAULT}
    refused = run(capsys, env, tmp_path, "tenant", "create", "--name", "Mixed",
                  credential=credential)
    assert refused.code == 2
    assert "local table with a remote vault" in refused.err and "--allow-mixed" in refused.err
    assert "SCIM_TABLES_ENDPOINT" in refused.err
    assert credential.calls == 0
    assert run(capsys, env, tmp_path, "tenant", "list").out == ""
    allowed = run(capsys, env, tmp_path, "tenant", "list", "--allow-mixed")
    assert allowed.code == 0, allowed.err
    assert "default" in allowed.out


def test_a_remote_table_with_a_local_vault_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The deployment's table with a vault on this machine is refused; so is keeping tokens
    in a remote table's local secrets, unless SCIM_ALLOW_LOCAL_SECRETS=true says the
    deployment does."""
    env = {"SCIM_TABLES_ENDPOINT": REMOTE_TABLE, "SCIM_KEYVAULT_URL": "https://127.0.0.1:8443"}
    done = run(capsys, env, tmp_path, "rotate-token", "--tenant", "acme")
    assert done.code == 2 and "remote table with a local vault" in done.err
    no_vault = {"SCIM_TABLES_ENDPOINT": REMOTE_TABLE}
    done = run(capsys, no_vault, tmp_path, "rotate-token", "--tenant", "acme")
    assert done.code == 2 and "local secrets of a remote table" in done.err
    assert done.target == f"target: table {REMOTE_TABLE}/scim; tokens in that table's " \
                          "local secrets"
    allowed = {**no_vault, "SCIM_ALLOW_LOCAL_SECRETS": "true"}
    passed = run(capsys, allowed, tmp_path, "tenant", "show", "Not A Valid Id")
    assert passed.code == 1 and "3 to 63" in passed.err


def test_the_same_place_for_both_is_no_mix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A remote table with a remote vault passes the check (the command then runs)."""
    env = {"SCIM_TABLES_ENDPOINT": REMOTE_TABLE, "SCIM_KEYVAULT_URL": REMOTE_VAULT}
    done = run(capsys, env, tmp_path, "tenant", "show", "Not A Valid Id")
    assert done.code == 1 and "refusing" not in done.err
