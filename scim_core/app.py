"""Building the API from settings: the store, the tenants' token sources and the registry."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from scim_core.activity.build import build_recorder
from scim_core.activity.recorder import Recorder
from scim_core.api import ScimApi
from scim_core.auth import StaticTokenSource, TokenSource
from scim_core.auth.keyvault_secrets import as_secret_store
from scim_core.auth.secrets import SecretStore
from scim_core.auth.source import version_of
from scim_core.auth.tenant_tokens import TenantTokens
from scim_core.config import Settings
from scim_core.errors import ServiceUnavailable
from scim_core.schema import Registry
from scim_core.store import MemoryStore, Store

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

    from scim_core.manage import ManageApi
    from scim_core.setup.page import SetupPage

log = logging.getLogger("scim_core")
SDK_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
"""azure-core's request logger: at INFO it logs every storage URL, whose row keys hold
userNames and emails, and the Functions worker forwards INFO to Application Insights."""


class NoTokenConfigured:
    """Fails closed when neither Key Vault nor a static token is configured."""

    def accepts(self, presented: str) -> bool:
        """Never decides: every protected request gets 503."""
        raise ServiceUnavailable(
            "No bearer token is configured: set SCIM_KEYVAULT_URL (or SCIM_BEARER_TOKEN for "
            "local runs).", retry_after=60)


class LocalDefaultToken:
    """The default tenant's token kept in the local secrets (no Key Vault, no
    ``SCIM_BEARER_TOKEN``): the newest two valid versions of its secret, as from Key Vault.
    Until that secret has a version at all it fails closed like ``NoTokenConfigured``."""

    def __init__(self, secrets: SecretStore, secret_name: str, *, cache_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._secrets = secrets
        self._secret_name = secret_name
        self._source = secrets.token_source(secret_name, cache_seconds=cache_seconds)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._created = False
        self._checked_at: float | None = None

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is a valid version's value; 503 while there is none."""
        if self._source.accepts(presented):
            return True
        if not self._exists():
            raise ServiceUnavailable(
                "No bearer token is configured: set SCIM_KEYVAULT_URL or SCIM_BEARER_TOKEN, "
                "or create one with: python -m scim_core.admin rotate-token", retry_after=60)
        return False

    def version_of(self, presented: str) -> str | None:
        """The version ``presented`` matched (see ``LocalTokenSource.version_of``)."""
        return version_of(self._source, presented)

    def _exists(self) -> bool:
        now = self._clock()
        if self._created or (self._checked_at is not None
                             and 0 <= now - self._checked_at < self._cache_seconds):
            return self._created
        self._checked_at = now
        try:
            self._created = bool(self._secrets.versions(self._secret_name))
        except Exception:  # storage failing: the token source decides (it raises or refuses)
            return True
        return self._created


def build_store(settings: Settings) -> Store:
    """The store ``settings`` name; for tables, with the batch codec installed first. With
    ``SCIM_EVENTS_QUEUE``, every committed write nudges that queue."""
    nudge = None
    if settings.events_queue:
        from scim_core.events.nudge import queue_nudge

        nudge = queue_nudge(settings)
    if settings.store == "memory":
        return MemoryStore(on_commit=nudge)
    from scim_core.store.tables import table_store
    from scim_core.store.tables.sdk_batches import install_batch_codec

    install_batch_codec()
    store: Store = table_store(settings, on_commit=nudge)
    return store


def build_tokens(settings: Settings, secrets: SecretStore | None = None) -> TokenSource:
    """The default tenant's tokens: Key Vault when configured, else the static token
    (``SCIM_BEARER_TOKEN``), else the versions of ``SCIM_TOKEN_SECRET_NAME`` in the local
    ``secrets`` (``build_secrets``), else a source that fails closed."""
    if settings.keyvault_url:
        if secrets is not None:
            return secrets.token_source(settings.token_secret_name,
                                        cache_seconds=settings.token_cache_seconds)
        from scim_core.auth.keyvault import keyvault_token_source

        return keyvault_token_source(settings)
    if settings.bearer_token:
        return StaticTokenSource(settings.bearer_token)
    if secrets is not None:
        return LocalDefaultToken(secrets, settings.token_secret_name,
                                 cache_seconds=settings.token_cache_seconds)
    log.error("No bearer token configured; every protected request will get 503.")
    return NoTokenConfigured()


def build_secrets(settings: Settings, store: Store) -> SecretStore:
    """Where the tenants' tokens are kept: the Key Vault of ``SCIM_KEYVAULT_URL`` (with the
    function app's managed identity), or, when no vault is configured, the local secrets
    of ``store`` (salted hashes in its table's ``$secrets`` partition, or in memory beside a
    memory store), which a Functions host in Azure refuses unless
    ``SCIM_ALLOW_LOCAL_SECRETS=true``."""
    if not settings.keyvault_url:
        from scim_core.auth.local_secrets import check_local_secrets_allowed
        from scim_core.store.secrets import local_secrets

        check_local_secrets_allowed(settings)
        return local_secrets(store)
    from scim_core.auth.credentials import production_credential
    from scim_core.auth.keyvault import secret_client
    from scim_core.auth.keyvault_secrets import KeyVaultSecrets

    return KeyVaultSecrets(secret_client(settings.keyvault_url, production_credential()))


def tenant_tokens(settings: Settings, default: TokenSource, secrets: SecretStore | None
                  ) -> TenantTokens:
    """Every tenant's token source: ``default`` for the default tenant, the versions of
    ``scim-token-<id>`` in ``secrets`` for any other."""
    make = None
    if secrets is not None:
        store = secrets

        def make(secret: str) -> TokenSource:
            return store.token_source(secret, cache_seconds=settings.token_cache_seconds)

    return TenantTokens(default, make, default_secret=settings.token_secret_name,
                        size=settings.tenant_cache_size)


def build_api(settings: Settings, *, store: Store | None = None,
              tokens: TokenSource | None = None,
              secrets: SecretStore | SecretClient | None = None,
              recorder: Recorder | None = None) -> ScimApi:
    """The API for ``settings``; a store, a default tenant's token source, a secret
    store (or a Key Vault ``SecretClient``) or an activity recorder given here is used as
    it is."""
    logging.getLogger(SDK_HTTP_LOGGER).setLevel(logging.WARNING)
    store = store if store is not None else build_store(settings)
    kept = as_secret_store(secrets) if secrets is not None else build_secrets(settings, store)
    default = tokens if tokens is not None else build_tokens(settings, kept)
    registry = Registry.default(settings.extension_schemas)
    if recorder is None:
        recorder = build_recorder(settings, store, activity_endpoints(registry))
    return ScimApi(store, registry, tenant_tokens(settings, default, kept), settings,
                   recorder=recorder)


def activity_endpoints(registry: Registry) -> frozenset[str]:
    """The lower-cased resource endpoints (``users``) the activity log names routes by."""
    return frozenset(rt.endpoint.strip("/").lower() for rt in registry.resource_types)


def build_manage_api(settings: Settings, *, store: Store | None = None,
                     secrets: SecretStore | None = None,
                     env: Mapping[str, str] | None = None,
                     recorder: Recorder | None = None) -> ManageApi:
    """The management API (``/manage/v1``) for ``settings`` and its ``SCIM_MANAGE_*``
    settings in ``env``; give it the SCIM API's store and recorder so both share one
    store and one activity log."""
    from scim_core.manage import ManageApi, ManageSettings

    store = store if store is not None else build_store(settings)
    secrets = secrets if secrets is not None else build_secrets(settings, store)
    manage = ManageSettings.from_env(os.environ if env is None else env)
    entra = None
    if manage.entra_enabled:
        from scim_core.manage.entra import EntraTokens

        entra = EntraTokens(manage)
    return ManageApi(store, secrets, settings, manage, entra=entra, recorder=recorder)


def build_setup_page(manage: ManageApi, env: Mapping[str, str] | None = None) -> SetupPage:
    """The setup page (``/setup``) over ``manage``, with the ``SCIM_SETUP_*`` settings of
    ``env``, reading the activity log of ``manage``'s store (unless ``SCIM_ACTIVITY=false``)."""
    from scim_core.activity.build import activity_log
    from scim_core.setup.page import SetupPage
    from scim_core.setup.settings import SetupSettings

    activity = activity_log(manage.settings, manage.store) if manage.settings.activity else None
    return SetupPage(manage, SetupSettings.from_env(os.environ if env is None else env),
                     activity=activity)


def api_from_environment(env: Mapping[str, str] | None = None) -> ScimApi:
    """The API built from the process environment (or ``env``)."""
    return build_api(Settings.from_env(os.environ if env is None else env))
