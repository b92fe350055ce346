"""SCIM errors: one exception class per ``scimType``, each knowing its HTTP status; never a
secret in a message (docs/architecture.md, "Settings, SCIM errors and discovery")."""

from __future__ import annotations

from collections.abc import Mapping

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """Base class: an HTTP status, an optional ``scimType`` and a human-readable detail."""

    status: int = 400
    scim_type: str | None = None

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The RFC 7644 §3.12 error document."""
        doc: dict[str, object] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            doc["scimType"] = self.scim_type
        doc["detail"] = self.detail
        return doc


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class Mutability(ScimError):
    scim_type = "mutability"


class TooMany(ScimError):
    scim_type = "tooMany"


class InvalidCursor(ScimError):
    """RFC 9865: a cursor the server did not issue, or can no longer honour."""

    scim_type = "invalidCursor"


class Unauthorized(ScimError):
    status = 401

    # One refusal for a missing header, a malformed one, an unknown or deleted tenant and a
    # wrong token, so that a 401 tells nothing about which it was.
    REFUSED = ("A valid bearer token for this Tenant URL is required: "
               "'Authorization: Bearer <token>'.")

    def __init__(self, detail: str = REFUSED) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="SCIM"'})


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


class MethodNotAllowed(ScimError):
    status = 405

    def __init__(self, detail: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(detail, headers={"Allow": ", ".join(allow)})


class NotAcceptable(ScimError):
    status = 406


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class Conflict(ScimError):
    """A write lost a race it could not win by retrying (409 without a scimType)."""

    status = 409


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class UnsupportedMediaType(ScimError):
    status = 415


class InternalError(ScimError):
    """An unexpected failure; the detail never says more than that."""

    status = 500


class NotImplementedByServer(ScimError):
    """An endpoint RFC 7644 defines that this server does not offer (§3.2, §3.7, §3.11)."""

    status = 501


class ServiceUnavailable(ScimError):
    """A dependency (storage, Key Vault) cannot answer now; the client should retry."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
