"""The per-tenant activity log and connection health, written off the request path
(``ActivityRecorder``) and read by ``ActivityLog``."""

from scim_core.activity.entry import Entry, build_entry, redact
from scim_core.activity.log import ActivityLog, BadQuery, Page
from scim_core.activity.recorder import ActivityRecorder, NullRecorder, Recorder
from scim_core.activity.retention import ActivityTrim, trim_activity
from scim_core.activity.rows import (
    ActivityRows,
    ActivityStoreError,
    MemoryActivityRows,
    memory_rows,
)

__all__ = [
    "ActivityLog",
    "ActivityRecorder",
    "ActivityRows",
    "ActivityStoreError",
    "ActivityTrim",
    "BadQuery",
    "Entry",
    "MemoryActivityRows",
    "NullRecorder",
    "Page",
    "Recorder",
    "build_entry",
    "memory_rows",
    "redact",
    "trim_activity",
]
