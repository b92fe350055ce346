"""Shared fixtures: clients over the real Functions types and the dev host, on both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scim_core import ScimApi, Settings, build_api
from scim_core.auth import StaticTokenSource
from scim_core.store import MemoryStore, Store
from tests.kvfake import FakeClock, forbid_ambient_credentials
from tests.support import TOKEN, FunctionClient, HttpClient, use_api

pytest_plugins = ["tests.azurite"] if (Path(__file__).parent / "azurite.py").exists() else []

STORES = ["memory", "tables"]


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


@pytest.fixture
def client(any_store: Store) -> FunctionClient:
    """Calls the registered Azure Function, backed by each store in turn."""
    use_api(make_api(any_store))
    return FunctionClient()


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
