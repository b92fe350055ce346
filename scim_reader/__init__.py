"""Read the directory the SCIM endpoint keeps in Azure Table Storage, from the host app.

Depends on azure-data-tables only: importing it loads neither azure-functions nor the SCIM
service (``scim_core``). Guide: docs/reader.md.

    reader = DirectoryReader.from_connection_string(conn, table="scim")
    directory = reader.tenant("default")
    user = directory.get_user_by_name("alice@contoso.com")

Module layout: ``reader`` (``DirectoryReader``, ``TenantReader``), ``models`` (results),
``listing`` (pages and cursors), ``layout`` (keys and rows), ``errors``. The change feed
(``TenantReader.events(after=cursor)`` and a polling ``follow``) comes later, as module
``events`` on the same ``TenantReader`` and ``Page``/cursor shapes; it is not built yet.
"""

from scim_reader.errors import (
    InvalidCursor,
    ReaderError,
    StorageError,
    TableNotFound,
    UnreadableRow,
)
from scim_reader.layout import DEFAULT_TENANT
from scim_reader.listing import Listing, Page
from scim_reader.models import Email, Group, Member, Meta, Tenant, User
from scim_reader.reader import DirectoryReader, TenantReader

__all__ = [
    "DEFAULT_TENANT",
    "DirectoryReader",
    "Email",
    "Group",
    "InvalidCursor",
    "Listing",
    "Member",
    "Meta",
    "Page",
    "ReaderError",
    "StorageError",
    "TableNotFound",
    "Tenant",
    "TenantReader",
    "UnreadableRow",
    "User",
]
