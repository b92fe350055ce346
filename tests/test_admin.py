"""python -m scim_core.admin end to end, with the real SecretClient against the Key Vault fake."""

from __future__ import annotations

import io
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scim_core import admin
from scim_core.auth.keyvault import KeyVaultTokenSource
from tests.kvfake import FakeClock, FakeCredential, FakeKeyVault

pytestmark = pytest.mark.timeout(60)

SECRET = "scim-bearer-token"
TENANT_URL = "https://scim-func-abc123.azurewebsites.net/scim/v2"
REPO = Path(__file__).absolute().parents[1]
EMPTY = Path(__file__).absolute().parent / "no-local-settings"
"""A directory without local.settings.json: these tests see no app settings."""


@pytest.fixture
def vault(clock: FakeClock) -> Iterator[FakeKeyVault]:
    with FakeKeyVault(clock=clock) as fake:
        fake.add_version("scim-tenant-url", TENANT_URL)
        yield fake


@dataclass
class Run:
    code: int
    out: str
    err: str
    """stderr after its first line, the ``target:`` line every command prints."""
    target: str = ""


def run(
    vault: FakeKeyVault,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    credential: Any = None,
    vault_url: str | None = None,
) -> Run:
    out = io.StringIO()
    code = admin.main(
        [*args, "--vault-url", vault_url or vault.url],
        credential=credential or FakeCredential(),
        client_kwargs=vault.client_kwargs(),
        out=out,
        env={},
        root=EMPTY,
    )
    captured = capsys.readouterr()
    target, _, err = captured.err.partition("\n")
    assert target.startswith("target: "), captured.err
    return Run(code, out.getvalue() + captured.out, err, target)


def rotate(vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> str:
    """Run rotate-token one second after the last change; returns the new token."""
    clock.advance(1)
    result = run(vault, capsys, "rotate-token")
    assert result.code == 0, result.err
    return vault.versions(SECRET)[-1].value


def enabled_versions(vault: FakeKeyVault) -> list[str]:
    return [v.version for v in vault.versions(SECRET) if v.enabled]


# rotate-token ------------------------------------------------------------------------------


def test_first_rotate_creates_secret_and_prints_token_once_with_tenant_url(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first rotate-token creates the secret, prints the token exactly once, the Tenant URL
    and the Entra steps, and says there is nothing to retire."""
    result = run(vault, capsys, "rotate-token")
    assert result.code == 0
    (stored,) = vault.versions(SECRET)
    assert result.out.count(stored.value) == 1
    assert TENANT_URL in result.out
    assert "Test Connection" in result.out
    assert "nothing to retire" in result.out
    assert stored.value not in result.err


def test_rotated_token_is_random_urlsafe_and_tagged(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new version holds >= 256 bits of URL-safe randomness, as text/plain, tagged with its
    creator, and two rotations never produce the same token."""
    assert run(vault, capsys, "rotate-token").code == 0
    vault.set_enabled(SECRET, vault.versions(SECRET)[0].version, False)
    assert run(vault, capsys, "rotate-token").code == 0
    first, second = vault.versions(SECRET)
    for stored in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", stored.value)
        assert stored.content_type == "text/plain"
        assert stored.tags == {"created-by": "scim_core.admin"}
    assert first.value != second.value


def test_rotate_keeps_previous_token_valid_and_explains_retire(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a rotation both tokens are accepted, and the output says to run retire-token."""
    old = rotate(vault, clock, capsys)
    clock.advance(1)
    result = run(vault, capsys, "rotate-token")
    new = vault.versions(SECRET)[-1].value
    assert result.code == 0
    assert "retire-token --vault-url " + vault.url in result.out
    assert old not in result.out
    source = KeyVaultTokenSource(vault.client(), SECRET, clock=clock)
    assert source.accepts(old)
    assert source.accepts(new)


def test_rotate_without_tenant_url_secret_prints_hint(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the vault has no scim-tenant-url secret, rotate-token still succeeds with a hint."""
    with FakeKeyVault(clock=clock) as bare:
        result = run(bare, capsys, "rotate-token")
        assert result.code == 0
        assert re.search(r"^Tenant URL: +not found", result.out, re.MULTILINE)
        assert result.out.count(bare.versions(SECRET)[-1].value) == 1


def test_rotate_refuses_while_rotation_pending(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """With two valid versions (a rotation not yet retired) rotate-token creates nothing and
    names the version to disable if the newest token was lost."""
    rotate(vault, clock, capsys)
    rotate(vault, clock, capsys)
    newest = vault.versions(SECRET)[-1]
    vault.reset_counts()
    result = run(vault, capsys, "rotate-token")
    assert result.code == 1
    assert "already pending" in result.err
    assert newest.version in result.err
    assert len(vault.versions(SECRET)) == 2
    assert vault.count("set") == 0
    assert newest.value not in result.err + result.out


def test_rotate_after_disabling_lost_token_keeps_entra_token_valid(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Following the pending-rotation advice (disable the lost newest version, rotate again)
    keeps the token Entra still sends accepted."""
    in_entra = rotate(vault, clock, capsys)
    rotate(vault, clock, capsys)  # its output was lost
    vault.set_enabled(SECRET, vault.versions(SECRET)[-1].version, False)
    replacement = rotate(vault, clock, capsys)
    source = KeyVaultTokenSource(vault.client(), SECRET, clock=clock)
    assert source.accepts(in_entra)
    assert source.accepts(replacement)


def test_rotate_does_not_retry_an_unanswered_write(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PUT whose answer is lost is not retried (that could create a second new version); the
    operator is told the version may exist and to run rotate-token again."""
    vault.close_connections = True
    vault.fault_routes = {"set"}
    out = io.StringIO()
    code = admin.main(
        ["rotate-token", "--vault-url", vault.url],
        credential=FakeCredential(),
        client_kwargs=vault.client_kwargs(retry_total=3, retry_backoff_factor=0.01),
        out=out,
    )
    err = capsys.readouterr().err
    assert code == 1
    assert vault.count("set") == 1
    assert "may have been created" in err
    assert out.getvalue() == ""


# cancel-rotation ---------------------------------------------------------------------------


def test_cancel_rotation_disables_the_lost_token_and_keeps_entras(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """cancel-rotation disables the newest version of a pending rotation and no other: the
    token Entra still sends stays accepted, the lost one is refused, and rotate-token works
    again; the pending-rotation refusal points to it."""
    in_entra = rotate(vault, clock, capsys)
    lost = rotate(vault, clock, capsys)
    refused = run(vault, capsys, "rotate-token")
    assert refused.code == 1 and "cancel-rotation" in refused.err
    done = run(vault, capsys, "cancel-rotation")
    assert done.code == 0, done.err
    kept, cancelled = vault.versions(SECRET)
    assert (kept.enabled, cancelled.enabled) == (True, False)
    assert f"Disabled version {cancelled.version}" in done.out
    assert f"version {kept.version}" in done.out
    assert in_entra not in done.out + done.err and lost not in done.out + done.err
    source = KeyVaultTokenSource(vault.client(), SECRET, clock=clock)
    assert source.accepts(in_entra)
    assert not source.accepts(lost)
    replacement = rotate(vault, clock, capsys)
    fresh = KeyVaultTokenSource(vault.client(), SECRET, clock=clock)
    assert fresh.accepts(in_entra) and fresh.accepts(replacement)


def test_cancel_rotation_without_a_pending_rotation_changes_nothing(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a single valid version there is no rotation to cancel: exit 1, one line, and no
    version is disabled (that would leave no token)."""
    rotate(vault, clock, capsys)
    vault.reset_counts()
    done = run(vault, capsys, "cancel-rotation")
    assert done.code == 1
    assert "nothing to cancel" in done.err and done.err.count("\n") == 1
    assert vault.count("update") == 0
    assert enabled_versions(vault) == [vault.versions(SECRET)[0].version]


# retire-token ------------------------------------------------------------------------------


def test_retire_disables_every_version_but_the_newest(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """retire-token leaves only the newest version enabled, reports how many it disabled, and
    prints no token value."""
    clock.advance(1)
    vault.add_version(SECRET, "already-retired-token-value", enabled=False)
    clock.advance(1)
    older = [vault.add_version(SECRET, f"older-token-{i}") for i in range(2)]
    clock.advance(1)
    tokens = [v.value for v in vault.versions(SECRET)]
    newest = vault.add_version(SECRET, "newest-token-value")
    result = run(vault, capsys, "retire-token")
    assert result.code == 0
    assert enabled_versions(vault) == [newest]
    assert "Disabled 2 older version(s)" in result.out
    assert newest in result.out
    assert older[0] not in enabled_versions(vault)
    for token in [*tokens, "newest-token-value"]:
        assert token not in result.out + result.err


def test_retire_twice_disables_nothing_more(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """retire-token is idempotent: a second run disables nothing and says so."""
    rotate(vault, clock, capsys)
    rotate(vault, clock, capsys)
    assert "Disabled 1 older" in run(vault, capsys, "retire-token").out
    vault.reset_counts()
    assert "Disabled 0 older" in run(vault, capsys, "retire-token").out
    assert vault.count("update") == 0


def test_retire_keeps_newest_valid_version_when_newest_is_disabled(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the newest version is disabled, retire-token keeps the newest *valid* one instead of
    leaving no token at all."""
    rotate(vault, clock, capsys)
    kept = vault.versions(SECRET)[-1].version
    rotate(vault, clock, capsys)
    vault.set_enabled(SECRET, vault.versions(SECRET)[-1].version, False)
    result = run(vault, capsys, "retire-token")
    assert result.code == 0
    assert enabled_versions(vault) == [kept]


def test_retire_refuses_when_no_version_is_valid(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no valid version, retire-token changes nothing and fails with one line."""
    clock.advance(1)
    vault.add_version(SECRET, "expired-token-value", exp=clock() - 10)
    result = run(vault, capsys, "retire-token")
    assert result.code == 1
    assert "no version" in result.err
    assert vault.count("update") == 0


def test_retire_without_secret_fails_with_hint(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    """retire-token on a vault without the token secret says to run rotate-token."""
    result = run(vault, capsys, "retire-token")
    assert result.code == 1
    assert "rotate-token" in result.err


def test_full_rotation_cycle_against_token_source(
    vault: FakeKeyVault, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """rotate, rotate, retire: the app accepts both tokens in between and only the newest after
    the cache interval."""
    source = KeyVaultTokenSource(vault.client(), SECRET, cache_seconds=60, clock=clock)
    first = rotate(vault, clock, capsys)
    assert source.accepts(first)
    clock.advance(10)
    second = rotate(vault, clock, capsys)
    assert source.accepts(second)
    assert source.accepts(first)
    clock.advance(1)
    assert run(vault, capsys, "retire-token").code == 0
    clock.advance(60)
    assert not source.accepts(first)
    assert source.accepts(second)


# show-endpoint -----------------------------------------------------------------------------


def test_show_endpoint_prints_tenant_url(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    """show-endpoint prints exactly the Tenant URL stored by the deployment."""
    result = run(vault, capsys, "show-endpoint")
    assert result.code == 0
    assert result.out == TENANT_URL + "\n"


def test_show_endpoint_reads_named_secret(
    vault: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tenant-url-secret selects another secret holding the Tenant URL."""
    vault.add_version("other-url", "https://other.example/scim/v2")
    result = run(vault, capsys, "show-endpoint", "--tenant-url-secret", "other-url")
    assert result.out == "https://other.example/scim/v2\n"


def test_show_endpoint_without_secret_fails_with_one_line(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the scim-tenant-url secret, show-endpoint fails with one line on stderr."""
    with FakeKeyVault(clock=clock) as bare:
        result = run(bare, capsys, "show-endpoint")
    assert result.code == 1
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert "scim-tenant-url" in result.err


# failures ----------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}"


FAILURES = {
    "no-az-login": ({"credential": FakeCredential(fail=True)}, {}, "az login"),
    "wrong-tenant": ({}, {"auth_mode": "reject"}, "refused the sign-in"),
    "forbidden": ({}, {"auth_mode": "forbidden"}, "Key Vault Secrets Officer"),
    "vault-down": ({}, {"fail_status": 503}, "try again later"),
    "unreachable": ({"vault_url": "closed-port"}, {}, "cannot reach Key Vault"),
}


@pytest.mark.parametrize("command", ["rotate-token", "retire-token", "show-endpoint"])
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_failures_are_one_line_without_traceback(
    vault: FakeKeyVault,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    command: str,
    failure: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    """Sign-in failures, missing permissions, an unavailable or unreachable vault: exit 1, one
    'error:' line on stderr naming the cause, no traceback, nothing written to the vault."""
    caplog.set_level(logging.DEBUG)
    run_options, vault_faults, expected = failure
    options = dict(run_options)
    if options.get("vault_url") == "closed-port":
        options["vault_url"] = closed_port_url()
    for name, value in vault_faults.items():
        setattr(vault, name, value)
    result = run(vault, capsys, command, **options)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: ")
    assert result.err.count("\n") == 1
    assert expected in result.err
    assert "Traceback" not in result.err
    assert vault.versions(SECRET) == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["rotate-token", "--vault-url", "http://127.0.0.1:1"],
        ["rotate-token", "--vault-url", "vault.example"],
        ["no-such-command", "--vault-url", "https://x.vault.azure.net"],
        ["tenant", "delete", "acme"],
        ["tenant", "create"],
    ],
    ids=["no-subcommand", "plain-http", "no-scheme", "unknown-subcommand", "delete-without-yes",
         "create-without-name"],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Wrong usage exits 2 with a message on stderr, before any credential is used.
    (Without --vault-url the commands use the app settings: no longer a usage error.)"""
    credential = FakeCredential()
    assert admin.main(argv, credential=credential, env={}, root=EMPTY) == 2
    assert capsys.readouterr().err
    assert credential.calls == 0


@pytest.mark.parametrize("argv", [
    ["events", "trim", "--days", "0"],
    ["events", "trim", "--step", "many"],
    ["events", "show", "--after", "-1"],
    ["events", "show", "--limit", "0"],
    ["events"],
], ids=["days-0", "step-not-a-number", "negative-after", "limit-0", "no-events-subcommand"])
def test_events_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    """Out-of-range or malformed events options exit 2 with a message, touching nothing."""
    credential = FakeCredential()
    assert admin.main(argv, credential=credential, env={}, root=EMPTY) == 2
    assert capsys.readouterr().err
    assert credential.calls == 0


def test_no_token_in_logs_or_stderr(
    vault: FakeKeyVault,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through rotate, a refused rotate and retire, with DEBUG logging on, the tokens appear
    only on stdout, once each, and never in a log record or on stderr."""
    caplog.set_level(logging.DEBUG)
    outputs: list[Run] = []
    for command in ("rotate-token", "rotate-token", "rotate-token", "retire-token"):
        clock.advance(1)
        outputs.append(run(vault, capsys, command))
    tokens = [v.value for v in vault.versions(SECRET)]
    assert len(tokens) == 2
    assert "azure" in caplog.text
    for token in tokens:
        assert token not in caplog.text
        assert sum(r.out.count(token) for r in outputs) == 1
        assert all(token not in r.err for r in outputs)


def test_module_runs_as_command() -> None:
    """python -m scim_core.admin --help works (without touching any network)."""
    done = subprocess.run(
        [sys.executable, "-m", "scim_core.admin", "rotate-token", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--vault-url" in done.stdout
