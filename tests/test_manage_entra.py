"""Entra ID access tokens as management credentials, validated in the app against a local
HTTPS fake of the tenant's OpenID metadata and signing keys (no test reaches Microsoft)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from scim_core import Request, Settings
from scim_core.manage import ManageApi, ManageSettings
from scim_core.manage.entra import EntraTokens
from scim_core.store import MemoryStore
from scim_core.store.secrets import local_secrets
from tests.entrafake import AUDIENCE, FakeEntra
from tests.support import TOKEN

BASE = "https://vendor.example/manage/v1"


@pytest.fixture
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as fake:
        fake.add_key("k1")
        yield fake


def _api(entra: FakeEntra) -> ManageApi:
    store = MemoryStore()
    manage = ManageSettings(entra_issuer=entra.issuer, entra_audience=AUDIENCE)
    tokens = EntraTokens(manage, ssl_context=entra.client_context())
    return ManageApi(store, local_secrets(store), Settings(store="memory", bearer_token=TOKEN),
                     manage, entra=tokens)


def _get(api: ManageApi, token: str, path: str = "/tenants") -> Any:
    return api.handle(Request("GET", path, BASE, {}, {"Authorization": f"Bearer {token}"}))


def test_a_valid_token_with_the_manage_role_is_accepted(entra: FakeEntra) -> None:
    """A token signed by a published key, for the audience, with Manage.All, lists tenants;
    the keys are read once and then served from the cache."""
    api = _api(entra)
    assert _get(api, entra.sign("k1")).status == 200
    assert _get(api, entra.sign("k1")).status == 200
    assert entra.counts["/keys"] == 1


@pytest.mark.parametrize("change", [
    {"audience": "api://another-app"}, {"issuer": "https://login.example/other/v2.0"},
    {"lifetime": -3600}, {"nbf": 4102444800}])
def test_wrong_audience_issuer_or_time_get_401(entra: FakeEntra, change: dict[str, Any]
                                               ) -> None:
    """A token for another audience or issuer, expired, or not yet valid gets 401 with a
    Bearer challenge."""
    response = _get(_api(entra), entra.sign("k1", **change))
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_signed_by_an_unknown_key_gets_401(entra: FakeEntra) -> None:
    """A token whose kid is not published (a forger's key) gets 401; many such tokens
    cause one re-read of the keys, not one each."""
    entra.add_key("forged", publish=False)
    api = _api(entra)
    assert [_get(api, entra.sign("forged")).status for _ in range(5)] == [401] * 5
    assert entra.counts["/keys"] == 2


def test_a_rotated_signing_key_is_picked_up_on_its_first_token(entra: FakeEntra) -> None:
    """Keys are re-read when a token names a kid not yet known (Entra's key rollover)."""
    api = _api(entra)
    assert _get(api, entra.sign("k1")).status == 200
    entra.add_key("k2")
    assert _get(api, entra.sign("k2")).status == 200
    assert entra.counts["/keys"] == 2


def test_roles_map_to_scopes(entra: FakeEntra) -> None:
    """Read.All reads the directory but cannot manage tenants (403); no role at all gets
    403 everywhere."""
    api = _api(entra)
    reader = entra.sign("k1", roles=["Read.All"])
    assert _get(api, reader).status == 403
    assert _get(api, reader, "/tenants/default/users").status == 404  # memory store
    nobody = entra.sign("k1", roles=[])
    assert _get(api, nobody, "/tenants/default/users").status == 403
    assert json.loads(_get(api, nobody).body)["type"].endswith("forbidden")


def test_an_entra_token_is_not_a_scim_token(entra: FakeEntra) -> None:
    """The SCIM API refuses a valid management JWT (401)."""
    from scim_core import build_api

    store = MemoryStore()
    scim = build_api(Settings(store="memory", bearer_token=TOKEN), store=store)
    response = scim.handle(Request("GET", "/Users", "https://h/scim/v2", {},
                                   {"Authorization": f"Bearer {entra.sign('k1')}"}))
    assert response.status == 401


def test_the_composition_root_turns_entra_on_from_the_settings(
        entra: FakeEntra, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_manage_api reads SCIM_MANAGE_ENTRA_ISSUER/_AUDIENCE and then accepts tokens of
    that issuer (the fake's CA trusted through SSL_CERT_FILE); without them, none."""
    from scim_core.app import build_manage_api

    ca = tmp_path / "ca.pem"
    entra.ca.cert_pem.write_to_path(str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    settings = Settings(store="memory", bearer_token=TOKEN)
    env = {"SCIM_MANAGE_ENTRA_ISSUER": entra.issuer, "SCIM_MANAGE_ENTRA_AUDIENCE": AUDIENCE}
    api = build_manage_api(settings, store=MemoryStore(), env=env)
    assert _get(api, entra.sign("k1")).status == 200
    keys_only = build_manage_api(settings, store=MemoryStore(), env={})
    assert _get(keys_only, entra.sign("k1")).status == 401
