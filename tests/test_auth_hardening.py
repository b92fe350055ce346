"""Authentication hardening: every protected route refuses every kind of bad credential
with 401 + a SCIM Error + WWW-Authenticate, discovery stays public, no token ever shows in a
response or a log record, and comparing tokens takes no longer for a longer common prefix."""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from scim_core import Request, Settings, build_api
from scim_core.auth import StaticTokenSource, authenticate, constant_time_in
from scim_core.auth.keyvault import KeyVaultTokenSource
from scim_core.errors import Unauthorized
from scim_core.store import MemoryStore
from tests.conftest import make_api
from tests.kvfake import FakeKeyVault
from tests.reliability import assert_scim_error, count, snapshot, write_figures
from tests.support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_OP,
    TOKEN,
    USER_SCHEMA,
    FunctionClient,
    HttpClient,
    Result,
    use_api,
)

pytestmark = pytest.mark.timeout(120)

SUITE = "auth"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    write_figures(SUITE)


def _other(char: str) -> str:
    return "b" if char != "b" else "c"


WRONG = "Z" + TOKEN[1:]
BAD_CREDENTIALS: dict[str, str | None] = {
    "missing": None,
    "empty": "",
    "spaces": "   ",
    "scheme-only": "Bearer",
    "scheme-and-space": "Bearer ",
    "basic-user-token": "Basic " + base64.b64encode(f"scim:{TOKEN}".encode()).decode(),
    "basic-raw-token": f"Basic {TOKEN}",
    "lowercase-scheme-wrong-token": f"bearer {WRONG}",
    "uppercase-scheme-wrong-token": f"BEARER {WRONG}",
    "token-without-scheme": TOKEN,
    "scheme-glued-to-token": f"Bearer{TOKEN}",
    "other-scheme": f"Token {TOKEN}",
    "mac-scheme": f"MAC {TOKEN}",
    "missing-last-char": f"Bearer {TOKEN[:-1]}",
    "missing-first-char": f"Bearer {TOKEN[1:]}",
    "extra-char": f"Bearer {TOKEN}x",
    "last-char-changed": f"Bearer {TOKEN[:-1]}{_other(TOKEN[-1])}",
    "first-char-changed": f"Bearer {WRONG}",
    "case-changed": f"Bearer {TOKEN.upper()}",
    "doubled": f"Bearer {TOKEN}{TOKEN}",
    "two-tokens": f"Bearer {TOKEN} {TOKEN}",
    "trailing-comma": f"Bearer {TOKEN},",
    "quoted": f'Bearer "{TOKEN}"',
    "bearer-twice": f"Bearer Bearer {TOKEN}",
    "non-ascii-last-char": f"Bearer {TOKEN[:-1]}\u00e9",
    "nul-suffix": f"Bearer {TOKEN}\x00",
    "tab-inside": f"Bearer {TOKEN[:10]}\t{TOKEN[10:]}",
    "huge": "Bearer " + "a" * 20_000,
    "base64-of-token": "Bearer " + base64.b64encode(TOKEN.encode()).decode(),
}
# Headers that http.client refuses to send are exercised through the function only.
HTTP_SENDABLE = [name for name, value in BAD_CREDENTIALS.items()
                 if value is None or ("\x00" not in value and value.isascii())]

PUBLIC_GETS = ["/ServiceProviderConfig", "/Schemas", f"/Schemas/{USER_URN}", "/ResourceTypes",
               "/ResourceTypes/User", "/ResourceTypes/Group", f"/Schemas/{ENTERPRISE}"]


class Fixture:
    """A user and a group to aim the protected routes at."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.user = client.create_user("auth@example.org")
        self.group = client.create_group("Auth Group", members=[{"value": self.user["id"]}])

    def routes(self) -> list[tuple[str, str, Any, dict[str, str] | None]]:
        """Every protected method and route, with a body that would succeed if authorized."""
        uid, gid = self.user["id"], self.group["id"]
        user = {"schemas": [USER_SCHEMA], "userName": "intruder@example.org"}
        group = {"schemas": [GROUP_SCHEMA], "displayName": "Intruders"}
        patch = {"schemas": [PATCH_OP],
                 "Operations": [{"op": "replace", "path": "displayName", "value": "pwned"}]}
        search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
        by_name = {"filter": 'userName eq "auth@example.org"'}
        members = {"filter": f'id eq "{gid}" and members[value eq "{uid}"]',
                   "excludedAttributes": "members"}
        routes: list[tuple[str, str, Any, dict[str, str] | None]] = [
            ("GET", "/Users", None, None), ("POST", "/Users", user, None),
            ("GET", f"/Users/{uid}", None, None),
            ("PUT", f"/Users/{uid}", {**user, "userName": "auth@example.org"}, None),
            ("PATCH", f"/Users/{uid}", patch, None), ("DELETE", f"/Users/{uid}", None, None),
            ("POST", "/Users/.search", search, None), ("GET", "/Users", None, by_name),
            ("GET", "/Groups", None, None), ("POST", "/Groups", group, None),
            ("GET", f"/Groups/{gid}", None, None),
            ("PUT", f"/Groups/{gid}", {**group, "displayName": "Auth Group"}, None),
            ("PATCH", f"/Groups/{gid}", patch, None), ("DELETE", f"/Groups/{gid}", None, None),
            ("POST", "/Groups/.search", search, None), ("GET", "/Groups", None, members),
            ("GET", "/Users/does-not-exist", None, None),
            ("DELETE", "/Users/does-not-exist", None, None),
            ("POST", "/ServiceProviderConfig", {}, None), ("PUT", "/Schemas", {}, None),
            ("DELETE", "/ResourceTypes/User", None, None),
            ("PATCH", f"/Schemas/{USER_URN}", patch, None), ("POST", "/Bulk", {}, None),
            ("GET", "/Me", None, None), ("GET", "/", None, None),
            ("GET", "/NoSuchEndpoint", None, None), ("POST", "/.search", search, None),
        ]
        return routes


def assert_refused(result: Result, presented: str | None) -> None:
    """401, a SCIM Error body, a Bearer challenge, and nothing of the credential echoed."""
    assert result.status == 401, (result.status, result.body[:300])
    assert_scim_error(result)
    challenge = result.header("WWW-Authenticate") or ""
    assert challenge.startswith("Bearer"), result.headers
    if presented and len(presented) > 8:
        token_part = presented.split(" ", 1)[-1]
        assert token_part.encode() not in result.body
        assert all(token_part not in v for v in result.headers.values())


def _send(client: Any, method: str, path: str, body: Any, header: str | None,
          params: dict[str, str] | None = None) -> Result:
    headers = {} if header is None else {"Authorization": header}
    result: Result = client.request(method, path, body, params=params, headers=headers,
                                    token=None)
    count(f"{SUITE}.requests")
    return result


@pytest.fixture
def target(memory_client: FunctionClient) -> Fixture:
    return Fixture(memory_client)


@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS), ids=list(BAD_CREDENTIALS))
def test_every_protected_route_refuses_bad_credentials(target: Fixture, credential: str
                                                       ) -> None:
    """Every protected route and method answers a bad credential with 401 + SCIM Error +
    WWW-Authenticate, before routing (unknown paths too), and nothing is changed."""
    header = BAD_CREDENTIALS[credential]
    before = snapshot(target.client)
    for method, path, body, params in target.routes():
        assert_refused(_send(target.client, method, path, body, header, params), header)
        count(f"{SUITE}.refusals_checked")
    assert snapshot(target.client) == before


@pytest.mark.parametrize("credential", HTTP_SENDABLE, ids=HTTP_SENDABLE)
def test_bad_credentials_over_http_are_refused(http_client: HttpClient, credential: str
                                               ) -> None:
    """Over HTTP through the dev host, bad credentials get the same 401 on every route."""
    target = Fixture(http_client)
    header = BAD_CREDENTIALS[credential]
    before = snapshot(http_client)
    for method, path, body, params in target.routes():
        assert_refused(_send(http_client, method, path, body, header, params), header)
        count(f"{SUITE}.refusals_checked")
    assert snapshot(http_client) == before


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}",
                                    f"Bearer  {TOKEN} "])
def test_the_right_token_passes_in_any_scheme_case(target: Fixture, header: str) -> None:
    """The configured token is accepted whatever the case of 'Bearer' (RFC 7235), so the
    refusals above are about the credential, not the harness."""
    for method, path, body, params in target.routes()[:3]:
        result = _send(target.client, method, path, body, header, params)
        assert result.status in (200, 201), (method, path, result.status)


@pytest.mark.parametrize("path", PUBLIC_GETS)
@pytest.mark.parametrize("credential", ["missing", "empty", "basic-raw-token",
                                        "missing-last-char"])
def test_discovery_gets_are_public(memory_client: FunctionClient, path: str,
                                   credential: str) -> None:
    """GET on /ServiceProviderConfig, /Schemas and /ResourceTypes (RFC 7644 §4) answers
    200 without a token or with a bad one."""
    header = BAD_CREDENTIALS[credential]
    result = _send(memory_client, "GET", path, None, header)
    assert result.status == 200, (path, result.status, result.body[:200])


def _all_log_text(records: Iterable[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
    return "\n".join(parts)


class BrokenTenantStore:
    """A tenant whose reads blow up (everything else as the wrapped one): drives the API's
    500 path."""

    def __init__(self, view: Any) -> None:
        self._view = view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)

    def scan(self, kind: Any) -> Any:
        raise RuntimeError("storage exploded")

    def window(self, kind: Any, **_: Any) -> Any:
        raise RuntimeError("storage exploded")

    def get(self, kind: Any, resource_id: str) -> Any:
        raise RuntimeError("storage exploded")


class BrokenStore(MemoryStore):
    """A store whose tenants' reads blow up."""

    def tenant(self, name: str, epoch: int | None = None) -> Any:
        return BrokenTenantStore(super().tenant(name, epoch))


def _secrets() -> list[str]:
    """Everything that must never show: the token, and the near misses (which share all but
    one character with it) as presented."""
    return [TOKEN, WRONG, TOKEN[:-1], TOKEN[1:], TOKEN.upper()]


def _exercise(client: Any) -> list[Result]:
    out: list[Result] = [
        client.post("/Users", {"schemas": [USER_SCHEMA], "userName": "logs@example.org"}),
        client.get("/Users"),
        client.get("/Users", params={"filter": 'userName eq "logs@example.org"'})]
    for header in BAD_CREDENTIALS.values():
        out.append(_send(client, "GET", "/Users", None, header))
        out.append(_send(client, "PATCH", "/Users/x", {"Operations": []}, header))
    return out


def test_no_token_in_any_response_or_log_record(caplog: pytest.LogCaptureFixture,
                                                capfd: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch,
                                                devhost_port: int) -> None:
    """With every logger at DEBUG, good requests, bad credentials, a 500 (broken store) and
    a 503 (no token configured), through the function and over HTTP, never put the token or
    a near miss in any log record, stderr line, response body or header."""
    monkeypatch.setenv("DEVHOST_ACCESS_LOG", "1")
    caplog.set_level(logging.DEBUG)
    results: list[Result] = []
    use_api(make_api(MemoryStore()))
    results += _exercise(FunctionClient())
    http = HttpClient(devhost_port)
    try:
        results += _exercise(http)
        use_api(make_api(BrokenStore()))
        for client in (FunctionClient(), http):
            broken = client.get("/Users")
            assert broken.status == 500 and broken.json["status"] == "500"
            results += [broken, client.get("/Users/x"),
                        _send(client, "GET", "/Users", None, f"Bearer {WRONG}")]
        use_api(build_api(Settings(store="memory"), store=MemoryStore()))
        for client in (FunctionClient(), http):
            unavailable = client.get("/Users")
            assert unavailable.status == 503 and unavailable.header("Retry-After")
            results.append(unavailable)
    finally:
        http.close()
    assert any(r.levelno >= logging.ERROR for r in caplog.records), "the 500 path was not hit"
    captured = capfd.readouterr()
    logged = _all_log_text(caplog.records) + captured.err + captured.out
    for secret in _secrets():
        assert secret not in logged
        for result in results:
            assert secret.encode() not in result.body
            assert all(secret not in v for v in result.headers.values())
    count(f"{SUITE}.log_records_checked", len(caplog.records))
    count(f"{SUITE}.responses_checked", len(results))


def test_no_token_in_key_vault_logs_or_responses(caplog: pytest.LogCaptureFixture) -> None:
    """With the Key Vault token source at DEBUG (loads, unknown tokens, a failing vault),
    no log record and no response holds a token value."""
    caplog.set_level(logging.DEBUG)
    other = "kv-second-token-" + TOKEN[::-1]
    with FakeKeyVault() as vault:
        vault.add_version("scim-bearer-token", other, created=time.time() - 10)
        vault.add_version("scim-bearer-token", TOKEN)
        source = KeyVaultTokenSource(vault.client(), "scim-bearer-token", cache_seconds=0,
                                     min_refresh_interval=0, wait_seconds=2)
        use_api(build_api(Settings(store="memory"), store=MemoryStore(), tokens=source))
        client = FunctionClient()
        results = [client.get("/Users"), client.get("/Users", token=other),
                   client.get("/Users", token=WRONG), client.get("/Users", token=TOKEN[:-1])]
        assert [r.status for r in results] == [200, 200, 401, 401]
        vault.fail_status = 500
        results += [client.get("/Users"), client.get("/Users", token=WRONG)]
        source.close()
    assert caplog.records, "the token source logged nothing at DEBUG"
    logged = _all_log_text(caplog.records)
    for secret in [*_secrets(), other]:
        assert secret not in logged
        for result in results:
            assert secret.encode() not in result.body
    count(f"{SUITE}.log_records_checked", len(caplog.records))


# -- timing ------------------------------------------------------------------------------------


def _fastest_ratio(compare: Callable[[str, list[str]], Any], accepted: str, near: str, far: str,
                  *, rounds: int = 41, batch: int = 200) -> float:
    """Fastest time of ``compare(near)`` over fastest time of ``compare(far)``.

    Rounds interleave the two candidates in random order; each sample times a batch of calls
    so the clock's resolution does not matter. Noise on a shared machine (preemption, other
    processes, a checker running beside the tests) only ever adds time, and under heavy load
    it spoils most samples, in either order, so medians swing; the fastest batch of each is
    the one least disturbed, which is what a token-dependent cost would still show in."""
    samples: dict[str, list[int]] = {near: [], far: []}
    candidates = [near, far]
    for _ in range(rounds):
        random.shuffle(candidates)
        for candidate in candidates:
            started = time.perf_counter_ns()
            for _ in range(batch):
                compare(candidate, [accepted])
            samples[candidate].append(time.perf_counter_ns() - started)
    count(f"{SUITE}.timing_calls", rounds * batch * 2)
    return min(samples[near]) / min(samples[far])


def _leaky_compare(presented: str, accepted: list[str]) -> bool:
    """An early-exit comparison: what the timing check must be able to catch."""
    for candidate in accepted:
        if len(candidate) != len(presented):
            continue
        for a, b in zip(candidate, presented, strict=True):
            if a != b:
                break
        else:
            return True
    return False


LONG_TOKEN = "".join(random.Random(7).choice("abcdefghijklmnopqrstuvwxyz0123456789")
                     for _ in range(4096))
NEAR = LONG_TOKEN[:-1] + _other(LONG_TOKEN[-1])  # shares all but the last character
FAR = _other(LONG_TOKEN[0]) + LONG_TOKEN[1:-1] + _other(LONG_TOKEN[-1])  # shares nothing


def test_timing_harness_detects_a_leaky_comparison() -> None:
    """Control: the same measurement flags an early-exit comparison (ratio far above 2),
    so the constant-time checks below can fail."""
    ratio = _fastest_ratio(_leaky_compare, LONG_TOKEN, NEAR, FAR, rounds=11, batch=5)
    assert ratio > 4.0, ratio


def test_token_comparison_time_does_not_depend_on_the_common_prefix() -> None:
    """Statistical check: comparing a wrong 4,096-character token that shares all but its
    last character with the real one takes as long as one that differs at the first
    character. The fastest of interleaved batches are compared with a generous band (0.5-2.0):
    an early-exit comparison is hundreds of times slower on the near miss (see the control
    test), while machine noise moves the ratio by a few tens of percent at most."""
    assert not constant_time_in(NEAR, [LONG_TOKEN]) and not constant_time_in(FAR, [LONG_TOKEN])
    ratio = _fastest_ratio(constant_time_in, LONG_TOKEN, NEAR, FAR)
    assert 0.5 <= ratio <= 2.0, ratio


def test_authentication_time_does_not_depend_on_the_common_prefix() -> None:
    """Statistical check, end to end through the header parser and the static source:
    'Bearer <near miss>' and 'Bearer <far miss>' are refused in the same fastest time."""
    source = StaticTokenSource(LONG_TOKEN)

    def check(header: str, _accepted: list[str]) -> None:
        try:
            authenticate(header, source)
        except Unauthorized:
            return
        raise AssertionError("a wrong token was accepted")

    ratio = _fastest_ratio(check, LONG_TOKEN, f"Bearer {NEAR}", f"Bearer {FAR}", batch=100)
    assert 0.5 <= ratio <= 2.0, ratio


def test_api_refusal_time_does_not_depend_on_the_common_prefix() -> None:
    """Statistical check through the whole API: a request with a near-miss token is refused
    in the same fastest time as one with a token that shares nothing."""
    # The activity log's writer thread wakes on its own schedule and takes the GIL from
    # whichever batch is running; what it records does not depend on the token, so it is
    # off here to keep its noise out of the medians.
    api = build_api(Settings(store="memory", activity=False), store=MemoryStore(),
                    tokens=StaticTokenSource(LONG_TOKEN))

    def call(header: str, _accepted: list[str]) -> None:
        response = api.handle(Request("GET", "/Users", "https://h/scim/v2",
                                      headers={"Authorization": header}))
        assert response.status == 401

    ratio = _fastest_ratio(call, LONG_TOKEN, f"Bearer {NEAR}", f"Bearer {FAR}", batch=50)
    assert 0.5 <= ratio <= 2.0, ratio
