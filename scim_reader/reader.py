"""``DirectoryReader`` (one table, every tenant) and ``TenantReader`` (one tenant's
partition): point reads and range queries of the rows the SCIM endpoint writes, and the
tenant's change feed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from scim_reader import layout
from scim_reader.errors import is_table_missing, reading
from scim_reader.events import Cursor, EventPage, Feed, Stop
from scim_reader.listing import MAX_PER_PAGE, Listing
from scim_reader.models import (
    Event,
    Group,
    Member,
    Tenant,
    User,
    group_from_row,
    member_from_row,
    tenant_from_row,
    user_from_row,
)

T = TypeVar("T")

_INDEX_SELECT = ["id", "value"]


def _holds(name: str, wanted: str) -> bool:
    """Whether a document read after its index row still has the name looked up: a rename
    between the two reads finds nothing, as the API's exact filter would."""
    return layout.folded(name) == wanted


class DirectoryReader:
    """Reads the users, groups and tenants the SCIM endpoint keeps in one Azure table.

    ``credential`` is any azure-core credential (a ``TokenCredential`` such as the host
    app's own managed identity, an ``AzureNamedKeyCredential`` or an
    ``AzureSasCredential``); the reader never builds one. ``client_options`` go to
    azure-data-tables' ``TableClient`` (retries, timeouts, ``raw_response_hook``...).
    Thread-safe, as the ``TableClient`` is; build one per process and ``close()`` it."""

    def __init__(self, endpoint: str, credential: Any, *, table: str = "scim",
                 **client_options: Any) -> None:
        self._client = TableClient(endpoint, table, credential=credential, **client_options)

    @classmethod
    def from_connection_string(cls, connection_string: str, *, table: str = "scim",
                               **client_options: Any) -> DirectoryReader:
        """A reader from a storage connection string (Azurite's, or
        ``UseDevelopmentStorage=true``, or an account key or SAS connection string)."""
        return cls.from_table_client(
            TableClient.from_connection_string(connection_string, table, **client_options))

    @classmethod
    def from_table_client(cls, client: TableClient) -> DirectoryReader:
        """A reader over an existing ``TableClient`` (closed by ``close()``)."""
        reader = cls.__new__(cls)
        reader._client = client
        return reader

    @property
    def table(self) -> str:
        """The table's name."""
        return str(self._client.table_name)

    def tenant(self, tenant_id: str = layout.DEFAULT_TENANT) -> TenantReader:
        """The reader of one tenant's directory (no I/O). ``default`` is the tenant of
        ``/scim/v2``; any other is that of ``/tenants/{tenant_id}/scim/v2``."""
        return TenantReader(self._client, tenant_id)

    def tenants(self) -> list[Tenant]:
        """The deployment's tenants by id: every registered one, and ``default`` (which
        serves ``/scim/v2`` whether or not it is registered). One range query."""
        with reading(self.table):
            rows = self._client.query_entities(
                "PartitionKey eq @partition", parameters={"partition": layout.REGISTRY_PARTITION})
            found = {tenant.id: tenant for tenant in map(tenant_from_row, rows)}
        found.setdefault(layout.DEFAULT_TENANT,
                         Tenant(layout.DEFAULT_TENANT, "Default", "enabled", "", ""))
        return [found[tenant_id] for tenant_id in sorted(found)]

    def events(self, tenant_id: str, *, after: Cursor = None,
               limit: int = MAX_PER_PAGE) -> EventPage:
        """``tenant(tenant_id).events(after=..., limit=...)``."""
        return self.tenant(tenant_id).events(after, limit=limit)

    def position(self, tenant_id: str) -> str:
        """``tenant(tenant_id).position()``."""
        return self.tenant(tenant_id).position()

    def follow(self, tenant_id: str, after: Cursor = None, *, poll_seconds: float = 1.0,
               stop: Stop = None, limit: int = MAX_PER_PAGE) -> Iterator[Event]:
        """``tenant(tenant_id).follow(after, ...)``."""
        return self.tenant(tenant_id).follow(after, poll_seconds=poll_seconds, stop=stop,
                                             limit=limit)

    def close(self) -> None:
        """Close the table client."""
        self._client.close()

    def __enter__(self) -> DirectoryReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TenantReader:
    """One tenant's users, groups, memberships and events. Get methods are point reads and
    return None for what is not there; list methods are range queries in RowKey order (id
    order for the endpoint's UUID ids) and return a ``Listing``; ``events``, ``position``
    and ``follow`` read the change feed."""

    def __init__(self, client: TableClient, tenant_id: str) -> None:
        self._client = client
        self._tenant = tenant_id
        self._partition = layout.partition_key(tenant_id)
        self._feed = Feed(client, self._partition)

    @property
    def tenant_id(self) -> str:
        """The tenant this reader reads."""
        return self._tenant

    def _read(self, row_key: str, select: list[str] | None = None) -> Mapping[str, Any] | None:
        with reading(self._client.table_name):
            try:
                found: Mapping[str, Any] = self._client.get_entity(self._partition, row_key,
                                                                   select=select)
            except ResourceNotFoundError as error:
                if is_table_missing(error):
                    raise
                return None
            return found

    def _indexed(self, kind: str, index: str, value: str) -> Mapping[str, Any] | None:
        """The document row a unique index value names: one index read, one document read.
        The caller checks that the document still holds the value (see ``_holds``)."""
        entry = self._read(layout.unique_index_key(kind, index, value), _INDEX_SELECT)
        # a hashed key component could collide; the stored value cannot
        if entry is None or entry.get("value") != value:
            return None
        return self._read(layout.document_key(kind, str(entry["id"])))

    def _listing(self, bounds: tuple[str, str], convert: Callable[[Mapping[str, Any]], T],
                 after: str | None, per_page: int,
                 select: list[str] | None = None) -> Listing[T]:
        return Listing(self._client, self._partition, bounds, convert, after=after,
                       per_page=per_page, select=select)

    # -- users -----------------------------------------------------------------------------

    def get_user(self, user_id: str) -> User | None:
        """The user with this id, or None (one point read)."""
        found = self._read(layout.document_key(layout.USER, user_id))
        return None if found is None else user_from_row(found)

    def get_user_by_name(self, user_name: str) -> User | None:
        """The user with this userName, compared case-insensitively as the endpoint does,
        or None (the unique index row, then the document: two point reads, one if none)."""
        wanted = layout.folded(user_name)
        found = self._indexed(layout.USER, layout.USER_NAME_INDEX, wanted)
        user = None if found is None else user_from_row(found)
        return user if user is not None and _holds(user.user_name, wanted) else None

    def list_users(self, *, after: str | None = None,
                   per_page: int = MAX_PER_PAGE) -> Listing[User]:
        """Every user, in RowKey order, from after the page whose cursor is ``after``."""
        return self._listing(layout.documents_range(layout.USER), user_from_row, after,
                             per_page)

    def list_user_groups(self, user_id: str, *, after: str | None = None,
                         per_page: int = MAX_PER_PAGE) -> Listing[str]:
        """The ids of the groups the user is a direct member of, in RowKey order (empty
        for an unknown user)."""
        return self._listing(layout.member_of_range(user_id),
                             lambda entity: str(entity["groupId"]), after, per_page,
                             ["groupId"])

    # -- groups ----------------------------------------------------------------------------

    def get_group(self, group_id: str) -> Group | None:
        """The group with this id, or None (one point read; members are not read)."""
        found = self._read(layout.document_key(layout.GROUP, group_id))
        return None if found is None else group_from_row(found)

    def get_group_by_name(self, display_name: str) -> Group | None:
        """The group with this displayName, compared case-insensitively as the endpoint
        does, or None (two point reads, one if none)."""
        wanted = layout.folded(display_name)
        found = self._indexed(layout.GROUP, layout.DISPLAY_NAME_INDEX, wanted)
        group = None if found is None else group_from_row(found)
        return group if group is not None and _holds(group.display_name, wanted) else None

    def list_groups(self, *, after: str | None = None,
                    per_page: int = MAX_PER_PAGE) -> Listing[Group]:
        """Every group (without members), in RowKey order."""
        return self._listing(layout.documents_range(layout.GROUP), group_from_row, after,
                             per_page)

    def list_members(self, group_id: str, *, after: str | None = None,
                     per_page: int = MAX_PER_PAGE) -> Listing[Member]:
        """The group's direct members, in RowKey order (empty for an unknown group)."""
        return self._listing(layout.members_range(group_id), member_from_row, after, per_page,
                             ["userId", "display"])

    # -- the change feed -------------------------------------------------------------------

    def events(self, after: Cursor = None, *, limit: int = MAX_PER_PAGE) -> EventPage:
        """Up to ``limit`` events after the cursor ``after`` (None or "0": from the first),
        in commit order, and the cursor to read on from (one range query, then a point read
        of the feed row when none follows). Raises ``CursorExpired`` when retention removed
        events after ``after`` and ``InvalidCursor`` for what is not a position."""
        return self._feed.page(after, limit)

    def position(self) -> str:
        """The feed's last position now, as a cursor ("0" before the first event): take it
        before reading the directory to resynchronise, then follow from it."""
        return self._feed.position()

    def follow(self, after: Cursor = None, *, poll_seconds: float = 1.0, stop: Stop = None,
               limit: int = MAX_PER_PAGE) -> Iterator[Event]:
        """Every event after ``after``, in commit order, each once, waiting ``poll_seconds``
        between reads once caught up; ends when ``stop`` (a callable or a
        ``threading.Event``) says so, never by itself. Errors (``CursorExpired``,
        ``StorageError``) end it: follow again from the last position you handled."""
        return self._feed.follow(after, poll_seconds=poll_seconds, stop=stop, limit=limit)

    def __repr__(self) -> str:
        return f"TenantReader({self._tenant!r})"
