"""A tenant's lifecycle as its partition records it: the feed states that fence writers
(deleting, deleted) and the epoch that tells a re-created id from the tenant it replaced."""

from __future__ import annotations

from scim_core.store.errors import TenantGone

DELETING = "deleting"
"""A delete is under way: no write lands from then on, whatever a process has cached."""
DELETED = "deleted"
"""The tombstone: kept on purpose, so that a stale writer meets it instead of creating a
feed row (a create of an existing row fails)."""
FENCED = frozenset({DELETING, DELETED})


def check_live(state: str | None, epoch: int, expected: int | None) -> None:
    """Raise ``TenantGone`` when a feed in ``state`` at ``epoch`` is not the live feed of
    a view that expects ``expected`` (None: any epoch)."""
    if state in FENCED or (expected is not None and epoch != expected):
        raise TenantGone()
