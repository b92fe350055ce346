"""The composition root: builds the stores, secret stores, credentials and token sources from
settings, and the APIs and the tenant admin over them (the one place that does)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from scim_core.activity.build import build_recorder
from scim_core.activity.recorder import Recorder
from scim_core.api import ScimApi
from scim_core.auth import StaticTokenSource, TokenSource
from scim_core.auth.credentials import admin_credential, production_credential
from scim_core.auth.keyvault_secrets import as_secret_store
from scim_core.auth.secrets import SecretStore
from scim_core.auth.source import version_of
from scim_core.auth.tenant_tokens import TenantTokens
from scim_core.config import Settings, SettingsError
from scim_core.errors import ServiceUnavailable
from scim_core.operations.tenants import TenantAdmin, TenantAdminError
from scim_core.schema import Registry
from scim_core.store import MemoryStore, Store

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
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


Credential = Callable[[], "TokenCredential"]
"""Gives the credential the Azure clients share, made on first use (``shared``)."""


def shared(make: Credential) -> Credential:
    """``make``, called once, on first use: every client an API or admin builds by endpoint
    shares one credential, and settings that reach nothing by endpoint make none."""
    made: list[TokenCredential] = []

    def credential() -> TokenCredential:
        if not made:
            made.append(make())
        return made[0]

    return credential


def build_store(settings: Settings, *, credential: Credential = production_credential
                ) -> Store:
    """The store ``settings`` name; for tables, with the batch codec installed first. With
    ``SCIM_EVENTS_QUEUE``, every committed write nudges that queue. A table and a queue
    reached by endpoint share one ``credential()`` (the function app's managed identity)."""
    credential = shared(credential)
    nudge = None
    if settings.events_queue:
        from scim_core.events.nudge import needs_credential, queue_nudge

        nudge = queue_nudge(settings,
                            credential=credential() if needs_credential(settings) else None)
    if settings.store == "memory":
        return MemoryStore(on_commit=nudge)
    from scim_core.store.tables import table_store
    from scim_core.store.tables.client import needs_credential as tables_need_credential
    from scim_core.store.tables.sdk_batches import install_batch_codec

    install_batch_codec()
    store: Store = table_store(
        settings, credential=credential() if tables_need_credential(settings) else None,
        on_commit=nudge)
    return store


def build_tokens(settings: Settings, secrets: SecretStore | None = None, *,
                 credential: Credential = production_credential) -> TokenSource:
    """The default tenant's tokens: Key Vault when configured (through ``secrets``, else a
    client of its own with ``credential()``), else the static token
    (``SCIM_BEARER_TOKEN``), else the versions of ``SCIM_TOKEN_SECRET_NAME`` in the local
    ``secrets`` (``build_secrets``), else a source that fails closed."""
    if settings.keyvault_url:
        if secrets is not None:
            return secrets.token_source(settings.token_secret_name,
                                        cache_seconds=settings.token_cache_seconds)
        from scim_core.auth.keyvault import keyvault_token_source

        return keyvault_token_source(settings, credential=credential())
    if settings.bearer_token:
        return StaticTokenSource(settings.bearer_token)
    if secrets is not None:
        return LocalDefaultToken(secrets, settings.token_secret_name,
                                 cache_seconds=settings.token_cache_seconds)
    log.error("No bearer token configured; every protected request will get 503.")
    return NoTokenConfigured()


def build_secrets(settings: Settings, store: Store, *,
                  credential: Credential = production_credential) -> SecretStore:
    """Where the tenants' tokens are kept: the Key Vault of ``SCIM_KEYVAULT_URL`` (with
    ``credential()``, the function app's managed identity), or, when no vault is configured,
    the local secrets of ``store`` (salted hashes in its table's ``$secrets`` partition, or
    in memory beside a memory store), which a Functions host in Azure refuses unless
    ``SCIM_ALLOW_LOCAL_SECRETS=true``."""
    if not settings.keyvault_url:
        from scim_core.auth.local_secrets import check_local_secrets_allowed
        from scim_core.store.secrets import local_secrets

        check_local_secrets_allowed(settings)
        return local_secrets(store)
    from scim_core.auth.keyvault import secret_client
    from scim_core.auth.keyvault_secrets import KeyVaultSecrets

    return KeyVaultSecrets(secret_client(settings.keyvault_url, credential()))


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
    it is. What it builds by endpoint shares one managed-identity credential."""
    logging.getLogger(SDK_HTTP_LOGGER).setLevel(logging.WARNING)
    credential = shared(production_credential)
    store = store if store is not None else build_store(settings, credential=credential)
    kept = (as_secret_store(secrets) if secrets is not None
            else build_secrets(settings, store, credential=credential))
    default = tokens if tokens is not None else build_tokens(settings, kept,
                                                             credential=credential)
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

    credential = shared(production_credential)
    store = store if store is not None else build_store(settings, credential=credential)
    secrets = (secrets if secrets is not None
               else build_secrets(settings, store, credential=credential))
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


class NotConfigured:
    """Stands in for the store (or the local secrets) that the settings cannot give, so that
    admin commands needing neither still run (the default tenant's token in Key Vault, its
    Tenant URL); any use raises ``TenantAdminError`` saying why."""

    location = "the store's local secrets"
    keeps_values = False

    def __init__(self, why: str) -> None:
        self._why = why

    def __getattr__(self, name: str) -> Any:
        raise TenantAdminError(self._why)


def build_admin(settings: Settings, *, credential: TokenCredential | None = None,
                store: Store | None = None, secrets: SecretStore | SecretClient | None = None,
                client_kwargs: Mapping[str, Any] | None = None,
                tenant_url_secret: str | None = None, local_base_url: str | None = None,
                clock: Callable[[], float] = time.time) -> TenantAdmin:
    """The tenant admin for the deployment ``settings`` describe (the admin command, a
    vendor's console): the table store, reached with ``credential`` by endpoint; the Key
    Vault of ``SCIM_KEYVAULT_URL`` with ``credential`` (``client_kwargs`` for its client),
    else the store's local secrets. A store or secret store given here is used as it is and
    left open; what is built here is closed with the admin. ``credential`` defaults to
    ``admin_credential()`` (``az login`` or a service principal), made only when needed;
    inside the function app pass ``production_credential()``. A store the settings cannot
    give (``SCIM_STORE=memory``: another process's memory) fails only when used."""
    closing: list[Callable[[], None]] = []
    signed_in = shared(admin_credential) if credential is None else (lambda: credential)

    def close_built() -> None:
        for close in reversed(closing):
            close()

    try:
        kept_store = store if store is not None else _admin_store(settings, signed_in, closing)
        kept: SecretStore
        if secrets is not None:
            kept = as_secret_store(secrets)
        elif settings.keyvault_url:
            from scim_core.auth.keyvault import secret_client
            from scim_core.auth.keyvault_secrets import KeyVaultSecrets

            vault = KeyVaultSecrets(secret_client(settings.keyvault_url, signed_in(),
                                                  **dict(client_kwargs or {})))
            closing.append(vault.close)
            kept = vault
        elif isinstance(kept_store, NotConfigured):
            kept = cast(SecretStore, kept_store)
        else:
            from scim_core.auth.local_secrets import check_local_secrets_allowed
            from scim_core.store.secrets import local_secrets

            check_local_secrets_allowed(settings)
            kept = local_secrets(kept_store)
    except SettingsError as exc:
        close_built()
        raise TenantAdminError(str(exc)) from None
    except BaseException:
        close_built()
        raise
    options: dict[str, Any] = {}
    if tenant_url_secret is not None:
        options["tenant_url_secret"] = tenant_url_secret
    if local_base_url is not None:
        options["local_base_url"] = local_base_url
    return TenantAdmin(kept_store, kept, settings, clock=clock, closing=closing, **options)


def _admin_store(settings: Settings, credential: Credential,
                 closing: list[Callable[[], None]]) -> Store:
    if settings.store == "memory":
        return cast(Store, NotConfigured(
            "SCIM_STORE=memory keeps tenants in the app's own process, out of reach of "
            "another one: pass that store to build_admin, or use SCIM_STORE=tables"))
    from scim_core.store.tables import table_store
    from scim_core.store.tables.client import needs_credential
    from scim_core.store.tables.sdk_batches import install_batch_codec

    install_batch_codec()
    try:
        built = table_store(settings,
                            credential=credential() if needs_credential(settings) else None)
    except SettingsError as exc:
        return cast(Store, NotConfigured(str(exc)))
    closing.append(built.close)
    return built
