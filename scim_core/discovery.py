"""The discovery documents (RFC 7644 §4), generated from the registry and the settings
(docs/architecture.md, "Settings, SCIM errors and discovery")."""

from __future__ import annotations

from typing import Any

from scim_core.config import Settings
from scim_core.errors import NotFound
from scim_core.schema import Registry

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def list_response(resources: list[dict[str, Any]], *, total: int | None = None,
                  start_index: int = 1) -> dict[str, Any]:
    """A ListResponse (RFC 7644 §3.4.2) holding ``resources``."""
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources) if total is None else total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def service_provider_config(settings: Settings, base_url: str) -> dict[str, Any]:
    """The /ServiceProviderConfig document, from the settings."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        # RFC 7643 §5 allows no other top-level limits; bulk.maxPayloadSize carries the
        # body limit, which every request obeys (bulk itself is not offered).
        "bulk": {"supported": False, "maxOperations": 0,
                 "maxPayloadSize": settings.max_body_bytes},
        "filter": {"supported": True, "maxResults": settings.max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": settings.default_page_size,
            "maxPageSize": settings.max_results,
            "cursorTimeout": 3600,
        },
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A long-lived bearer token (the Secret Token in Entra), kept "
                               "in Azure Key Vault and rotated with scim_core.admin.",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                        "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_types(registry: Registry, base_url: str) -> list[dict[str, Any]]:
    """Every /ResourceTypes document."""
    return [rt.to_dict(f"{base_url}/ResourceTypes/{rt.name}") for rt in registry.resource_types]


def resource_type(registry: Registry, base_url: str, name: str) -> dict[str, Any]:
    """One /ResourceTypes document by name; 404 when there is none."""
    rt = registry.resource_type(name)
    if rt is None:
        raise NotFound(f"ResourceType {name[:100]} not found.")
    return rt.to_dict(f"{base_url}/ResourceTypes/{rt.name}")


def schemas(registry: Registry, base_url: str) -> list[dict[str, Any]]:
    """Every /Schemas document."""
    return [s.to_dict(f"{base_url}/Schemas/{s.id}") for s in registry.schemas]


def schema(registry: Registry, base_url: str, urn: str) -> dict[str, Any]:
    """One /Schemas document by URN; 404 when there is none."""
    found = registry.schema(urn)
    if found is None:
        raise NotFound(f"Schema {urn[:200]} not found.")
    return found.to_dict(f"{base_url}/Schemas/{found.id}")
