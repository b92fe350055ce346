"""The Store protocol on Azure Table Storage (layout: docs/host-app.md, "Table layout")."""

from scim_core.store.tables.store import TableStore, TableTenantStore, table_store

__all__ = ["TableStore", "TableTenantStore", "table_store"]
