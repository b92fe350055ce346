"""Builds the ``TableClient`` from settings, with retries and timeouts sized for SCIM
requests (docs/architecture.md, "The table client")."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azure.core.pipeline.policies import RetryMode
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient

from scim_core.config import Settings, SettingsError
from scim_core.retry import MAX_TRANSPORT_WAIT, TRANSPORT

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

MAX_IN_REQUEST_WAIT = MAX_TRANSPORT_WAIT

PRODUCTION_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": TRANSPORT.retries,
    "retry_connect": 2,
    "retry_read": 1,
    "retry_status": 1,
    "retry_backoff_factor": TRANSPORT.base,
    "retry_backoff_max": TRANSPORT.cap,
    "retry_mode": RetryMode.Exponential,
    "timeout": TRANSPORT.seconds,
    "connection_timeout": 3,
    "read_timeout": 10,
}
"""Keyword options for the Tables client; ``client_kwargs`` given to the factory win."""

CA_BUNDLES = ("requests_ca_bundle", "curl_ca_bundle")
REQUESTS_ENVIRONMENT = ("http_proxy", "https_proxy", "all_proxy", *CA_BUNDLES, "netrc")
"""The variables (any letter case) that make ``requests`` read its settings from the
environment."""

_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


class BoundedWaitTransport(RequestsTransport):  # type: ignore[misc]  # untyped under mypy
    """The requests transport, but no retry wait inside a request is longer than
    ``max_wait`` seconds, whatever Retry-After storage sent."""

    def __init__(self, *, max_wait: float = MAX_IN_REQUEST_WAIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_wait = max_wait

    def sleep(self, duration: float) -> None:
        """Sleep ``duration`` seconds, but at most ``max_wait``."""
        super().sleep(min(duration, self.max_wait))


def uses_environment_settings(environ: Mapping[str, str] | None = None, *,
                              scheme: str = "https") -> bool:
    """Whether the HTTP session should honour proxy, CA bundle and netrc settings: only
    when one of the variables ``requests`` reads is set, and for a CA bundle only when the
    endpoint's ``scheme`` is https (plain http never verifies a certificate)."""
    names = {name.lower() for name, value in (os.environ if environ is None else environ).items()
             if value}
    relevant = [name for name in REQUESTS_ENVIRONMENT
                if scheme.lower() == "https" or name not in CA_BUNDLES]
    return any(name in names for name in relevant)


def endpoint_scheme(settings: Settings) -> str:
    """The scheme of the table endpoint ``settings`` name: ``https`` unless the connection
    string or endpoint says ``http`` (as Azurite's do)."""
    if not settings.tables_connection:
        return "https" if not settings.tables_endpoint.lower().startswith("http:") else "http"
    if _is_development_storage(settings.tables_connection):
        return "http"
    fields = dict(part.split("=", 1) for part in settings.tables_connection.split(";")
                  if "=" in part)
    keys = {key.strip().lower(): value.strip() for key, value in fields.items()}
    if "tableendpoint" in keys:
        return "http" if keys["tableendpoint"].lower().startswith("http:") else "https"
    return "http" if keys.get("defaultendpointsprotocol", "").lower() == "http" else "https"


def _is_development_storage(connection: str) -> bool:
    return connection.strip().rstrip(";").replace(" ", "").lower() == "usedevelopmentstorage=true"


def needs_credential(settings: Settings) -> bool:
    """Whether ``table_client(settings)`` reaches the table by endpoint, with a credential."""
    return bool(settings.tables_endpoint) and not settings.tables_connection


def table_client(settings: Settings, *, credential: TokenCredential | None,
                 **client_kwargs: Any) -> TableClient:
    """A client for ``settings.table_name``: from the connection string when one is set
    (Azurite's, or ``UseDevelopmentStorage=true``, which the SDK expands to Azurite's
    well-known account on 127.0.0.1:10002), else from the endpoint with ``credential``
    (the composition root's; see ``needs_credential``)."""
    if not _TABLE_NAME.fullmatch(settings.table_name):
        raise SettingsError("SCIM_TABLE_NAME must be 3-63 letters or digits, starting with a "
                            f"letter, not {settings.table_name!r}")
    options = {**PRODUCTION_CLIENT_OPTIONS, **client_kwargs}
    if "transport" not in options:
        options["transport"] = BoundedWaitTransport(
            connection_timeout=options.pop("connection_timeout"),
            read_timeout=options.pop("read_timeout"),
            use_env_settings=uses_environment_settings(scheme=endpoint_scheme(settings)),
        )
    if settings.tables_connection:
        connection = settings.tables_connection
        if _is_development_storage(connection):
            connection = "UseDevelopmentStorage=true"
        return TableClient.from_connection_string(connection, settings.table_name, **options)
    if settings.tables_endpoint:
        if credential is None:
            raise SettingsError("SCIM_TABLES_ENDPOINT is reached with an Entra credential, and "
                                "none was given: build the store through scim_core.app, or "
                                "set SCIM_TABLES_CONNECTION")
        return TableClient(settings.tables_endpoint, settings.table_name, credential=credential,
                           **options)
    raise SettingsError("Set SCIM_TABLES_CONNECTION or SCIM_TABLES_ENDPOINT to use the tables "
                        "store.")
