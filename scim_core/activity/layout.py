"""The activity table's keys. Partitions start with the tenant id, so tenants spread over
the account's partition servers and none shares a partition with any tenant's data:

- entries of a tenant and UTC day: ``<tenant>|e<yyyymmdd>``, RowKey
  ``e|<inverted ms>|<unique>`` (newest first), and per named value a copy under
  ``n|<name key>|<inverted ms>|<unique>``, written in the same batch;
- minute aggregates: ``<tenant>|m<yyyymmdd>``, RowKey ``<hhmm>|<operation>``;
- connection health: ``<tenant>|h``, RowKey ``connection``."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

__all__ = ["day_of", "entry_partition", "health_partition", "inverted", "minute_key",
           "minute_partition", "name_key"]

_MAX_MS = 9_999_999_999_999
_NEEDS_ESCAPE = re.compile(r"[%/\\#?|~\x00-\x1f\x7f-\x9f]")
HEALTH_ROW = "connection"


def day_of(at: float) -> str:
    """``yyyymmdd`` (UTC) of ``at`` seconds since the epoch."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d")


def entry_partition(tenant: str, day: str) -> str:
    """The partition of ``tenant``'s entries of ``day``."""
    return f"{tenant}|e{day}"


def minute_partition(tenant: str, day: str) -> str:
    """The partition of ``tenant``'s minute aggregates of ``day``."""
    return f"{tenant}|m{day}"


def health_partition(tenant: str) -> str:
    """The partition of ``tenant``'s connection health."""
    return f"{tenant}|h"


def inverted(at: float) -> str:
    """``at`` as a 13-digit key that sorts newest first."""
    return f"{_MAX_MS - int(at * 1000):013d}"


def _escape(text: str) -> str:
    return _NEEDS_ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def minute_key(hhmm: str, operation: str) -> str:
    """The RowKey of one operation's aggregate row in one minute (``/`` is escaped)."""
    return f"{hhmm}|{_escape(operation)}"


def name_key(value: str) -> str:
    """A RowKey-safe, case-insensitive key for a named value (userName, externalId,
    displayName, id): percent-escaped, or a hash when long."""
    folded = value.casefold()
    escaped = _escape(folded)
    if len(escaped) > 256:
        return "h" + hashlib.sha256(folded.encode()).hexdigest()[:40]
    return "v" + escaped
