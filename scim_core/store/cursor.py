"""Opaque paging cursors (RFC 9865): URL-safe base64 of a store's own position."""

from __future__ import annotations

import base64
import binascii

from scim_core.errors import InvalidCursor

MAX_CURSOR_LENGTH = 4096


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The position inside a cursor; a cursor this server did not issue is a 400."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("The cursor is not valid.")
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("The cursor is not valid.") from exc
    # The decoder skips characters outside the alphabet; only an exact round trip is ours.
    if encode_cursor(position) != cursor:
        raise InvalidCursor("The cursor is not valid.")
    return position
