"""The setup page's core over a memory store: links open one session, once; refusals are
pages; state changes need the CSRF token and the Origin; rate limits; one tenant only."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scim_core import admin as admin_command
from scim_core.activity import ActivityRecorder
from scim_core.activity.build import activity_log
from scim_core.app import build_api, build_manage_api, build_setup_page
from scim_core.config import Settings
from scim_core.http import Request, Response
from scim_core.manage.rows import side_rows
from scim_core.manage.setup_links import LinkRefused, SetupLinks
from scim_core.setup.page import CSP, SetupPage
from scim_core.setup.settings import SetupSettings, logo_from_data_url
from scim_core.store import MemoryStore
from tests.support import USER_SCHEMA

SITE = "http://127.0.0.1:7071"
BASE = SITE + "/setup"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _page(env: dict[str, str] | None = None, clock: Clock | None = None) -> SetupPage:
    manage = build_manage_api(Settings.from_env({"SCIM_STORE": "memory"}), env={})
    manage.admin().create("Contoso", tenant_id="contoso")
    manage.admin().create("Fabrikam", tenant_id="fabrikam")
    page = build_setup_page(manage, env=env or {})
    if clock is not None:
        page = SetupPage(manage, page.settings, clock=clock)
    return page


def _get(page: SetupPage, path: str, cookie: str = "",
         query: dict[str, str] | None = None) -> Response:
    return page.handle(Request("GET", path, BASE, query=query or {},
                               headers={"Cookie": cookie} if cookie else {}))


def _open(page: SetupPage, tenant: str = "contoso") -> tuple[str, str]:
    """A session cookie ("name=value") for ``tenant`` and its CSRF token."""
    _, value = page.links.create(tenant)
    opened = _get(page, "/" + value)
    cookie = opened.headers["Set-Cookie"].split(";")[0]
    state = _get(page, "/api/state", cookie).document()
    return cookie, state["csrf"]


def _post(page: SetupPage, path: str, cookie: str, csrf: str | None,
          origin: str | None = SITE, body: bytes = b"{}") -> Response:
    headers = {"Cookie": cookie, "Content-Type": "application/json"}
    if csrf is not None:
        headers["X-Setup-CSRF"] = csrf
    if origin is not None:
        headers["Origin"] = origin
    return page.handle(Request("POST", path, BASE, headers=headers, body=body))


def test_a_link_opens_one_session_with_a_scoped_cookie_and_a_redirect() -> None:
    """The first visit answers 303 to /setup/ with an HttpOnly, Secure, SameSite=Lax cookie
    on Path=/setup for about an hour; the second visit gets the 'already used' page."""
    page = _page()
    _, value = page.links.create("contoso")
    first = _get(page, "/" + value)
    assert first.status == 303 and first.headers["Location"] == "/setup/"
    cookie = first.headers["Set-Cookie"]
    assert re.fullmatch(r"scim_setup=[A-Za-z0-9_-]{43}; Path=/setup; Max-Age=(3599|3600); "
                        r"HttpOnly; Secure; SameSite=Lax", cookie), cookie
    assert first.headers["Cache-Control"] == "no-store"
    again = _get(page, "/" + value)
    assert again.status == 410 and b"already used" in again.body
    assert again.headers["Content-Type"].startswith("text/html")


def test_links_and_sessions_are_kept_only_as_hashes() -> None:
    """No side row holds the link's or the session cookie's value."""
    page = _page()
    _, value = page.links.create("contoso")
    cookie = _get(page, "/" + value).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    rows = side_rows(page.manage.store)
    stored = repr([list(rows.scan(p)) for p in ("$setuplinks", "$setupused",
                                                 "$setupsessions")])
    assert value not in stored and value.split("_", 2)[2] not in stored  # the 43-char secret
    assert cookie not in stored


def test_expired_revoked_and_unknown_links_get_clear_pages() -> None:
    """An expired link gets 410 'expired', a revoked one 410 'revoked', a made-up one 404
    'not valid'; each is an HTML page with the CSP, and opens no session."""
    clock = Clock()
    page = _page(clock=clock)
    _, expired = page.links.create("contoso", seconds=60)
    link, revoked = page.links.create("contoso")
    page.links.revoke(link.id)
    clock.now += 61
    for path, status, words in (("/" + expired, 410, b"expired"),
                                ("/" + revoked, 410, b"revoked"),
                                ("/ssl_aaaaaaaaaaaaaaaa_" + "x" * 43, 404, b"not valid")):
        answer = _get(page, path)
        assert answer.status == status and words in answer.body, path
        assert answer.headers["Content-Security-Policy"] == CSP
        assert "Set-Cookie" not in answer.headers


def test_a_session_expires() -> None:
    """After SCIM_SETUP_SESSION_SECONDS the cookie opens neither the page nor its API."""
    clock = Clock()
    page = _page({"SCIM_SETUP_SESSION_SECONDS": "30"}, clock)
    cookie, _ = _open(page)
    assert _get(page, "/", cookie).status == 200
    clock.now += 31
    assert _get(page, "/", cookie).status == 401
    assert _get(page, "/api/state", cookie).status == 401


def test_ended_sessions_are_removed_when_a_link_is_next_used() -> None:
    """Opening a session deletes the rows of sessions that have ended."""
    clock = Clock()
    page = _page({"SCIM_SETUP_SESSION_SECONDS": "30"}, clock)
    _open(page)
    clock.now += 31
    _open(page)
    assert len(list(side_rows(page.manage.store).scan("$setupsessions"))) == 1


def test_no_link_cookie_or_token_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Creating, using, reusing and revoking a link and generating a token log the link's
    id, never the link, the session cookie or the token."""
    page = _page()
    with caplog.at_level(logging.DEBUG):
        link, value = page.links.create("contoso")
        cookie = _get(page, "/" + value).headers["Set-Cookie"].split(";")[0]
        _get(page, "/" + value)
        csrf = _get(page, "/api/state", cookie).document()["csrf"]
        token = _post(page, "/api/tokens", cookie, csrf).document()["token"]
        page.links.revoke(link.id)
    text = caplog.text
    assert link.id in text and "used" in text and "revoked" in text
    for secret in (value, value.split("_")[-1], cookie.split("=", 1)[1], csrf, token):
        assert secret not in text


def test_revoking_a_link_ends_its_session() -> None:
    """A session opened by a link ends when the vendor revokes that link."""
    page = _page()
    link, value = page.links.create("contoso")
    cookie = _get(page, "/" + value).headers["Set-Cookie"].split(";")[0]
    assert _get(page, "/api/state", cookie).status == 200
    page.links.revoke(link.id)
    assert _get(page, "/api/state", cookie).status == 401


def test_state_changes_need_the_csrf_token_and_this_origin() -> None:
    """Generating a token without the header, with a wrong token, from another Origin or
    with no Origin is refused (403) and rotates nothing; with both it answers 201, no-store."""
    page = _page()
    cookie, csrf = _open(page)
    before = len(_get(page, "/api/state", cookie).document()["tokens"])
    for token, origin in ((None, SITE), ("x" * 43, SITE), (csrf, "https://evil.example"),
                          (csrf, None)):
        assert _post(page, "/api/tokens", cookie, token, origin).status == 403
    assert len(_get(page, "/api/state", cookie).document()["tokens"]) == before
    made = _post(page, "/api/tokens", cookie, csrf)
    assert made.status == 201 and made.headers["Cache-Control"] == "no-store"
    assert made.document()["previousValid"] is True
    assert len(_get(page, "/api/state", cookie).document()["tokens"]) == before + 1


def test_a_session_sees_and_changes_only_its_tenant() -> None:
    """A contoso session's state is contoso's, and its new token rotates contoso's secret,
    not fabrikam's."""
    page = _page()
    cookie, csrf = _open(page, "contoso")
    state = _get(page, "/api/state", cookie).document()
    assert state["tenant"]["id"] == "contoso"
    assert state["tenantUrl"] == SITE + "/tenants/contoso/scim/v2"
    admin = page.manage.admin()
    assert _post(page, "/api/tokens", cookie, csrf).status == 201
    assert len(admin.tokens.versions(admin.tokens.secret_name("fabrikam"))) == 1
    assert len(admin.tokens.versions(admin.tokens.secret_name("contoso"))) == 2


def test_token_generation_and_link_exchange_are_rate_limited() -> None:
    """Past the per-minute budgets, generation answers 429 and the exchange a 429 page."""
    page = _page({"SCIM_SETUP_TOKENS_PER_MINUTE": "2", "SCIM_SETUP_EXCHANGES_PER_MINUTE": "3"})
    cookie, csrf = _open(page)
    answers = [_post(page, "/api/tokens", cookie, csrf).status for _ in range(3)]
    assert answers == [201, 429, 429] or answers == [201, 201, 429]
    statuses = [_get(page, "/ssl_aaaaaaaaaaaaaaaa_" + "y" * 43).status for _ in range(3)]
    assert statuses[-1] == 429


def test_the_toggle_is_refused_unless_the_vendor_allows_it() -> None:
    """POST /api/provisioning is 403 by default; with SCIM_SETUP_ALLOW_TOGGLE=true it
    disables and enables the tenant."""
    page = _page()
    cookie, csrf = _open(page)
    assert _post(page, "/api/provisioning", cookie, csrf, body=b'{"enabled":false}'
                 ).status == 403
    page = _page({"SCIM_SETUP_ALLOW_TOGGLE": "true"})
    cookie, csrf = _open(page)
    off = _post(page, "/api/provisioning", cookie, csrf, body=b'{"enabled":false}')
    assert off.status == 200 and off.document() == {"enabled": False}
    assert page.manage.admin().show("contoso").state == "disabled"


def test_page_and_assets_are_served_under_the_csp_without_inline_script() -> None:
    """The page names only same-site scripts and styles (no inline ones, no other host)
    and carries the CSP and no-store; the vendor's name is escaped into it."""
    page = _page({"SCIM_SETUP_VENDOR_NAME": "Acme <Co>", "SCIM_SETUP_ACCENT_COLOR": "#aa3300"})
    cookie, _ = _open(page)
    answer = _get(page, "/", cookie)
    html = answer.body.decode()
    assert answer.headers["Content-Security-Policy"] == CSP
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Acme &lt;Co&gt;" in html and "<Co>" not in html
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/setup/static/setup.js" defer>']
    assert "<style" not in html and " style=" not in html and "http" not in html
    assert _get(page, "/theme.css").body == b":root{--accent:#aa3300;}\n"
    for asset in ("setup.js", "setup.css", "logo.svg"):
        assert _get(page, "/static/" + asset).status == 200
    assert _get(page, "/static/../page.py").status == 404


def test_a_logo_is_only_a_data_url_served_by_the_app() -> None:
    """A base64 image data: URL becomes /setup/logo; a URL on another host is ignored."""
    assert logo_from_data_url("data:image/png;base64,iVBORw0KGgo=") == (
        "image/png", b"\x89PNG\r\n\x1a\n")
    assert logo_from_data_url("https://cdn.example/logo.png") is None
    settings = SetupSettings.from_env({"SCIM_SETUP_LOGO_URL": "https://cdn.example/x.png"})
    assert settings.logo is None


def test_link_expiry_is_bounded() -> None:
    """A link lasts 60 seconds to 7 days; a longer one is refused."""
    links = SetupLinks(side_rows(MemoryStore()))
    with pytest.raises(ValueError):
        links.create("contoso", seconds=7 * 24 * 3600 + 1)
    with pytest.raises(LinkRefused):
        links.exchange("ssl_nope", 60)


def _admin(store: MemoryStore, root: Path, *args: str) -> str:
    """Run the admin command on ``store`` (memory settings); what it printed."""
    out = io.StringIO()
    assert admin_command.main(list(args), env={"SCIM_STORE": "memory"}, root=root, out=out,
                              store=store) == 0
    return out.getvalue()


def test_admin_command_creates_and_revokes_a_link(tmp_path: Path) -> None:
    """setup-link create prints a /setup/ URL once; revoke marks it revoked."""
    store = MemoryStore()
    _admin(store, tmp_path, "tenant", "create", "--name", "C", "--id", "contoso")
    url = _admin(store, tmp_path, "setup-link", "create", "--tenant", "contoso").splitlines()[1]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/setup/ssl_[a-z2-7]{16}_[\w-]{43}", url)
    link_id = url.split("ssl_")[1][:16]
    _admin(store, tmp_path, "setup-link", "revoke", link_id)
    found = SetupLinks(side_rows(store)).get(link_id)
    assert found is not None and found.revoked


def test_management_api_creates_lists_and_revokes_links() -> None:
    """POST /manage/v1/tenants/{id}/setup-links answers 201 with a /setup/ URL (no-store),
    defaulting to 24 hours; more than 7 days is 400; a tenant-bound key of another tenant
    gets 403; the list holds no value; DELETE revokes."""
    page = _page()
    manage = page.manage
    _, key = manage.keys.create("manage")
    _, other = manage.keys.create("manage", tenant="fabrikam")

    def call(method: str, path: str, body: bytes = b"", credential: str = key) -> Response:
        answer: Response = manage.handle(Request(method, path, SITE + "/manage/v1", headers={
            "Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
            body=body))
        return answer

    made = call("POST", "/tenants/contoso/setup-links", b"{}")
    assert made.status == 201 and made.headers["Cache-Control"] == "no-store"
    link = made.document()
    assert link["url"].startswith(SITE + "/setup/ssl_") and link["tenant"] == "contoso"
    hours = (_epoch(link["expires"]) - _epoch(link["created"])) / 3600
    assert hours == 24
    assert call("POST", "/tenants/contoso/setup-links",
                b'{"expiresInSeconds": 604801}').status == 400
    assert call("POST", "/tenants/contoso/setup-links", b"{}", other).status == 403
    assert call("POST", "/tenants/nobody/setup-links", b"{}").status == 404
    listed = call("GET", "/tenants/contoso/setup-links")
    assert listed.status == 200 and link["url"].split("/")[-1] not in listed.body.decode()
    assert call("DELETE", f"/tenants/fabrikam/setup-links/{link['id']}").status == 404
    revoked = call("DELETE", f"/tenants/contoso/setup-links/{link['id']}")
    assert revoked.status == 200 and revoked.document()["revoked"]
    assert _get(page, "/" + link["url"].split("/")[-1]).status == 410


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_sign_out_ends_the_session_and_clears_the_cookie() -> None:
    """POST /api/signout (with the CSRF token) deletes the session: the cookie is cleared
    and no longer opens the page's API."""
    page = _page()
    cookie, csrf = _open(page)
    out = _post(page, "/api/signout", cookie, csrf)
    assert out.status == 200 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert _get(page, "/api/state", cookie).status == 401


def test_activity_shows_health_hours_and_failures_searchable_by_name() -> None:
    """After a success and a 409 at the tenant's SCIM URL, /api/activity shows Entra
    connected, both requests in the current hour by outcome, and the failure with its
    reason, found by the userName and not by another name; the token's version shows its
    last use."""
    settings = Settings.from_env({"SCIM_STORE": "memory"})
    store = MemoryStore()
    api = build_api(settings, store=store)
    manage = build_manage_api(settings, store=store, env={})
    _, token = manage.admin().create("Contoso", tenant_id="contoso")
    page = build_setup_page(manage, env={})
    body = json.dumps({"schemas": [USER_SCHEMA], "userName": "ada@contoso.example"}).encode()
    for expected in (201, 409):
        answer = api.handle(Request("POST", "/Users", SITE + "/tenants/contoso/scim/v2",
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/scim+json"},
                                    body=body, tenant="contoso"))
        assert answer.status == expected
    recorder = api.recorder
    assert isinstance(recorder, ActivityRecorder) and recorder.flush() is True
    cookie, _ = _open(page)
    doc = _get(page, "/api/activity", cookie).document()
    assert doc["enabled"] and doc["health"]["seen"] and doc["health"]["lastSuccess"]
    (hour,) = doc["hours"]
    assert (hour["requests"], hour["2xx"], hour["4xx"]) == (2, 1, 1)
    (failure,) = doc["failures"]
    assert failure["status"] == 409 and failure["userName"] == "ada@contoso.example"
    assert failure["scimType"] == "uniqueness" and "body" not in failure
    named = _get(page, "/api/activity", cookie, {"name": "ADA@contoso.example"})
    assert len(named.document()["failures"]) == 1
    assert _get(page, "/api/activity", cookie, {"name": "bob"}).document()["failures"] == []
    (version,) = _get(page, "/api/state", cookie).document()["tokens"]
    assert version["lastUsed"]  # the token Entra used, from the activity health
    quiet = build_setup_page(build_manage_api(Settings.from_env(
        {"SCIM_STORE": "memory", "SCIM_ACTIVITY": "false"}), env={}), env={})
    assert quiet.activity is None


def test_creating_using_and_revoking_a_link_are_in_the_tenants_activity(tmp_path: Path
                                                                        ) -> None:
    """setup-link create, the link's use and setup-link revoke are entries of the tenant's
    activity log (never the link itself), and leave its connection health waiting for its
    SCIM client."""
    store = MemoryStore()
    _admin(store, tmp_path, "tenant", "create", "--name", "C", "--id", "contoso")
    printed = _admin(store, tmp_path, "setup-link", "create", "--tenant", "contoso")
    value = printed.splitlines()[1].split("/setup/")[1]
    settings = Settings.from_env({"SCIM_STORE": "memory"})
    api = build_api(settings, store=store)
    page = build_setup_page(build_manage_api(settings, store=store, env={},
                                             recorder=api.recorder), env={})
    assert _get(page, "/" + value).status == 303
    recorder = api.recorder
    assert isinstance(recorder, ActivityRecorder) and recorder.flush() is True
    link_id = value.split("_")[1]
    _admin(store, tmp_path, "setup-link", "revoke", link_id)
    log = activity_log(settings, store)
    entries = log.search("contoso", limit=10).entries
    assert sorted(e.operation for e in entries) == [
        "DELETE /admin/setup-link", "GET /setup/{link}", "POST /admin/setup-link"]
    assert value not in json.dumps([e.document() for e in entries])
    assert log.health("contoso")["seen"] is False
