"""Building the API from settings: the store, the tenants' token sources and the registry."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from scim_core.api import ScimApi
from scim_core.auth import StaticTokenSource, TokenSource
from scim_core.auth.tenant_tokens import TenantTokens
from scim_core.config import Settings
from scim_core.errors import ServiceUnavailable
from scim_core.schema import Registry
from scim_core.store import MemoryStore, Store

log = logging.getLogger("scim_core")


class NoTokenConfigured:
    """Fails closed when neither Key Vault nor a static token is configured."""

    def accepts(self, presented: str) -> bool:
        """Never decides: every protected request gets 503."""
        raise ServiceUnavailable(
            "No bearer token is configured: set SCIM_KEYVAULT_URL (or SCIM_BEARER_TOKEN for "
            "local runs).", retry_after=60)


def build_store(settings: Settings) -> Store:
    """The store ``settings`` name; for tables, with the batch codec installed first."""
    if settings.store == "memory":
        return MemoryStore()
    from scim_core.store.tables import table_store
    from scim_core.store.tables.sdk_batches import install_batch_codec

    install_batch_codec()
    store: Store = table_store(settings)
    return store


def build_tokens(settings: Settings) -> TokenSource:
    """Key Vault when configured, else the static token, else a source that fails closed."""
    if settings.keyvault_url:
        from scim_core.auth.keyvault import keyvault_token_source

        return keyvault_token_source(settings)
    if settings.bearer_token:
        return StaticTokenSource(settings.bearer_token)
    log.error("No bearer token configured; every protected request will get 503.")
    return NoTokenConfigured()


def build_secrets(settings: Settings) -> Any | None:
    """The Key Vault client holding the other tenants' tokens (``SCIM_KEYVAULT_URL``, read
    with the function app's managed identity); None when no vault is configured."""
    if not settings.keyvault_url:
        return None
    from scim_core.auth.credentials import production_credential
    from scim_core.auth.keyvault import secret_client

    return secret_client(settings.keyvault_url, production_credential())


def tenant_tokens(settings: Settings, default: TokenSource, secrets: Any | None
                  ) -> TenantTokens:
    """Every tenant's token source: ``default`` for the default tenant, the versions of
    ``scim-token-<id>`` in ``secrets`` (a Key Vault ``SecretClient``) for any other."""
    make = None
    if secrets is not None:
        from scim_core.auth.keyvault import KeyVaultTokenSource

        def make(secret: str) -> TokenSource:
            return KeyVaultTokenSource(secrets, secret,
                                       cache_seconds=settings.token_cache_seconds)

    return TenantTokens(default, make, default_secret=settings.token_secret_name,
                        size=settings.tenant_cache_size)


def build_api(settings: Settings, *, store: Store | None = None,
              tokens: TokenSource | None = None, secrets: Any | None = None) -> ScimApi:
    """The API for ``settings``; a store, a default tenant's token source or a secret
    client given here is used as it is."""
    default = tokens if tokens is not None else build_tokens(settings)
    return ScimApi(store if store is not None else build_store(settings),
                   Registry.default(settings.extension_schemas),
                   tenant_tokens(settings, default,
                                 secrets if secrets is not None else build_secrets(settings)),
                   settings)


def api_from_environment(env: Mapping[str, str] | None = None) -> ScimApi:
    """The API built from the process environment (or ``env``)."""
    return build_api(Settings.from_env(os.environ if env is None else env))
