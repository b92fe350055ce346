"""KeyVaultTokenSource with the real SecretClient against the local HTTPS Key Vault fake."""

from __future__ import annotations

import io
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from scim_core import admin
from scim_core.auth import authenticate
from scim_core.auth.keyvault import KeyVaultTokenSource, keyvault_token_source
from scim_core.config import Settings, SettingsError
from scim_core.errors import ServiceUnavailable, Unauthorized
from tests.kvfake import FakeClock, FakeCredential, FakeKeyVault

pytestmark = pytest.mark.timeout(60)

SECRET = "scim-bearer-token"
TTL = 60.0
INTERVAL = 5.0


def new_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def vault(clock: FakeClock) -> Iterator[FakeKeyVault]:
    with FakeKeyVault(clock=clock) as fake:
        yield fake


def make_source(vault: FakeKeyVault, clock: FakeClock, **overrides: Any) -> KeyVaultTokenSource:
    client_options = overrides.pop("client_options", {})
    options: dict[str, Any] = {
        "cache_seconds": TTL,
        "min_refresh_interval": INTERVAL,
        "wait_seconds": 5.0,
        "clock": clock,
    }
    options.update(overrides)
    return KeyVaultTokenSource(vault.client(**client_options), SECRET, **options)


def add(vault: FakeKeyVault, clock: FakeClock, **attributes: Any) -> str:
    """Store a new token version one second after the previous one; returns the token."""
    clock.advance(1)
    token = new_token()
    vault.add_version(SECRET, token, **attributes)
    return token


# which versions are accepted ---------------------------------------------------------------


def test_newest_version_accepted_and_unknown_refused(vault: FakeKeyVault, clock: FakeClock) -> None:
    """The value of the only version is accepted; any other string is refused."""
    token = add(vault, clock)
    source = make_source(vault, clock)
    assert source.accepts(token)
    assert not source.accepts(new_token())
    assert not source.accepts(token[:-1])


def test_only_newest_two_versions_accepted(vault: FakeKeyVault, clock: FakeClock) -> None:
    """With three valid versions the newest two are accepted and the third-newest is refused."""
    oldest, middle, newest = add(vault, clock), add(vault, clock), add(vault, clock)
    source = make_source(vault, clock)
    assert source.accepts(newest)
    assert source.accepts(middle)
    assert not source.accepts(oldest)


def test_paged_version_list_is_read_to_the_end(vault: FakeKeyVault, clock: FakeClock) -> None:
    """The newest versions are found even when they sit on the last page of the listing."""
    tokens = [add(vault, clock) for _ in range(5)]
    source = make_source(vault, clock)
    assert source.accepts(tokens[-1])
    assert source.accepts(tokens[-2])
    assert vault.count("list_versions") == 3  # five versions, two per page


def test_disabled_version_refused(vault: FakeKeyVault, clock: FakeClock) -> None:
    """A disabled version is refused, and its value is never even fetched."""
    older = add(vault, clock)
    disabled = add(vault, clock, enabled=False)
    source = make_source(vault, clock)
    assert not source.accepts(disabled)
    assert source.accepts(older)
    assert vault.count("get") == 1


def test_expired_version_refused(vault: FakeKeyVault, clock: FakeClock) -> None:
    """A version past its expires_on is refused although Key Vault still returns its value."""
    older = add(vault, clock)
    expired = add(vault, clock, exp=clock() - 1)
    source = make_source(vault, clock)
    assert not source.accepts(expired)
    assert source.accepts(older)


def test_not_yet_valid_version_refused_until_not_before(
    vault: FakeKeyVault, clock: FakeClock
) -> None:
    """A version before its not_before is refused, and accepted once that time has passed."""
    older = add(vault, clock)
    future = add(vault, clock, nbf=clock() + 30)
    source = make_source(vault, clock)
    assert not source.accepts(future)
    assert source.accepts(older)
    clock.advance(31)
    assert source.accepts(future)


def test_version_expiring_while_cached_refused_at_expiry(
    vault: FakeKeyVault, clock: FakeClock
) -> None:
    """A cached version stops being accepted at its expiry, without waiting for the cache TTL."""
    token = add(vault, clock, exp=clock() + 20)
    source = make_source(vault, clock)
    assert source.accepts(token)
    clock.advance(21)
    calls = vault.count("list_versions")
    assert not source.accepts(token)
    assert vault.count("list_versions") == calls + 1  # unknown-token reload, not a TTL reload


def test_disabled_newer_version_does_not_push_out_older_valid_ones(
    vault: FakeKeyVault, clock: FakeClock
) -> None:
    """Disabled versions take no place among the two: disabling a lost pending token keeps the
    two valid tokens before it working."""
    first, second = add(vault, clock), add(vault, clock)
    lost = add(vault, clock, enabled=False)
    source = make_source(vault, clock)
    assert source.accepts(first)
    assert source.accepts(second)
    assert not source.accepts(lost)


def test_after_retire_only_newest_accepted(vault: FakeKeyVault, clock: FakeClock) -> None:
    """Once every older version is disabled (retire-token), only the newest is accepted."""
    old, new = add(vault, clock), add(vault, clock)
    old_version = vault.versions(SECRET)[0].version
    vault.set_enabled(SECRET, old_version, False)
    source = make_source(vault, clock)
    assert source.accepts(new)
    assert not source.accepts(old)


def test_missing_secret_refuses_every_token(
    vault: FakeKeyVault, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With no secret in the vault every token is refused (401), not a 503, and it is logged."""
    source = make_source(vault, clock)
    with caplog.at_level(logging.WARNING):
        assert not source.accepts(new_token())
    assert "no valid version" in caplog.text


# caching and refresh -----------------------------------------------------------------------


def test_cache_serves_within_ttl(vault: FakeKeyVault, clock: FakeClock) -> None:
    """Within the TTL, repeated checks of a valid token make no further Key Vault calls."""
    token = add(vault, clock)
    source = make_source(vault, clock)
    for _ in range(50):
        assert source.accepts(token)
        clock.advance(1)
    assert vault.count("list_versions") == 1


def test_ttl_expiry_triggers_refresh(vault: FakeKeyVault, clock: FakeClock) -> None:
    """After the TTL the next check reloads, so a retired version is refused from then on."""
    old, new = add(vault, clock), add(vault, clock)
    source = make_source(vault, clock)
    assert source.accepts(old)
    vault.set_enabled(SECRET, vault.versions(SECRET)[0].version, False)
    clock.advance(TTL - 1)
    assert source.accepts(old)  # still cached
    assert vault.count("list_versions") == 1
    clock.advance(2)
    assert not source.accepts(old)
    assert source.accepts(new)
    assert vault.count("list_versions") == 2


def test_unknown_token_reloads_at_once(vault: FakeKeyVault, clock: FakeClock) -> None:
    """A token created after the last load is accepted on first use, before the TTL runs out."""
    add(vault, clock)
    source = make_source(vault, clock)
    assert not source.accepts("not-yet")
    clock.advance(INTERVAL)
    fresh = add(vault, clock)
    assert source.accepts(fresh)
    assert vault.count("list_versions") == 2


def test_bad_token_flood_is_bounded(vault: FakeKeyVault, clock: FakeClock) -> None:
    """500 bad tokens, sent concurrently, cause at most one Key Vault reload per interval."""
    add(vault, clock)
    source = make_source(vault, clock)
    assert not source.accepts(new_token())  # first load
    bad = [new_token() for _ in range(500)]

    def flood() -> list[bool]:
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(source.accepts, bad))

    assert not any(flood())
    assert vault.count("list_versions") == 1  # the load just happened: throttled
    clock.advance(INTERVAL)
    assert not any(flood())
    assert vault.count("list_versions") == 2
    assert vault.count("total") <= 2 + 2 + 1  # two lists, two value reads, one challenge


def test_concurrent_cold_start_loads_once(vault: FakeKeyVault, clock: FakeClock) -> None:
    """Requests arriving together at a cold start share one Key Vault load."""
    token = add(vault, clock)
    source = make_source(vault, clock)
    vault.delay_seconds = 0.2
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(source.accepts, [token] * 20))
    assert all(results)
    assert vault.count("list_versions") == 1


def test_clock_stepping_back_counts_as_stale(vault: FakeKeyVault, clock: FakeClock) -> None:
    """If the clock steps backwards the cache is treated as stale rather than kept forever."""
    old = add(vault, clock)
    source = make_source(vault, clock)
    assert source.accepts(old)
    vault.set_enabled(SECRET, vault.versions(SECRET)[0].version, False)
    clock.advance(-3600)
    assert not source.accepts(old)


# Key Vault unreachable ---------------------------------------------------------------------

FAULTS = {
    "503": {"fail_status": 503},
    "429": {"fail_status": 429},
    "500": {"fail_status": 500},
    "connection-closed": {"close_connections": True},
    "timeout": {"delay_seconds": 1.0},
    "forbidden": {"auth_mode": "forbidden"},
    "token-rejected": {"auth_mode": "reject"},
}


def apply_fault(vault: FakeKeyVault, fault: dict[str, Any]) -> None:
    for name, value in fault.items():
        setattr(vault, name, value)


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_key_vault_down_warm_cache_keeps_accepting(
    vault: FakeKeyVault, clock: FakeClock, fault: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """With tokens cached, a Key Vault failure keeps them accepted past the TTL, with a warning."""
    token = add(vault, clock)
    source = make_source(vault, clock, client_options={"read_timeout": 0.3})
    assert source.accepts(token)
    apply_fault(vault, fault)
    clock.advance(TTL * 10)
    with caplog.at_level(logging.WARNING):
        assert source.accepts(token)
        assert not source.accepts(new_token())
    assert "Serving 1 cached bearer-token version(s)" in caplog.text
    assert token not in caplog.text


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_key_vault_down_cold_cache_raises_service_unavailable(
    vault: FakeKeyVault, clock: FakeClock, fault: dict[str, Any]
) -> None:
    """With nothing cached, a Key Vault failure is a 503 with Retry-After, never True or a 500."""
    token = add(vault, clock)
    source = make_source(vault, clock, client_options={"read_timeout": 0.3})
    apply_fault(vault, fault)
    with pytest.raises(ServiceUnavailable) as caught:
        source.accepts(token)
    assert caught.value.status == 503
    assert caught.value.retry_after == int(INTERVAL)
    assert caught.value.headers["Retry-After"] == str(int(INTERVAL))


@pytest.mark.parametrize(
    "error",
    [RuntimeError("credential exploded"), ValueError("bad")],
    ids=["runtime-error", "value-error"],
)
def test_unexpected_error_is_service_unavailable(
    vault: FakeKeyVault, clock: FakeClock, error: Exception
) -> None:
    """Even an error outside azure.core (here from the credential) becomes a 503, never a 500."""
    token = add(vault, clock)
    client = vault.client(FakeCredential(error=error))
    source = KeyVaultTokenSource(client, SECRET, clock=clock)
    with pytest.raises(ServiceUnavailable):
        source.accepts(token)


def test_cold_failure_backs_off_then_recovers(vault: FakeKeyVault, clock: FakeClock) -> None:
    """After a failed cold load, requests within the interval get 503 without calling Key Vault;
    after it, a working vault is read again."""
    token = add(vault, clock)
    source = make_source(vault, clock)
    vault.fail_status = 503
    for _ in range(20):
        with pytest.raises(ServiceUnavailable):
            source.accepts(token)
    assert vault.count("list_versions") == 1
    vault.fail_status = None
    clock.advance(INTERVAL)
    assert source.accepts(token)


def test_warm_cache_failure_retries_once_per_interval(
    vault: FakeKeyVault, clock: FakeClock
) -> None:
    """While Key Vault is down with a stale cache, it is retried at most once per interval."""
    token = add(vault, clock)
    source = make_source(vault, clock)
    assert source.accepts(token)
    vault.fail_status = 503
    clock.advance(TTL)
    for _ in range(100):
        assert source.accepts(token)
    assert vault.count("list_versions") == 2
    clock.advance(INTERVAL)
    vault.fail_status = None
    assert source.accepts(token)
    assert vault.count("list_versions") == 3


def test_authenticate_maps_source_outcomes(vault: FakeKeyVault, clock: FakeClock) -> None:
    """Through authenticate(): a valid token passes, a bad one is 401, a cold outage is 503."""
    token = add(vault, clock)
    down = make_source(vault, clock)
    vault.fail_status = 503
    with pytest.raises(ServiceUnavailable):
        authenticate(f"Bearer {token}", down)
    vault.fail_status = None
    source = make_source(vault, clock)
    authenticate(f"Bearer {token}", source)
    with pytest.raises(Unauthorized):
        authenticate(f"Bearer {new_token()}", source)


# rotation ----------------------------------------------------------------------------------


def run_admin(vault: FakeKeyVault, command: str) -> str:
    out = io.StringIO()
    code = admin.main(
        [command, "--vault-url", vault.url],
        credential=FakeCredential(),
        client_kwargs=vault.client_kwargs(),
        out=out,
    )
    assert code == 0
    return out.getvalue()


def test_rotation_while_requests_flow(vault: FakeKeyVault, clock: FakeClock) -> None:
    """Rotating and retiring while requests flow refuses no request carrying a valid token, and
    the retired token is refused once the cache interval has passed."""
    old = add(vault, clock)
    source = make_source(vault, clock)
    assert source.accepts(old)
    sending = [old]  # what Entra currently sends
    refused: list[str] = []
    checks = [0]
    stop = threading.Event()

    def entra() -> None:
        while not stop.is_set():
            token = sending[-1]
            if not source.accepts(token):
                refused.append("old" if token == old else "new")
            checks[0] += 1
            time.sleep(0.001)

    workers = [threading.Thread(target=entra) for _ in range(6)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.1)
        clock.advance(10)
        run_admin(vault, "rotate-token")
        new = vault.versions(SECRET)[-1].value
        time.sleep(0.1)
        clock.advance(10)  # the admin pastes the new token into Entra
        sending.append(new)
        time.sleep(0.1)
        clock.advance(10)
        out = run_admin(vault, "retire-token")
        assert "Disabled 1 older version(s)" in out
        time.sleep(0.1)
        assert source.accepts(old)  # retired, but still cached
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert refused == []
    assert checks[0] > 50
    clock.advance(TTL)
    assert not source.accepts(old)
    assert source.accepts(new)


# factory, credentials and secrecy ----------------------------------------------------------


def test_factory_builds_working_source_from_settings(vault: FakeKeyVault, clock: FakeClock) -> None:
    """keyvault_token_source() reads vault URL, secret name and TTL from Settings and passes the
    client options through to the SecretClient."""
    token = new_token()
    vault.add_version("custom-name", token)
    settings = Settings(keyvault_url=vault.url, token_secret_name="custom-name")
    source = keyvault_token_source(
        settings,
        credential=FakeCredential(),
        clock=clock,
        verify_challenge_resource=False,
        connection_verify=vault.ca_pem_path,
    )
    assert source.accepts(token)
    assert source.secret_name == "custom-name"
    source.close()


def test_factory_uses_fast_failing_retry_policy(vault: FakeKeyVault, clock: FakeClock) -> None:
    """The factory's client retries a failing Key Vault exactly twice, then gives up (503)."""
    add(vault, clock)
    source = keyvault_token_source(
        Settings(keyvault_url=vault.url),
        credential=FakeCredential(),
        clock=clock,
        verify_challenge_resource=False,
        connection_verify=vault.ca_pem_path,
        retry_backoff_factor=0.01,
    )
    vault.fail_status = 503
    with pytest.raises(ServiceUnavailable):
        source.accepts("anything")
    assert vault.count("list_versions") == 3


def test_factory_without_a_credential_or_client_builds_none(vault: FakeKeyVault,
                                                            clock: FakeClock) -> None:
    """The factory reads through the credential or the client it is given; given neither it
    raises and builds no credential itself."""
    token = add(vault, clock)
    settings = Settings(keyvault_url=vault.url)
    with pytest.raises(TypeError, match="credential or a client"):
        keyvault_token_source(settings, credential=None, clock=clock)
    source = keyvault_token_source(settings, credential=None, client=vault.client(), clock=clock)
    assert source.accepts(token)


def test_factory_requires_vault_url() -> None:
    """Without SCIM_KEYVAULT_URL the factory fails at start-up with a settings error."""
    with pytest.raises(SettingsError):
        keyvault_token_source(Settings(), credential=FakeCredential())


def test_no_token_material_in_logs_reprs_or_errors(
    vault: FakeKeyVault, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Across load, reload, unknown tokens, outages and 503s, no token value reaches a log
    record (DEBUG and up, Azure SDK loggers included), a repr or an error."""
    caplog.set_level(logging.DEBUG)
    # building the app (any earlier test) quiets this logger process-wide; see it here
    caplog.set_level(logging.DEBUG, logger="azure.core.pipeline.policies.http_logging_policy")
    old, new = add(vault, clock), add(vault, clock)
    presented_bad = new_token()
    cold = make_source(vault, clock)
    vault.fail_status = 503
    with pytest.raises(ServiceUnavailable) as caught:
        cold.accepts(old)
    vault.fail_status = None
    source = make_source(vault, clock)
    assert source.accepts(old)
    assert not source.accepts(presented_bad)
    clock.advance(TTL)
    vault.close_connections = True
    assert source.accepts(new)
    vault.close_connections = False
    clock.advance(TTL)
    newest = add(vault, clock)
    assert source.accepts(newest)
    texts = [
        caplog.text,
        " ".join(str(r.args) for r in caplog.records),
        repr(source),
        repr(cold),
        str(caught.value),
        str(caught.value.body()),
        str(caught.value.headers),
    ]
    assert "azure" in caplog.text  # the SDK's own loggers were captured too
    for text in texts:
        for token in (old, new, newest, presented_bad):
            assert token not in text
    assert "KeyVaultTokenSource(" in repr(source)


def test_the_app_reads_every_tenants_token_through_one_client(
    vault: FakeKeyVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SCIM_KEYVAULT_URL the app builds one credential and one SecretClient, and both
    the default tenant's token and another tenant's are read through it."""
    from scim_core import app as app_module
    from scim_core import build_api
    from scim_core.auth import keyvault as keyvault_module
    from scim_core.store import MemoryStore

    credentials: list[str] = []
    clients: list[Any] = []
    build_client = keyvault_module.secret_client

    def fake_production_credential() -> FakeCredential:
        credentials.append("production")
        return FakeCredential()

    def counted_client(url: str, credential: Any, **options: Any) -> Any:
        client = build_client(url, credential, **{**vault.client_kwargs(), **options})
        clients.append(client)
        return client

    monkeypatch.setattr(app_module, "production_credential", fake_production_credential)
    monkeypatch.setattr(keyvault_module, "secret_client", counted_client)
    default_token, acme_token = add(vault, clock), new_token()
    vault.add_version("scim-token-acme", acme_token)
    api = build_api(Settings(store="memory", keyvault_url=vault.url), store=MemoryStore())
    assert credentials == ["production"] and len(clients) == 1
    assert api.tokens.source("default").accepts(default_token)
    assert api.tokens.source("acme").accepts(acme_token)
