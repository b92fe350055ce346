"""Storage request URLs (row keys hold userNames and emails) stay out of the app's logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import function_app
from scim_core.app import SDK_HTTP_LOGGER
from tests.azurite import Azurite, unique_table_name
from tests.support import TOKEN, USER_SCHEMA, FunctionClient, use_api

USER_NAME = "Grace.Hopper@Example.COM"


class Captured(logging.Handler):
    """Every record that reaches the root logger, as a Functions worker forwards them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def urls(self) -> list[str]:
        """The SDK's request lines logged at INFO or above that name the user."""
        return [r.getMessage() for r in self.records
                if r.name == SDK_HTTP_LOGGER and r.levelno >= logging.INFO
                and "grace.hopper" in r.getMessage().lower()]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> Iterator[Captured]:
    """The app built from settings as function_app.get_api() does, on an Azurite table,
    with the root logger at DEBUG and a handler catching everything."""
    for name, value in {"SCIM_STORE": "tables", "SCIM_TABLES_CONNECTION": azurite.connection_string,
                        "SCIM_TABLE_NAME": unique_table_name(), "SCIM_BEARER_TOKEN": TOKEN}.items():
        monkeypatch.setenv(name, value)
    for name in ("SCIM_KEYVAULT_URL", "SCIM_EVENTS_QUEUE", "SCIM_TABLES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    sdk, root = logging.getLogger(SDK_HTTP_LOGGER), logging.getLogger()
    levels = sdk.level, root.level
    sdk.setLevel(logging.NOTSET)
    root.setLevel(logging.DEBUG)
    handler = Captured()
    root.addHandler(handler)
    function_app.reset_api(None)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        sdk.setLevel(levels[0])
        root.setLevel(levels[1])
        use_api(None)


def create_user() -> None:
    result = FunctionClient().post("/Users", {"schemas": [USER_SCHEMA], "userName": USER_NAME})
    assert result.status == 201, result.body


def test_building_the_app_puts_the_sdk_request_logger_at_warning(captured: Captured) -> None:
    """After function_app.get_api() builds the app, azure-core's HTTP logging policy logger
    is at WARNING even with the root logger at DEBUG."""
    assert logging.getLogger(SDK_HTTP_LOGGER).getEffectiveLevel() == logging.DEBUG
    function_app.get_api()
    assert logging.getLogger(SDK_HTTP_LOGGER).getEffectiveLevel() == logging.WARNING


def test_a_user_written_through_the_app_leaves_no_storage_url_in_the_logs(
        captured: Captured) -> None:
    """Creating a user through the function app on Table Storage logs no request URL at
    INFO; the same request with the logger back at NOTSET does (the handler would see it)."""
    function_app.get_api()
    create_user()
    assert captured.urls() == []
    assert [r for r in captured.records if r.name == SDK_HTTP_LOGGER] == []

    logging.getLogger(SDK_HTTP_LOGGER).setLevel(logging.NOTSET)
    FunctionClient().get("/Users", params={"filter": f'userName eq "{USER_NAME}"'})
    assert captured.urls() != []
