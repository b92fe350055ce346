"""The management API through the Functions trigger on the dev host: onboarding a
customer over HTTP end to end, the admin command's keys, and the problem media type."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scim_core import admin
from tests.azurite import Azurite
from tests.manage_host import ManageHost, serve_manage
from tests.support import USER_SCHEMA


@pytest.fixture(scope="module")
def host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManageHost]:
    yield from serve_manage(azurite, tmp_path_factory.mktemp("manage"))


def _scim(url: str, token: str, body: object) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_onboard_a_customer_over_http(host: ManageHost) -> None:
    """Create a tenant over /manage/v1, provision a user to its Tenant URL with its token,
    then read the user and its event over /manage/v1."""
    status, _, created = host.call("POST", "/manage/v1/tenants",
                                   {"id": "fabrikam", "name": "Fabrikam"},
                                   headers={"Idempotency-Key": "onboard-fabrikam"})
    assert status == 201, created
    assert created["tenantUrl"] == f"http://127.0.0.1:{host.port}/tenants/fabrikam/scim/v2"
    assert _scim(created["tenantUrl"] + "/Users", created["token"],
                 {"schemas": [USER_SCHEMA], "userName": "ada@fabrikam.example"}) == 201
    status, _, users = host.call("GET", "/manage/v1/tenants/fabrikam/users")
    assert status == 200
    assert [u["userName"] for u in users["items"]] == ["ada@fabrikam.example"]
    status, _, events = host.call("GET", "/manage/v1/tenants/fabrikam/events?wait=5")
    assert status == 200 and events["events"][0]["type"] == "user.created"


def test_problems_are_served_as_problem_json_with_a_challenge(host: ManageHost) -> None:
    """A request without a credential gets 401, application/problem+json and a Bearer
    WWW-Authenticate challenge from the real trigger."""
    status, headers, body = host.call("GET", "/manage/v1/tenants", key="nope")
    assert status == 401
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["type"] == "urn:scim-manage:problem:unauthorized"


def test_admin_command_lists_and_revokes_keys_without_values(host: ManageHost,
                                                              tmp_path: Path) -> None:
    """`api-key list` shows ids and scopes, never a value; `api-key revoke` makes the
    dev host refuse the key (after its cache interval, here a fresh process)."""
    out = io.StringIO()
    assert admin.main(["api-key", "create", "--scope", "read", "--tenant", "fabrikam"],
                      env=host.env, root=tmp_path, out=out) == 0
    key_id = out.getvalue().split()[2]
    value = out.getvalue().splitlines()[1].strip()
    listing = io.StringIO()
    assert admin.main(["api-key", "list"], env=host.env, root=tmp_path, out=listing) == 0
    assert key_id in listing.getvalue() and value not in listing.getvalue()
    assert host.call("GET", "/manage/v1/tenants/fabrikam/users", key=value)[0] in (200, 404)
    assert host.call("GET", "/manage/v1/tenants", key=value)[0] == 403
    assert admin.main(["api-key", "revoke", key_id], env=host.env, root=tmp_path,
                      out=io.StringIO()) == 0
    assert admin.main(["api-key", "revoke", "aaaaaaaaaaaaaaaa"], env=host.env,
                      root=tmp_path, out=io.StringIO()) == 1


@pytest.mark.parametrize(("url", "configured", "expected"), [
    ("http://127.0.0.1:7071/manage/v1/tenants", "", "http://127.0.0.1:7071/manage/v1"),
    ("https://h.example/api/manage/v1/x", "", "https://h.example/api/manage/v1"),
    ("http://10.0.0.4/manage/v1/tenants", "https://scim.contoso.com/scim/v2",
     "https://scim.contoso.com/manage/v1"),
])
def test_manage_base_url_follows_the_request_or_scim_base_url(url: str, configured: str,
                                                               expected: str) -> None:
    """The management root is cut from the request URL (keeping a routePrefix), or put on
    the site of SCIM_BASE_URL when that is set (a custom domain behind a proxy)."""
    import azure.functions as func

    import function_app

    request = func.HttpRequest("GET", url, headers={}, params={}, route_params={}, body=b"")
    assert function_app.manage_base_url(request, configured) == expected
