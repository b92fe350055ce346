"""Opaque paging cursors (RFC 9865): URL-safe base64 of a store's own position, bound to the
tenant's epoch, so that a cursor of a deleted tenant does not page a re-created one."""

from __future__ import annotations

import base64
import binascii
import re

from scim_core.store.errors import BadCursor

MAX_CURSOR_LENGTH = 4096
_EPOCH = re.compile(r"~([0-9]{1,18})~")
_INVALID = "The cursor is not valid."


def encode_cursor(position: str, epoch: int = 0) -> str:
    """The opaque cursor for a store's ``position`` in the tenant's ``epoch``."""
    text = f"~{epoch}~{position}" if epoch else position
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, epoch: int = 0) -> str:
    """The position inside a cursor; a cursor this server did not issue for the tenant's
    ``epoch`` raises ``BadCursor``."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor(_INVALID)
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor(_INVALID) from exc
    # The decoder skips characters outside the alphabet; only an exact round trip is ours.
    if base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=") != cursor:
        raise BadCursor(_INVALID)
    found = _EPOCH.match(text)
    if (int(found.group(1)) if found else 0) != epoch:
        raise BadCursor(_INVALID)
    return text[found.end():] if found else text
