"""Opaque paging cursors (RFC 9865): URL-safe base64 of a store's own position."""

from __future__ import annotations

import base64
import binascii

from scim_core.store.errors import BadCursor

MAX_CURSOR_LENGTH = 4096


def encode_cursor(position: str) -> str:
    """The opaque cursor for a store's ``position``."""
    return base64.urlsafe_b64encode(position.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The position inside a cursor; a cursor this server did not issue raises ``BadCursor``."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("The cursor is not valid.")
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("The cursor is not valid.") from exc
    # The decoder skips characters outside the alphabet; only an exact round trip is ours.
    if encode_cursor(position) != cursor:
        raise BadCursor("The cursor is not valid.")
    return position
