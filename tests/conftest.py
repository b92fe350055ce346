"""Shared fixtures: clients over the real Functions types and the dev host, on both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scim_core import ScimApi, Settings, build_api
from scim_core.auth import StaticTokenSource
from scim_core.store import MemoryStore, Store
from tests.kvfake import FakeClock, FakeKeyVault, forbid_ambient_credentials
from tests.support import (
    TOKEN,
    FunctionClient,
    HttpClient,
    register_tenant,
    tenant_api,
    use_api,
)

pytest_plugins = ["tests.azurite"] if (Path(__file__).parent / "azurite.py").exists() else []

STORES = ["memory", "tables"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the ``slow`` tests first: with pytest-xdist handing out tests one at a time
    (``make test``), the longest ones then overlap the rest instead of ending the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test fails if anything builds a managed-identity or default credential, which
    would probe the instance metadata address: tests inject fake credentials."""
    forbid_ambient_credentials(monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    """A settable clock for token caches and secret expiry."""
    return FakeClock()


def make_api(store: Store, **overrides: object) -> ScimApi:
    settings = Settings(store="memory", bearer_token=TOKEN, **overrides)  # type: ignore[arg-type]
    return build_api(settings, store=store, tokens=StaticTokenSource(TOKEN))


@pytest.fixture(params=STORES)
def any_store(request: pytest.FixtureRequest) -> Store:
    """Each store in turn: the in-memory one and the Table Storage one on Azurite."""
    if request.param == "memory":
        return MemoryStore()
    store: Store = request.getfixturevalue("table_store")
    return store


SCIM_ROOTS = ["default", "tenant"]
"""Where a module with ``ON_TENANT_URLS = True`` runs its ``client`` tests: /scim/v2 and
the Tenant URL of a registered tenant."""
URL_TENANT = "entra-tenant"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each ``client`` test of a module that sets ``ON_TENANT_URLS`` on both roots."""
    if "client" in metafunc.fixturenames and getattr(metafunc.module, "ON_TENANT_URLS", False):
        metafunc.parametrize("client", SCIM_ROOTS, indirect=True)


@pytest.fixture(scope="session")
def tenant_vault() -> Iterator[FakeKeyVault]:
    """One Key Vault fake for the session, holding the tokens of ``client``'s tenant."""
    with FakeKeyVault() as vault:
        yield vault


@pytest.fixture
def client(any_store: Store, request: pytest.FixtureRequest) -> FunctionClient:
    """Calls the registered Azure Function, backed by each store in turn, on /scim/v2, or
    (parametrized "tenant") on the Tenant URL of a registered tenant with its own token
    from a Key Vault fake."""
    if getattr(request, "param", "default") == "default":
        use_api(make_api(any_store))
        return FunctionClient()
    vault: FakeKeyVault = request.getfixturevalue("tenant_vault")
    token = register_tenant(any_store, vault, URL_TENANT)
    use_api(tenant_api(any_store, vault))
    return FunctionClient(URL_TENANT, token)


@pytest.fixture
def memory_client() -> FunctionClient:
    """Calls the registered Azure Function, backed by the in-memory store."""
    use_api(make_api(MemoryStore()))
    return FunctionClient()


@pytest.fixture(scope="session")
def devhost_port() -> Iterator[int]:
    """A dev host serving function_app on a free loopback port for the whole session."""
    import devhost

    server = devhost.DevHostServer(("127.0.0.1", 0), devhost.load_routes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_client(devhost_port: int) -> Iterator[HttpClient]:
    """HTTP through the dev host, backed by a fresh in-memory store."""
    use_api(make_api(MemoryStore()))
    client = HttpClient(devhost_port)
    yield client
    client.close()
