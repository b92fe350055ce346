"""RFC 9457 problem documents of the management API, and the one place that turns the
tenant admin's, the reader's and the store's exceptions into them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import AzureError

from scim_core.auth.secrets import NameReserved, SecretStoreError
from scim_core.http import Response
from scim_core.operations.tenants import TenantAdminError
from scim_core.operations.tokens import TokenError
from scim_core.store.errors import StoreError
from scim_core.tenants.model import InvalidTenant
from scim_core.tenants.registry import TenantExists, TenantMissing
from scim_reader.errors import CursorExpired, InvalidCursor, ReaderError

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
TYPE_PREFIX = "urn:scim-manage:problem:"

log = logging.getLogger("scim_core.manage")

TITLES = {
    "invalid-request": "The request is not valid",
    "unauthorized": "A management credential is required",
    "forbidden": "The credential does not allow this",
    "not-found": "No such resource",
    "method-not-allowed": "Method not allowed",
    "conflict": "The request conflicts with the current state",
    "tenant-exists": "A tenant with this id exists",
    "precondition-failed": "The resource changed (If-Match)",
    "precondition-required": "If-Match is required",
    "payload-too-large": "The request body is too large",
    "unsupported-media-type": "The body must be application/json",
    "idempotency-key-reused": "The Idempotency-Key was used for another request",
    "idempotency-in-progress": "A request with this Idempotency-Key is under way",
    "cursor-invalid": "The cursor is not valid",
    "cursor-expired": "The cursor has expired: resynchronise",
    "unavailable": "The service is unavailable",
    "directory-unavailable": "The directory routes need the tables store",
    "internal": "Internal error",
}
"""Every problem ``type`` the API answers (``TYPE_PREFIX`` + key) and its title. The
OpenAPI document lists the same keys."""


class Problem(Exception):
    """A failed management request: status, a stable type, a one-line detail (never a
    secret) and extra members or headers."""

    def __init__(self, status: int, kind: str, detail: str, *,
                 headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, object] | None = None) -> None:
        assert kind in TITLES, kind
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> Response:
        """This problem as an ``application/problem+json`` response."""
        body = {"type": TYPE_PREFIX + self.kind, "title": TITLES[self.kind],
                "status": self.status, "detail": self.detail, **self.extra}
        return Response(self.status, {"Content-Type": PROBLEM_MEDIA_TYPE, **self.headers},
                        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def json_response(status: int, document: object, headers: Mapping[str, str] | None = None
                  ) -> Response:
    """A JSON answer."""
    payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, {"Content-Type": JSON_MEDIA_TYPE, **(headers or {})}, payload)


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def translate(exc: BaseException, *, missing_tenant: str | None = None) -> Problem | None:
    """The problem for an exception of a layer below, or None when it is a bug.

    A ``TenantAdminError`` keeps its message as the detail (it is written for people and
    holds no token); its status comes from what caused it: an invalid id or name (400), an
    id taken (409), a tenant missing (404), storage or Key Vault failing (503, detail
    logged, not shown: the admin raised it ``from`` that failure); any other refusal is a
    conflict with the tenant's state (409), e.g. a reused id Key Vault still keeps.
    ``missing_tenant``: the tenant whose lookup raised, when a bare admin error means
    it is not registered."""
    chain = _chain(exc)
    if isinstance(exc, CursorExpired):
        return Problem(410, "cursor-expired", str(exc),
                       extra={"floor": exc.floor, "resync": "take the position, read the "
                              "directory again, then follow events from that position"})
    if isinstance(exc, InvalidCursor):
        return Problem(400, "cursor-invalid", str(exc))
    cause = chain[1] if len(chain) > 1 else None
    if isinstance(exc, TenantAdminError | TokenError | InvalidTenant):
        if isinstance(exc, InvalidTenant) or isinstance(cause, InvalidTenant):
            return Problem(400, "invalid-request", str(exc))
        if isinstance(cause, TenantExists):
            return Problem(409, "tenant-exists", str(exc))
        if isinstance(cause, TenantMissing) or (missing_tenant is not None and cause is None):
            return Problem(404, "not-found", str(exc))
        # ``raise ... from failure`` is a failure of storage or Key Vault; an error raised
        # ``from None`` (or on its own) is the admin refusing in the tenant's state.
        failure = exc.__cause__
        if not isinstance(failure, StoreError | AzureError | SecretStoreError) or isinstance(
                failure, NameReserved) or getattr(failure, "status_code", None) == 409:
            return Problem(409, "conflict", str(exc))
    if any(isinstance(e, StoreError | AzureError | ReaderError | SecretStoreError)
           for e in chain):
        log.warning("management request failed in storage: %s", str(exc)[:300])
        return Problem(503, "unavailable", "Storage or Key Vault did not answer; try again "
                       "later.", headers={"Retry-After": "5"})
    return None


def tenant_url_or_none(admin: Any, tenant_id: str) -> str | None:
    """The tenant's Tenant URL, or None when it cannot be told now (a failure ``translate``
    knows, e.g. Key Vault unreachable for a deployment's stored URL); a bug still raises."""
    try:
        return str(admin.endpoint(tenant_id))
    except Exception as failure:
        if translate(failure) is None:
            raise
        return None
