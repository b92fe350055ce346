"""Building the activity rows, recorder and log for a store from settings (used by the
composition root and the admin command)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from azure.core.credentials import TokenCredential

from scim_core.activity.log import ActivityLog
from scim_core.activity.recorder import ActivityRecorder, NullRecorder, Recorder
from scim_core.activity.retention import ActivityTrim, trim_activity
from scim_core.activity.rows import ActivityRows, memory_rows
from scim_core.config import Settings, SettingsError
from scim_core.store.base import Store

if TYPE_CHECKING:
    from scim_core.store.tables.store import TableStore

log = logging.getLogger(__name__)

__all__ = ["activity_log", "activity_rows", "build_recorder", "trim_activity_of"]


def activity_rows(settings: Settings, store: Store) -> ActivityRows:
    """Where ``store``'s activity is kept: for a ``TableStore``, the table
    ``<SCIM_TABLE_NAME>activity`` of the same account, reached as the store's table is
    (with its credential); otherwise in memory beside it."""
    from scim_core.store.memory import MemoryStore

    if not isinstance(store, MemoryStore) and settings.store == "tables":
        from scim_core.activity.tables import table_activity_rows
        from scim_core.store.tables.store import TableStore

        if isinstance(store, TableStore):
            try:
                return table_activity_rows(settings, credential=_token_credential(store))
            except SettingsError as exc:  # a store built by hand, without table settings
                log.warning("Activity log kept in memory: %s", exc)
    return memory_rows(store)


def _token_credential(store: TableStore) -> TokenCredential | None:
    given = store.table.credential  # an account key or SAS when built from a connection string
    return given if isinstance(given, TokenCredential) else None


def build_recorder(settings: Settings, store: Store, endpoints: frozenset[str],
                   rows: ActivityRows | None = None) -> Recorder:
    """The recorder ``settings`` ask for (``SCIM_ACTIVITY``, ``SCIM_ACTIVITY_BODIES``)."""
    if not settings.activity:
        return NullRecorder()
    return ActivityRecorder(rows if rows is not None else activity_rows(settings, store),
                            endpoints=endpoints, bodies=settings.activity_bodies)


def activity_log(settings: Settings, store: Store) -> ActivityLog:
    """The reading side over the same rows."""
    return ActivityLog(activity_rows(settings, store), days=settings.activity_retention_days)


def trim_activity_of(settings: Settings, store: Store, *, budget_seconds: float,
                     rows: ActivityRows | None = None) -> ActivityTrim:
    """One retention run over the activity of ``store``'s tenants (the default one and
    every registered tenant not being deleted): entries older than
    ``SCIM_ACTIVITY_RETENTION_DAYS``, minute aggregates older than
    ``SCIM_ACTIVITY_MINUTES_RETENTION_DAYS``."""
    from scim_core.operations.retention import retained_tenants

    return trim_activity(rows if rows is not None else activity_rows(settings, store),
                         retained_tenants(store), days=settings.activity_retention_days,
                         minute_days=settings.activity_minutes_retention_days,
                         budget_seconds=budget_seconds)
