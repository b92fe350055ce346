"""The change feed: events written with each change, read in commit order
(docs/events.md)."""

from scim_core.events.model import (
    EVENT_TYPES,
    Event,
    EventDraft,
    EventType,
)

__all__ = ["EVENT_TYPES", "Event", "EventDraft", "EventType"]
