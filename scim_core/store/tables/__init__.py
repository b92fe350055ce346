"""The Store protocol on Azure Table Storage (layout: README "Table layout")."""

from scim_core.store.tables.store import TableStore, table_store

__all__ = ["TableStore", "table_store"]
