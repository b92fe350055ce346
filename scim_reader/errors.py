"""The reader's exceptions, and the one place Azure Table errors are decoded into them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import AzureError, HttpResponseError


class ReaderError(Exception):
    """Base of everything the reader raises; the Azure error, if any, is ``__cause__``."""


class TableNotFound(ReaderError):
    """The table does not exist: a wrong ``table=``, or the SCIM endpoint has not served a
    request yet (it creates the table on first use)."""


class InvalidCursor(ReaderError, ValueError):
    """A cursor that this listing (or, for events, any feed) did not issue."""


class CursorExpired(ReaderError):
    """Retention removed events after the cursor that were never read (or the tenant's
    feed started over, after the tenant was deleted and created again). Resynchronise:
    take ``position()``, read the directory again, then follow from that position."""

    def __init__(self, message: str, *, cursor: int, floor: int) -> None:
        super().__init__(message)
        self.cursor = cursor
        self.floor = floor


class StorageError(ReaderError):
    """Storage refused or failed the read (credentials, throttling, network). ``status`` is
    the HTTP status when storage answered, else None."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnreadableRow(ReaderError):
    """A row this version of the reader cannot read (a newer layout)."""


def is_table_missing(error: BaseException) -> bool:
    """Whether ``error`` says the table itself is missing (not one entity)."""
    return getattr(error, "error_code", None) == "TableNotFound"


@contextmanager
def reading(table: str) -> Iterator[None]:
    """Turn any Azure error raised inside the block into a ``ReaderError``."""
    try:
        yield
    except ReaderError:
        raise
    except HttpResponseError as error:
        if is_table_missing(error):
            raise TableNotFound(f"the table {table!r} does not exist") from error
        status = error.status_code
        raise StorageError(f"reading table {table!r} failed: storage answered {status} "
                           f"({getattr(error, 'error_code', None)})", status=status) from error
    except AzureError as error:
        raise StorageError(f"reading table {table!r} failed: {error}") from error
