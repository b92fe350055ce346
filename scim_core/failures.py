"""Store failures as SCIM errors: the one mapping, applied to every service operation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from scim_core.errors import (
    Conflict,
    InvalidCursor,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    ScimError,
    ServiceUnavailable,
    Unauthorized,
    Uniqueness,
)
from scim_core.store import (
    BadCursor,
    KeyTaken,
    NotStored,
    StorageUnavailable,
    StoreError,
    TenantGone,
    TooLarge,
    UnknownMembers,
    VersionMoved,
)

P = ParamSpec("P")
R = TypeVar("R")


def scim_error(failure: StoreError) -> ScimError:
    """The SCIM error a client sees for a store failure."""
    if isinstance(failure, TenantGone):
        # exactly what a wrong token for an unknown tenant gets: a deleted tenant is unknown
        return Unauthorized()
    if isinstance(failure, NotStored):
        return NotFound(f"{failure.kind} {failure.resource_id[:200]} not found.")
    if isinstance(failure, KeyTaken):
        return Uniqueness(f"{failure.key.name} '{failure.key.value[:200]}' is already in use "
                          "by another resource.")
    if isinstance(failure, UnknownMembers):
        shown = ", ".join(m[:100] for m in failure.ids[:5])
        more = f" and {len(failure.ids) - 5} more" if len(failure.ids) > 5 else ""
        return InvalidValue(f"Members must be existing users; unknown id(s): {shown}{more}.")
    if isinstance(failure, VersionMoved):
        return Conflict("The resource is being changed concurrently; retry the request.")
    if isinstance(failure, TooLarge):
        return PayloadTooLarge(str(failure))
    if isinstance(failure, BadCursor):
        return InvalidCursor(str(failure))
    if isinstance(failure, StorageUnavailable):
        return ServiceUnavailable(str(failure), retry_after=failure.retry_after)
    return ServiceUnavailable("Storage failed; retry later.")


def translated(operation: Callable[P, R]) -> Callable[P, R]:
    """``operation`` with every store failure raised as its SCIM error."""
    @functools.wraps(operation)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return operation(*args, **kwargs)
        except StoreError as failure:
            raise scim_error(failure) from failure
    return run
