"""The management routes of the activity log as plain functions: ``(tenant_id, query
params) -> JSON-able dict``; the management API wires them to
``/manage/v1/tenants/{id}/activity`` and ``.../health``. ``BadQuery`` is a 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scim_core.activity.log import ActivityLog, BadQuery

__all__ = ["BadQuery", "activity_view", "health_view"]


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    try:
        return int(raw)
    except ValueError as exc:
        raise BadQuery("limit must be a whole number") from exc


def activity_view(log: ActivityLog, tenant_id: str, params: Mapping[str, str]
                  ) -> dict[str, Any]:
    """GET /manage/v1/tenants/{id}/activity?since=&until=&status=&operation=&name=
    &limit=&cursor= : ``{"entries": [...], "nextCursor": ...}``."""
    page = log.search(tenant_id, since=params.get("since") or None,
                      until=params.get("until") or None, status=params.get("status") or None,
                      operation=params.get("operation") or None,
                      name=params.get("name") or None, limit=_limit(params.get("limit")),
                      cursor=params.get("cursor") or None)
    out: dict[str, Any] = {"tenant": tenant_id,
                           "entries": [entry.document() for entry in page.entries]}
    if page.cursor:
        out["nextCursor"] = page.cursor
    return out


def health_view(log: ActivityLog, tenant_id: str, params: Mapping[str, str]
                ) -> dict[str, Any]:
    """GET /manage/v1/tenants/{id}/health?since= : the connection health and the minute
    aggregates since ``since`` (default: the last hour)."""
    out = log.health(tenant_id)
    out["minutes"] = log.minutes(tenant_id, since=params.get("since") or None,
                                 until=params.get("until") or None,
                                 operation=params.get("operation") or None)
    return out
