"""Each tenant's token versions and their rotation, over an injected ``SecretStore``: rotate,
retire, cancel a pending rotation, the first token of a new tenant and the deletion of a
tenant's secret. ``TenantAdmin`` delegates here; nothing here reads the tenant registry."""

from __future__ import annotations

import secrets as random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from scim_core.auth.secrets import (
    NameReserved,
    SecretStore,
    SecretStoreError,
    TokenVersion,
    WriteUnknown,
    newest_first,
)
from scim_core.auth.tenant_tokens import tenant_secret_name

TOKEN_BYTES = 32  # 256 bits of randomness, 43 URL-safe characters


class TokenError(Exception):
    """A failed token operation, explained in one line (never containing a token)."""


@dataclass(frozen=True)
class Rotation:
    """A new token version: the token (shown once), where it is and what to do next."""

    tenant_id: str
    token: str
    version: str
    secret_name: str
    previous_valid: bool
    """Whether an older valid version remains (then ``retire_token`` comes next)."""
    tenant_url: str | None

    def __repr__(self) -> str:
        return (f"Rotation(tenant_id={self.tenant_id!r}, version={self.version!r}, "
                f"secret_name={self.secret_name!r}, token=<redacted>)")


@dataclass(frozen=True)
class Retirement:
    """What ``retire`` did: how many older versions it disabled and which one stays."""

    tenant_id: str
    secret_name: str
    disabled: int
    kept_version: str
    kept_created: datetime | None


@dataclass(frozen=True)
class Cancellation:
    """What ``cancel_rotation`` did: the pending version it disabled, the one that stays."""

    tenant_id: str
    secret_name: str
    cancelled_version: str
    kept_version: str
    kept_created: datetime | None


class TokenAdmin:
    """The token versions of every tenant, in ``secrets``: ``scim-token-<id>``, or
    ``default_secret`` (``SCIM_TOKEN_SECRET_NAME``) for the default tenant."""

    def __init__(self, secrets: SecretStore, *, default_secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.secrets = secrets
        self.default_secret = default_secret
        self._clock = clock

    def secret_name(self, tenant_id: str) -> str:
        """The secret holding ``tenant_id``'s token versions."""
        return tenant_secret_name(tenant_id, self.default_secret)

    def rotate(self, tenant_id: str, *, tenant_url: str | None = None) -> Rotation:
        """A new token; the previous one stays valid until ``retire``. Refused while a
        rotation is pending (two valid versions)."""
        secret = self.secret_name(tenant_id)
        valid = self.valid_versions(secret)
        if len(valid) > 1:
            raise TokenError(self._pending(secret, valid))
        token, version = self.write(secret)
        return Rotation(tenant_id, token, version, secret, bool(valid), tenant_url)

    def retire(self, tenant_id: str) -> Retirement:
        """Disable every version older than the newest valid one."""
        secret = self.secret_name(tenant_id)
        ordered = newest_first(self.versions(secret))
        if not ordered:
            raise TokenError(f"secret {secret!r} does not exist in {self.secrets.location}; "
                             "run rotate-token")
        now = self._clock()
        keep_at = next((i for i, v in enumerate(ordered) if v.valid_at(now)), None)
        if keep_at is None:
            raise TokenError(
                f"no version of {secret!r} is valid now, so retiring would leave no token; "
                "run rotate-token (or re-enable a version) first")
        keep = ordered[keep_at]
        disabled = 0
        with self._explained():
            for older in ordered[keep_at + 1:]:
                if older.enabled:
                    self.secrets.disable(secret, older.version)
                    disabled += 1
        return Retirement(tenant_id, secret, disabled, keep.version, keep.created_on)

    def cancel_rotation(self, tenant_id: str) -> Cancellation:
        """Undo a pending rotation whose new token was lost: disable the newest valid
        version; the older one, which Entra still sends, stays accepted."""
        secret = self.secret_name(tenant_id)
        valid = self.valid_versions(secret)
        if len(valid) < 2:
            raise TokenError(
                f"no rotation of {secret!r} is pending ({len(valid)} valid version"
                f"{'' if len(valid) == 1 else 's'}), so there is nothing to cancel; "
                "cancelling would leave no token")
        with self._explained():
            self.secrets.disable(secret, valid[0].version)
        return Cancellation(tenant_id, secret, valid[0].version, valid[1].version,
                            valid[1].created_on)

    def versions(self, secret: str) -> list[TokenVersion]:
        """Every version of ``secret``."""
        with self._explained():
            return self.secrets.versions(secret)

    def valid_versions(self, secret: str) -> list[TokenVersion]:
        """The valid versions of ``secret``, newest first."""
        now = self._clock()
        return [v for v in newest_first(self.versions(secret)) if v.valid_at(now)]

    def write(self, secret: str) -> tuple[str, str]:
        """A new random version of ``secret``; returns the token and the version id."""
        token = random.token_urlsafe(TOKEN_BYTES)
        try:
            created = self.secrets.add(secret, token)
        except WriteUnknown as exc:
            raise TokenError(
                f"{exc}. The new version may have been created without being shown: run "
                "rotate-token again and follow its instructions") from exc
        except NameReserved as exc:
            raise TokenError(f"{exc}, so this tenant id cannot be used again before then; "
                             "choose another id") from exc
        except SecretStoreError as exc:
            raise TokenError(str(exc)) from exc
        return token, created.version

    def disable_older(self, secret: str, *, keep: int) -> None:
        """Disable every enabled version but the newest ``keep``."""
        with self._explained():
            for older in newest_first(self.secrets.versions(secret))[keep:]:
                if older.enabled:
                    self.secrets.disable(secret, older.version)

    def delete_secret(self, secret: str) -> tuple[bool, datetime | None, bool]:
        """Delete ``secret``; whether it was there, when a vault purges it, and whether the
        vault keeps it deleted (soft delete)."""
        with self._explained():
            deleted = self.secrets.delete(secret)
        return deleted.existed, deleted.purge_date, deleted.soft_deleted

    def _pending(self, secret: str, valid: list[TokenVersion]) -> str:
        return (f"a rotation is already pending: {len(valid)} versions of {secret!r} are valid. "
                "Paste the newest token into Entra and run retire-token first. If the newest "
                f"token (version {valid[0].version}) was lost, run cancel-rotation (it disables "
                "that version; the older token keeps working), then rotate-token again.")

    @contextmanager
    def _explained(self) -> Iterator[None]:
        try:
            yield
        except SecretStoreError as exc:
            raise TokenError(str(exc)) from exc


def reuse_message(tenant_id: str, secret: str, soft: bool, purge: datetime | None) -> str:
    """When a deleted tenant's id can be given to a new tenant, in words."""
    if not soft:
        return (f"The id {tenant_id!r} can be used for a new tenant at once (its secret "
                f"{secret!r} is gone).")
    until = (f"until {purge:%Y-%m-%d %H:%M} UTC" if purge is not None else
             "for the vault's soft-delete retention period (keyVaultRetentionInDays, 90 days "
             "by default)")
    return (f"Key Vault keeps the deleted secret {secret!r} {until}. With purge protection, "
            "as the deployed vault has, nobody can purge it sooner, so the id "
            f"{tenant_id!r} cannot be used for a new tenant before then.")
