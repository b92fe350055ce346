"""Where the tenants' bearer tokens are kept: the one small protocol that the app and the
admin use, for Key Vault and for the local secret stores (docs/architecture.md, "Secret stores")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from scim_core.auth.source import TokenSource

_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class TokenVersion:
    """One version of a token secret, without its value. ``reference`` names it for an
    operator (Key Vault's version id URL, or the local secret's name and version)."""

    version: str
    created_on: datetime | None
    enabled: bool
    not_before: datetime | None = None
    expires_on: datetime | None = None
    reference: str = ""

    def valid_at(self, now: float) -> bool:
        """Enabled, past ``not_before`` and before ``expires_on`` at ``now`` (Unix seconds)."""
        if self.enabled is not True:
            return False
        if self.not_before is not None and now < self.not_before.timestamp():
            return False
        return self.expires_on is None or now < self.expires_on.timestamp()


def newest_first(versions: Iterable[TokenVersion]) -> list[TokenVersion]:
    """Versions newest first by ``created_on``; ties broken by version id (the order
    ``KeyVaultTokenSource`` uses)."""
    return sorted(versions, key=lambda v: (v.created_on or _EPOCH, v.version), reverse=True)


@dataclass(frozen=True)
class DeletedSecret:
    """What deleting a secret did: whether it was there, whether the store keeps it deleted
    (Key Vault's soft delete, so its name stays taken) and until when (when known)."""

    existed: bool
    soft_deleted: bool
    purge_date: datetime | None = None


class SecretStoreError(Exception):
    """A secret store failed; the message explains it in one line and never holds a token."""


class WriteUnknown(SecretStoreError):
    """A new version was sent but its answer was lost: it may have been created."""


class NameReserved(SecretStoreError):
    """The name belongs to a deleted secret that the store keeps (soft delete)."""


@runtime_checkable
class SecretStore(Protocol):
    """The versions of each token secret (``scim-bearer-token``, ``scim-token-<id>``).

    Every method but ``token_source`` raises ``SecretStoreError`` when the store fails; the
    token sources it hands out raise ``ServiceUnavailable`` instead (the request path).
    """

    @property
    def location(self) -> str:
        """Where the secrets are, for messages (a vault URL, or the local store)."""
        ...

    @property
    def keeps_values(self) -> bool:
        """Whether a version's token can be read back (Key Vault) or only verified (local
        secrets keep a salted hash)."""
        ...

    def versions(self, name: str) -> list[TokenVersion]:
        """Every version of ``name`` (empty when there is no such secret)."""
        ...

    def add(self, name: str, token: str) -> TokenVersion:
        """Add ``token`` as the newest version of ``name``; sent once, never retried
        (``WriteUnknown`` when the answer was lost, ``NameReserved`` when the name is kept
        by a soft-deleted secret)."""
        ...

    def disable(self, name: str, version: str) -> None:
        """Disable one version: it is never accepted again."""
        ...

    def delete(self, name: str) -> DeletedSecret:
        """Delete every version of ``name``; a secret already gone is no error."""
        ...

    def read(self, name: str) -> str | None:
        """The newest enabled value of a plain setting kept as a secret (the deployment's
        Tenant URL); None when there is none. Local stores keep no such values."""
        ...

    def token_source(self, name: str, *, cache_seconds: float) -> TokenSource:
        """What the request path asks: whether a presented token is one of the newest two
        valid versions of ``name``, cached for ``cache_seconds``."""
        ...

    def close(self) -> None:
        """Release the clients this store built."""
        ...
