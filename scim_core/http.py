"""Neutral request and response values: what the adapters translate to and from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCIM_MEDIA_TYPE = "application/scim+json"


@dataclass(frozen=True)
class Request:
    """One HTTP request, independent of any host.

    ``path`` is relative to the SCIM root (``/Users/123``); ``base_url`` is the absolute
    SCIM root (``https://host/scim/v2``) used for ``Location`` and ``meta.location``.
    Header names are matched case-insensitively; query values are already URL-decoded.
    """

    method: str
    path: str
    base_url: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def param(self, name: str) -> str | None:
        """A query parameter by name, ignoring case (``startIndex`` or ``startindex``)."""
        lowered = name.lower()
        for key, value in self.query.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, document: Any, headers: Mapping[str, str] | None = None
             ) -> Response:
        payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, {"Content-Type": SCIM_MEDIA_TYPE, **(headers or {})}, payload)

    @classmethod
    def empty(cls, status: int, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, dict(headers or {}), b"")

    def document(self) -> Any:
        """The body parsed as JSON (for tests and tools)."""
        return json.loads(self.body) if self.body else None
