"""The tokens in Key Vault: ``SecretStore`` over an ``azure-keyvault-secrets`` ``SecretClient``,
with Key Vault's failures (sign-in, roles, soft delete) explained in one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from scim_core.auth.keyvault import KeyVaultTokenSource, describe_error, is_secret_disabled
from scim_core.auth.secrets import (
    DeletedSecret,
    NameReserved,
    SecretStore,
    SecretStoreError,
    TokenVersion,
    WriteUnknown,
)

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient, SecretProperties

TAGS = {"created-by": "scim_core.admin"}
"""Tags of every version the admin writes."""


class KeyVaultSecrets:
    """``SecretStore`` in one Key Vault; versions carry the token itself."""

    keeps_values = True

    def __init__(self, client: SecretClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"KeyVaultSecrets({self.location!r})"

    @property
    def location(self) -> str:
        """The vault's URL."""
        return str(self.client.vault_url)

    def versions(self, name: str) -> list[TokenVersion]:
        """Every version's attributes (empty when the secret does not exist)."""
        with self._explained():
            try:
                return [_version(p) for p in self.client.list_properties_of_secret_versions(name)]
            except ResourceNotFoundError:
                return []

    def add(self, name: str, token: str) -> TokenVersion:
        """A new version, sent once: a repeated PUT whose first answer was lost would create
        a second version, so no retry."""
        try:
            created = self.client.set_secret(name, token, content_type="text/plain",
                                             tags=dict(TAGS), retry_total=0)
        except ServiceResponseError as exc:
            raise WriteUnknown(self.explain(exc)) from exc
        except HttpResponseError as exc:
            if exc.status_code == 409:
                raise NameReserved(
                    f"Key Vault keeps the deleted secret {name!r} until its retention period "
                    "ends (soft delete with purge protection)") from exc
            if (exc.status_code or 0) < 500:
                raise SecretStoreError(self.explain(exc)) from exc
            raise WriteUnknown(self.explain(exc)) from exc
        except AzureError as exc:
            raise SecretStoreError(self.explain(exc)) from exc
        return _version(created.properties)

    def disable(self, name: str, version: str) -> None:
        """Disable one version."""
        with self._explained():
            self.client.update_secret_properties(name, version, enabled=False)

    def delete(self, name: str) -> DeletedSecret:
        """Delete the secret; with soft delete the vault keeps it, and its name, until the
        purge date, which is read back for a secret deleted before (a resumed delete)."""
        with self._explained():
            try:
                deleted = self.client.begin_delete_secret(name).result()
            except ResourceNotFoundError:
                return DeletedSecret(False, True, self._purge_date(name))
            except HttpResponseError as exc:
                if exc.status_code != 409:  # 409: deleted before, kept by soft delete
                    raise
                return DeletedSecret(False, True, self._purge_date(name))
        return DeletedSecret(True, deleted.recovery_id is not None,
                             deleted.scheduled_purge_date)

    def read(self, name: str) -> str | None:
        """The newest version's value, None when missing, disabled or blank."""
        with self._explained():
            try:
                value = self.client.get_secret(name).value
            except ResourceNotFoundError:
                return None
            except HttpResponseError as exc:
                if is_secret_disabled(exc):
                    return None
                raise
        return (value or "").strip() or None

    def token_source(self, name: str, *, cache_seconds: float) -> KeyVaultTokenSource:
        """The newest two valid versions of ``name``, read through this store's client."""
        return KeyVaultTokenSource(self.client, name, cache_seconds=cache_seconds)

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def explain(self, exc: AzureError) -> str:
        """One line for a failure of this vault."""
        return explain_vault_error(exc, self.location)

    def _purge_date(self, name: str) -> datetime | None:
        try:
            return self.client.get_deleted_secret(name).scheduled_purge_date
        except AzureError:
            return None

    @contextmanager
    def _explained(self) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            raise SecretStoreError(self.explain(exc)) from exc


def as_secret_store(secrets: SecretStore | SecretClient) -> SecretStore:
    """``secrets`` as a ``SecretStore``: a Key Vault ``SecretClient`` is wrapped."""
    if isinstance(secrets, SecretStore):
        return secrets
    return KeyVaultSecrets(secrets)


def _version(props: SecretProperties) -> TokenVersion:
    return TokenVersion(str(props.version or ""), props.created_on, props.enabled is True,
                        props.not_before, props.expires_on, str(props.id or ""))


def explain_vault_error(exc: AzureError, vault_url: str) -> str:
    """One line for a Key Vault failure; Key Vault error text never carries secret values."""
    if isinstance(exc, ClientAuthenticationError):
        if exc.status_code is None:
            detail = (exc.message or "").strip().splitlines()
            reason = detail[0][:300] if detail else type(exc).__name__
            return (f"could not get an Azure access token ({reason}); sign in with 'az login' "
                    "or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET")
        return (f"Key Vault at {vault_url} refused the sign-in ({describe_error(exc)}); is the "
                "vault in the tenant you signed in to? Try 'az login --tenant <tenant id>'")
    if isinstance(exc, HttpResponseError):
        if exc.status_code == 403:
            return (f"Key Vault at {vault_url} denied access ({describe_error(exc)}); your "
                    "identity needs the 'Key Vault Secrets Officer' role on the vault")
        if exc.status_code == 404:
            return (f"not found at {vault_url} ({describe_error(exc)}); check --vault-url or "
                    "SCIM_KEYVAULT_URL")
        return f"Key Vault at {vault_url} failed ({describe_error(exc)}); try again later"
    if isinstance(exc, ServiceRequestError):
        return (f"cannot reach Key Vault at {vault_url} ({describe_error(exc)}); check "
                "--vault-url or SCIM_KEYVAULT_URL (does the vault exist?) and your network")
    return f"Key Vault at {vault_url} did not answer ({describe_error(exc)}); try again later"
