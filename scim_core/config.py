"""Settings from the environment (Functions app settings are environment variables); their
names are part of the product (docs/architecture.md, "Settings, SCIM errors and discovery")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scim_core.tenants.model import DEFAULT_TENANT

DEFAULT_TABLE_NAME = "scim"
DEFAULT_SECRET_NAME = "scim-bearer-token"


class SettingsError(ValueError):
    """A setting is missing or malformed; raised at start-up, never per request."""


LOCAL_SETTINGS_FILE = "local.settings.json"


def local_settings(root: Path) -> dict[str, str]:
    """The ``Values`` of ``root``/local.settings.json as strings ({} without that file)."""
    path = Path(root) / LOCAL_SETTINGS_FILE
    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    return {str(key): str(value) for key, value in values.items()}


STORE_SETTINGS = ("SCIM_STORE", "SCIM_TABLES_CONNECTION", "SCIM_TABLES_ENDPOINT",
                  "SCIM_TABLE_NAME")
VAULT_SETTINGS = ("SCIM_KEYVAULT_URL", "SCIM_TOKEN_SECRET_NAME")
SETTING_GROUPS = (STORE_SETTINGS, VAULT_SETTINGS)
"""Settings that only mean something together: where the environment sets one of a group,
none of local.settings.json's settings of that group apply."""
AZURE_HOST_MARKERS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME")
"""Set by the Azure Functions host (App Service platform), never by a local run."""


def app_environment(env: Mapping[str, str], root: Path) -> dict[str, str]:
    """The app settings the admin commands act on: ``local_settings(root)`` under ``env``,
    the environment winning, and winning as a whole for the store settings and for the
    vault settings (``SETTING_GROUPS``), so that one deployment's table is never combined
    with another's vault."""
    file = local_settings(root)
    for group in SETTING_GROUPS:
        if any(env.get(name, "").strip() for name in group):
            file = {k: v for k, v in file.items() if k not in group}
    return {**file, **env}


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    store: str = "tables"
    tables_connection: str = field(default="", repr=False)
    tables_endpoint: str = ""
    table_name: str = DEFAULT_TABLE_NAME
    bearer_token: str = field(default="", repr=False)
    keyvault_url: str = ""
    token_secret_name: str = DEFAULT_SECRET_NAME
    token_cache_seconds: int = 60
    tenant_cache_seconds: int = 60
    tenant_cache_size: int = 20_000
    max_body_bytes: int = 1_048_576
    max_operations: int = 1_000
    max_results: int = 1_000
    default_page_size: int = 100
    base_url: str = ""
    tenant: str = DEFAULT_TENANT
    extension_schemas: str = ""
    events_queue: str = ""
    queues_endpoint: str = ""
    events_retention_days: int = 30
    allow_local_secrets: bool = False
    azure_host: str = ""
    """The ``AZURE_HOST_MARKERS`` variable that says this runs in Azure ("" outside)."""
    activity: bool = True
    activity_bodies: bool = True
    activity_retention_days: int = 14
    activity_minutes_retention_days: int = 90

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings ``env`` holds; raises ``SettingsError`` for a malformed one."""
        store = env.get("SCIM_STORE", "tables").strip().lower() or "tables"
        if store not in {"tables", "memory"}:
            raise SettingsError(f"SCIM_STORE must be 'tables' or 'memory', not {store!r}")
        return cls(
            store=store,
            tables_connection=env.get("SCIM_TABLES_CONNECTION", "").strip(),
            tables_endpoint=env.get("SCIM_TABLES_ENDPOINT", "").strip(),
            table_name=env.get("SCIM_TABLE_NAME", "").strip() or DEFAULT_TABLE_NAME,
            bearer_token=env.get("SCIM_BEARER_TOKEN", "").strip(),
            keyvault_url=env.get("SCIM_KEYVAULT_URL", "").strip(),
            token_secret_name=env.get("SCIM_TOKEN_SECRET_NAME", "").strip() or DEFAULT_SECRET_NAME,
            token_cache_seconds=_int(env, "SCIM_TOKEN_CACHE_SECONDS", 60),
            tenant_cache_seconds=_int(env, "SCIM_TENANT_CACHE_SECONDS", 60),
            tenant_cache_size=_int(env, "SCIM_TENANT_CACHE_SIZE", 20_000, minimum=1),
            max_body_bytes=_int(env, "SCIM_MAX_BODY_BYTES", 1_048_576, minimum=1024),
            max_operations=_int(env, "SCIM_MAX_OPERATIONS", 1_000, minimum=1),
            max_results=_int(env, "SCIM_MAX_RESULTS", 1_000, minimum=1),
            default_page_size=_int(env, "SCIM_DEFAULT_PAGE_SIZE", 100, minimum=1),
            base_url=env.get("SCIM_BASE_URL", "").strip().rstrip("/"),
            extension_schemas=env.get("SCIM_EXTENSION_SCHEMAS", "").strip(),
            events_queue=env.get("SCIM_EVENTS_QUEUE", "").strip(),
            queues_endpoint=env.get("SCIM_QUEUES_ENDPOINT", "").strip().rstrip("/"),
            events_retention_days=_int(env, "SCIM_EVENTS_RETENTION_DAYS", 30, minimum=1),
            allow_local_secrets=_flag(env, "SCIM_ALLOW_LOCAL_SECRETS"),
            azure_host=next((n for n in AZURE_HOST_MARKERS if env.get(n, "").strip()), ""),
            activity=_flag(env, "SCIM_ACTIVITY") if env.get("SCIM_ACTIVITY", "").strip()
            else True,
            activity_bodies=_flag(env, "SCIM_ACTIVITY_BODIES")
            if env.get("SCIM_ACTIVITY_BODIES", "").strip() else True,
            activity_retention_days=_int(env, "SCIM_ACTIVITY_RETENTION_DAYS", 14, minimum=1),
            activity_minutes_retention_days=_int(env, "SCIM_ACTIVITY_MINUTES_RETENTION_DAYS",
                                                 90, minimum=1),
        )
