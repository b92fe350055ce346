"""The setup page end to end in Debian's Chromium (Selenium, /usr/bin/chromium, no browser
download) against the dev host on Azurite: link, copy, token, SCIM request, retire, reuse,
session expiry, keyboard focus, axe-core and both window sizes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.azurite import Azurite
from tests.manage_host import ManageHost, serve_manage
from tests.support import USER_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = os.environ.get("SCIM_SETUP_SCREENSHOTS", "")
"""A folder to save the page's screenshots into (docs/images when refreshing the docs)."""
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")

webdriver = pytest.importorskip("selenium.webdriver")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        raise RuntimeError("CI runs the browser tests: install chromium and chromium-driver "
                           "(make browser)")
    pytest.skip("Debian's chromium and chromium-driver are not installed (make browser)",
                allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402


@pytest.fixture(scope="module")
def host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManageHost]:
    yield from serve_manage(azurite, tmp_path_factory.mktemp("setup"),
                            {"SCIM_TOKEN_CACHE_SECONDS": "1",
                             "SCIM_SETUP_VENDOR_NAME": "Contoso HR"})


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(1280, 800)
    try:
        yield driver
    finally:
        driver.quit()


def _until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _tenant_with_link(host: ManageHost, tenant: str) -> tuple[str, str]:
    """A new tenant's first token and a setup link to it, over /manage/v1."""
    status, _, created = host.call("POST", "/manage/v1/tenants", {"id": tenant,
                                                                  "name": tenant.title()})
    assert status == 201, created
    status, headers, link = host.call("POST", f"/manage/v1/tenants/{tenant}/setup-links", {})
    assert status == 201 and headers["cache-control"] == "no-store", link
    return created["token"], link["url"]


def _scim_status(url: str, token: str, user: str) -> int:
    request = urllib.request.Request(url + "/Users", json.dumps(
        {"schemas": [USER_SCHEMA], "userName": user}).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def _text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _live(driver: WebDriver, element_id: str) -> str:
    """The text of an aria-live region (hidden ones included)."""
    return str(driver.find_element(By.ID, element_id).get_attribute("textContent") or "")


def _axe(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (injected by the
    driver, which the page's CSP does not govern)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document).then(function (r) { done(r.violations); });")
    return [{"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
            for v in result if v["impact"] in ("serious", "critical")]


def _screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page (beyond the window's height) as a PNG."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                 "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def _fits(driver: WebDriver) -> bool:
    return bool(driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth;"))


def test_the_whole_setup_flow_in_chromium(host: ManageHost, browser: WebDriver) -> None:
    """Open a link (it leaves the address bar; the cookie is HttpOnly, Secure, Lax), skip
    to the content by keyboard, copy the Tenant URL (clipboard, then the fallback selecting
    it), generate a token by keyboard and provision with it, see the requests in the health,
    the chart and the searchable failures, retire the old token (refused afterwards), pass
    axe-core at both sizes, and find the link used."""
    first_token, url = _tenant_with_link(host, "contoso")
    site = f"http://127.0.0.1:{host.port}"
    browser.get(url)
    _until(lambda: browser.find_element(By.ID, "credentials").is_displayed(), "the page")
    assert browser.current_url == site + "/setup/"
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/setup" and url.split("/")[-1] not in json.dumps(cookie)
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.text == "Skip to content"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    _until(lambda: browser.switch_to.active_element.get_attribute("id") == "main",
           "the skip link moving focus to the main content")
    tenant_url = browser.find_element(By.ID, "tenant-url").get_attribute("value")
    assert tenant_url == site + "/tenants/contoso/scim/v2"
    assert _text(browser, "users") == "0" and "Contoso HR" in browser.title
    _until(lambda: "Nothing provisioned yet" in _text(browser, "activity-empty"),
           "the activity's empty state")
    assert "Waiting for Entra's first call" in _text(browser, "health-summary")

    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": site, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    browser.find_element(By.CSS_SELECTOR, 'button[data-copy="tenant-url"]').click()
    _until(lambda: "Copied" in _live(browser, "copy-status"), "the copied message")
    pasted = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, function (e) { done('error ' + e); });")
    assert pasted == tenant_url
    browser.execute_script("Object.defineProperty(navigator, 'clipboard', "
                           "{value: undefined, configurable: true});")
    browser.find_element(By.CSS_SELECTOR, 'button[data-copy="tenant-url"]').click()
    selected = _until(lambda: browser.execute_script(
        "var e = document.activeElement; return e.id === 'tenant-url' && "
        "e.selectionStart === 0 && e.selectionEnd === e.value.length;"),
        "the fallback selecting the Tenant URL")
    assert selected

    for width, height, name in ((1280, 800, "desktop"), (390, 844, "phone")):
        browser.set_window_size(width, height)
        assert _fits(browser), f"the page scrolls sideways at {width}x{height}"
        assert _axe(browser) == [], name
    browser.set_window_size(1280, 800)

    generate = browser.find_element(By.ID, "generate")
    generate.send_keys(Keys.ENTER)
    token_box = _until(lambda: browser.find_element(By.ID, "token") if browser.find_element(
        By.ID, "token").get_attribute("value") else None, "the new token")
    new_token = token_box.get_attribute("value")
    assert browser.switch_to.active_element == token_box
    assert "keeps working until you retire" in _text(browser, "overlap")
    assert _until(lambda: "shown once" in _live(browser, "token-status"),
                  "the aria-live message")
    assert _axe(browser) == []
    assert _scim_status(tenant_url, new_token, "ada@contoso.example") == 201
    assert _scim_status(tenant_url, first_token, "bob@contoso.example") == 201
    assert _scim_status(tenant_url, new_token, "ada@contoso.example") == 409

    def failure_shown() -> bool:
        browser.find_element(By.ID, "refresh").click()
        time.sleep(1)
        return "ada@contoso.example" in _text(browser, "failures")

    _until(failure_shown, "the 409 in the recent failures", timeout=60)
    assert "uniqueness" in _text(browser, "failures")
    assert "Connected" in _text(browser, "health-summary")
    assert "3 requests in the last 3 days: 2 succeeded, 1 refused" in _text(
        browser, "chart-summary")
    search = browser.find_element(By.ID, "search-name")
    search.send_keys("nobody@contoso.example", Keys.ENTER)
    _until(lambda: "No failures naming" in _live(browser, "failures-empty"), "the search")
    assert _text(browser, "failures") == ""
    assert _axe(browser) == []
    search.clear()

    browser.refresh()
    _until(lambda: _text(browser, "users") == "2", "the user count")
    _until(lambda: "provisioned 2 users and 0 groups" in _text(browser, "activity-empty"),
           "the provisioned counts")
    if SCREENSHOTS:
        _until(lambda: "3 requests" in _text(browser, "chart-summary"), "the chart")
        for width, height, name in ((1280, 800, "desktop"), (390, 844, "phone")):
            browser.set_window_size(width, height)
            _screenshot(browser, Path(SCREENSHOTS) / f"setup-page-{name}.png")
        browser.set_window_size(1280, 800)
    assert browser.find_element(By.ID, "token").get_attribute("value") == ""
    assert len(browser.find_elements(By.CSS_SELECTOR, "#versions tr")) == 2
    browser.find_element(By.ID, "retire").click()
    _until(lambda: "retired" in _live(browser, "token-status"), "the retirement")
    _until(lambda: _scim_status(tenant_url, first_token, "eve@contoso.example") == 401,
           "the old token refused", timeout=10)
    assert _scim_status(tenant_url, new_token, "carol@contoso.example") == 201

    browser.get(url)
    _until(lambda: "already used" in browser.find_element(By.TAG_NAME, "h1").text,
           "the reused link's page")
    assert _axe(browser) == []


def test_an_expired_session_and_a_revoked_link_in_chromium(
        azurite: Azurite, tmp_path: Path, browser: WebDriver) -> None:
    """With a two-second session, an action after it ends says so and a reload shows the
    'session has ended' page; a link revoked before use shows the 'revoked' page."""
    for found in serve_manage(azurite, tmp_path, {"SCIM_SETUP_SESSION_SECONDS": "2"}):
        _, url = _tenant_with_link(found, "fabrikam")
        browser.get(url)
        _until(lambda: browser.find_element(By.ID, "credentials").is_displayed(), "the page")
        time.sleep(2.5)
        browser.find_element(By.ID, "generate").click()
        _until(lambda: "session has ended" in _text(browser, "problem"), "the expiry notice")
        browser.refresh()
        _until(lambda: "session has ended" in browser.find_element(By.TAG_NAME, "h1").text,
               "the expired session's page")
        status, _, link = found.call("POST", "/manage/v1/tenants/fabrikam/setup-links", {})
        assert status == 201
        status, _, revoked = found.call(
            "DELETE", f"/manage/v1/tenants/fabrikam/setup-links/{link['id']}")
        assert status == 200 and revoked["revoked"]
        browser.get(link["url"])
        _until(lambda: "revoked" in browser.find_element(By.TAG_NAME, "h1").text,
               "the revoked link's page")


def test_chromium_is_debians(browser: WebDriver) -> None:
    """The driven browser is the system Chromium, not a downloaded build."""
    assert shutil.which("chromium") == CHROMIUM
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert browser.capabilities["browserVersion"] in version
