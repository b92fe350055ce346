"""The schema registry: the single source of truth for attributes."""

from scim_core.schema.definitions import ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA
from scim_core.schema.indexes import IndexSpec
from scim_core.schema.model import Attribute, ResourceType, Schema
from scim_core.schema.registry import AttrPath, Registry

__all__ = [
    "ENTERPRISE_USER_SCHEMA",
    "GROUP_SCHEMA",
    "USER_SCHEMA",
    "AttrPath",
    "Attribute",
    "IndexSpec",
    "Registry",
    "ResourceType",
    "Schema",
]
