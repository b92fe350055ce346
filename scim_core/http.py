"""Neutral request and response values: what the adapters translate to and from."""

from __future__ import annotations

import functools
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
    tenant: str | None = None
    """The tenant its URL names (``/tenants/{tenant}/scim/v2``); None for ``/scim/v2``."""

    def header(self, name: str) -> str | None:
        """A header by name, ignoring case."""
        return self._headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """A query parameter by name, ignoring case (``startIndex`` or ``startindex``)."""
        return self._query.get(name.lower())

    @functools.cached_property
    def _headers(self) -> dict[str, str]:
        return _by_lower_name(self.headers)

    @functools.cached_property
    def _query(self) -> dict[str, str]:
        return _by_lower_name(self.query)


def _by_lower_name(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` keyed by lower-cased name; of names that differ only in case, the first
    given wins."""
    found: dict[str, str] = {}
    for key, value in values.items():
        found.setdefault(key.lower(), value)
    return found


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, document: Any, headers: Mapping[str, str] | None = None
             ) -> Response:
        """A response whose body is ``document`` as compact UTF-8 SCIM JSON."""
        payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, {"Content-Type": SCIM_MEDIA_TYPE, **(headers or {})}, payload)

    @classmethod
    def empty(cls, status: int, headers: Mapping[str, str] | None = None) -> Response:
        """A response without a body."""
        return cls(status, dict(headers or {}), b"")

    def document(self) -> Any:
        """The body parsed as JSON (for tests and tools)."""
        return json.loads(self.body) if self.body else None
