"""Read the directory the SCIM endpoint keeps in Azure Table Storage, from the host app.

Depends on azure-data-tables only: importing it loads neither azure-functions nor the SCIM
service (``scim_core``). Guide: docs/host-app.md.

    reader = DirectoryReader.from_connection_string(conn, table="scim")
    directory = reader.tenant("default")
    user = directory.get_user_by_name("alice@contoso.com")

    for event in directory.follow(after=saved_cursor, stop=stopping):
        handle(event)
        save(event.position)

Module layout: ``reader`` (``DirectoryReader``, ``TenantReader``), ``models`` (results),
``listing`` (pages and cursors), ``events`` (the change feed: ``EventPage``, ``follow``),
``layout`` (keys and rows), ``errors``.
"""

from scim_reader.errors import (
    CursorExpired,
    InvalidCursor,
    ReaderError,
    StorageError,
    TableNotFound,
    UnreadableRow,
)
from scim_reader.events import EventPage
from scim_reader.layout import DEFAULT_TENANT
from scim_reader.listing import Listing, Page
from scim_reader.models import Email, Event, Group, Member, Meta, Tenant, User
from scim_reader.reader import DirectoryReader, TenantReader

__all__ = [
    "DEFAULT_TENANT",
    "CursorExpired",
    "DirectoryReader",
    "Email",
    "Event",
    "EventPage",
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
