"""Listings: the rows of one key range in RowKey order, a page per storage request, with a
cursor to resume after any page."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from azure.data.tables import TableClient

from scim_reader.errors import InvalidCursor, reading

T = TypeVar("T")

MAX_PER_PAGE = 1000
"""Table Storage returns at most 1,000 entities per request."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One storage page of a listing. ``cursor`` resumes the listing after this page
    (``after=cursor``); it is None when storage said nothing follows."""

    items: tuple[T, ...]
    cursor: str | None


def encode_cursor(row_key: str) -> str:
    """An opaque cursor for ``row_key``."""
    raw = row_key.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, low: str, high: str) -> str:
    """The RowKey a cursor of the range ``[low, high)`` holds; ``InvalidCursor`` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        row_key = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8",
                                                                           "surrogatepass")
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidCursor("the cursor is not one this listing issued") from None
    if not low <= row_key < high:
        raise InvalidCursor("the cursor is not one this listing issued")
    return row_key


class Listing(Generic[T]):
    """Iterate it for the items (storage pages are fetched as you go), or call ``pages()``
    for the pages and their cursors. Each page is current when read; a listing over many
    pages is not a snapshot."""

    def __init__(self, client: TableClient, partition: str, bounds: tuple[str, str],
                 convert: Callable[[Mapping[str, Any]], T], *, after: str | None = None,
                 per_page: int = MAX_PER_PAGE, select: list[str] | None = None) -> None:
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be 1 to {MAX_PER_PAGE}, not {per_page}")
        self._client = client
        self._partition = partition
        self._low, self._high = bounds
        self._after = None if after is None else decode_cursor(after, self._low, self._high)
        self._convert = convert
        self._per_page = per_page
        self._select = None if select is None else ["RowKey", *select]

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items

    def pages(self) -> Iterator[Page[T]]:
        """The listing a storage page at a time (empty pages are skipped)."""
        bound = "RowKey ge @low" if self._after is None else "RowKey gt @low"
        with reading(self._client.table_name):
            query = self._client.query_entities(
                f"PartitionKey eq @partition and {bound} and RowKey lt @high",
                parameters={"partition": self._partition,
                            "low": self._low if self._after is None else self._after,
                            "high": self._high},
                select=self._select, results_per_page=self._per_page)
            pager = query.by_page()
            for rows in pager:
                entities = list(rows)
                if not entities:
                    continue
                more = getattr(pager, "continuation_token", None) is not None
                cursor = encode_cursor(str(entities[-1]["RowKey"])) if more else None
                yield Page(tuple(self._convert(entity) for entity in entities), cursor)
