"""A tenant: one customer's directory, with its own Tenant URL and token."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field, replace

DEFAULT_TENANT = "default"
ENABLED = "enabled"
DISABLED = "disabled"
DELETING = "deleting"
STATES = frozenset({ENABLED, DISABLED, DELETING})
MAX_NAME_LENGTH = 256
# Lower-case letters, digits and inner dashes: safe in a URL path segment, a Key Vault
# secret name (scim-token-<id>) and a Table Storage key, and never mistaken for another.
_TENANT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])")


class InvalidTenant(ValueError):
    """A tenant id or name that cannot be used."""


def check_tenant_id(tenant_id: str) -> str:
    """``tenant_id`` when it is a valid tenant id (3-63 of ``a-z``, ``0-9``, inner ``-``)."""
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise InvalidTenant("A tenant id is 3 to 63 lower-case letters, digits and inner "
                            "dashes, such as 'contoso' or 'acme-eu'.")
    return tenant_id


def is_tenant_id(text: str) -> bool:
    """Whether ``text`` could name a tenant."""
    return bool(_TENANT_ID.fullmatch(text))


def new_tenant_id() -> str:
    """An unguessable tenant id: 80 random bits as 16 lower-case base32 characters."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def check_name(name: str) -> str:
    """A display name, trimmed: 1 to 256 characters without control characters."""
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in text):
        raise InvalidTenant(f"A tenant name is 1 to {MAX_NAME_LENGTH} printable characters.")
    return text


@dataclass(frozen=True)
class Tenant:
    """A registered tenant. ``state`` is enabled, disabled, or deleting (a delete under
    way: its data is being removed and it serves nothing). ``epoch`` tells this tenant from
    an earlier one of the same id (0: the tenant predates epochs, or is the implicit
    default); ``etag`` is the registry row's as read (None: not read from a registry), which
    a state change is conditional on."""

    id: str
    name: str
    state: str
    created: str
    changed: str
    epoch: int = 0
    etag: str | None = field(default=None, compare=False, repr=False)

    @property
    def serves(self) -> bool:
        """Whether SCIM requests reach its data."""
        return self.state == ENABLED

    def with_state(self, state: str, when: str) -> Tenant:
        """The tenant in ``state`` from ``when`` on."""
        return replace(self, state=state, changed=when)


def implicit_default(created: str = "") -> Tenant:
    """The default tenant as it is before anyone registers it: enabled, serving /scim/v2."""
    return Tenant(DEFAULT_TENANT, "Default", ENABLED, created, created)
