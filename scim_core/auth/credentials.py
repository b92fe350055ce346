"""The one place that builds Azure credentials: managed identity in Azure, ``az login`` for
admins (docs/architecture.md, "Azure credentials")."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def production_credential(client_id: str | None = None) -> TokenCredential:
    """The function app's managed identity.

    ``ManagedIdentityCredential`` rather than ``DefaultAzureCredential``: in Azure Functions the
    identity is known (system-assigned, or user-assigned when ``client_id`` is given), and the
    default chain would first try environment, workload-identity and developer credentials,
    which can silently pick up the wrong principal and only add latency and confusing errors.
    """
    from azure.identity import ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return ManagedIdentityCredential()


def admin_credential() -> TokenCredential:
    """The operator running ``python -m scim_core.admin``: a service principal from the
    ``AZURE_*`` environment variables (CI), else the ``az login`` session."""
    from azure.identity import AzureCliCredential, ChainedTokenCredential, EnvironmentCredential

    return ChainedTokenCredential(EnvironmentCredential(), AzureCliCredential())
