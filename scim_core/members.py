"""The one reading of a group's member list, for POST, PUT and PATCH alike."""

from __future__ import annotations

from typing import Any

from scim_core.errors import InvalidValue
from scim_core.json_keys import get_ci
from scim_core.store import Member

MAX_ID_LENGTH = 1024


def parse_members(value: Any, where: str) -> list[Member]:
    """Members from a list of ``{"value": id, "display"?, "$ref"?, "type"?}`` objects (or a
    single object); duplicate ids collapse to the first. ``$ref`` and ``type`` are ignored:
    the id alone identifies a member."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    found: dict[str, Member] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidValue(f"'{where}': member {index} must be an object with a 'value'.")
        member_id = get_ci(item, "value")
        if not isinstance(member_id, str) or not member_id.strip():
            raise InvalidValue(f"'{where}': member {index} needs a non-empty string 'value'.")
        if len(member_id) > MAX_ID_LENGTH:
            raise InvalidValue(f"'{where}': member {index} has an over-long 'value'.")
        display = get_ci(item, "display")
        if display is not None and not isinstance(display, str):
            raise InvalidValue(f"'{where}': member {index} has a 'display' that is not a "
                               "string.")
        found.setdefault(member_id, Member(member_id, display))
    return list(found.values())
