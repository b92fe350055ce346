"""API keys of the management API: shown once, kept as a SHA-256 hash (a key holds 256
random bits, so no slow hash is needed), each with a scope and optionally one tenant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from scim_core.manage.rows import SideRows
from scim_core.tenants.model import check_tenant_id

KEYS_PARTITION = "$apikeys"
"""Outside every tenant's partition: tenant ids never hold ``$``."""
KEY_PREFIX = "smk_"
"""Every API key starts so; a SCIM bearer token never does (it is 43 URL-safe characters
of ``token_urlsafe``, and never accepted here anyway)."""
MANAGE = "manage"
READ = "read"
SCOPES = (MANAGE, READ)
MAX_DESCRIPTION = 200
_KEY = re.compile(r"smk_([a-z2-7]{16})_([A-Za-z0-9_-]{43})")


class InvalidKeyRequest(ValueError):
    """A key that cannot be created as asked."""


@dataclass(frozen=True)
class ApiKey:
    """An API key's metadata (never its value)."""

    id: str
    scope: str
    tenant: str | None
    description: str
    created: str
    revoked: str | None = None

    def document(self) -> dict[str, object]:
        """The key as the API shows it."""
        return {"id": self.id, "scope": self.scope, "tenant": self.tenant,
                "description": self.description, "created": self.created,
                "revoked": self.revoked}


@dataclass(frozen=True)
class Principal:
    """Who a management request acts as: a key's or a token's id, its scope and, when it
    is bound to one, its tenant."""

    id: str
    scope: str
    tenant: str | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class ApiKeys:
    """Create, list, revoke and check API keys kept in ``rows``. A key checked once is
    remembered for ``cache_seconds`` (a revocation reaches every process within it)."""

    def __init__(self, rows: SideRows, *, cache_seconds: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._rows = rows
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def create(self, scope: str, *, tenant: str | None = None, description: str = ""
               ) -> tuple[ApiKey, str]:
        """A new key and its value (shown once: only its hash is kept)."""
        if scope not in SCOPES:
            raise InvalidKeyRequest(f"a scope is one of {', '.join(SCOPES)}, not {scope[:40]!r}")
        if tenant is not None:
            check_tenant_id(tenant)
        description = " ".join(description.split())
        if len(description) > MAX_DESCRIPTION:
            raise InvalidKeyRequest(f"a description is at most {MAX_DESCRIPTION} characters")
        key_id = _base32(10)
        value = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = ApiKey(key_id, scope, tenant, description, now)
        self._rows.insert(KEYS_PARTITION, key_id, {
            "hash": digest(value), "scope": scope, "tenant": tenant or "",
            "description": description, "created": now, "revoked": ""})
        return key, value

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, by id."""
        return [_key(key_id, row) for key_id, row in self._rows.scan(KEYS_PARTITION)]

    def get(self, key_id: str) -> ApiKey | None:
        """One key's metadata."""
        if not re.fullmatch(r"[a-z2-7]{16}", key_id):
            return None
        row = self._rows.get(KEYS_PARTITION, key_id)
        return None if row is None else _key(key_id, row)

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (kept, marked revoked); None when there is no such key."""
        row = self._rows.get(KEYS_PARTITION, key_id) if re.fullmatch(
            r"[a-z2-7]{16}", key_id) else None
        if row is None:
            return None
        if not row.get("revoked"):
            row["revoked"] = datetime.fromtimestamp(self._clock(), UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            self._rows.replace(KEYS_PARTITION, key_id, row)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items()
                           if v[1] is None or v[1].id != "key:" + key_id}
        return _key(key_id, row)

    def check(self, presented: str) -> Principal | None:
        """The principal of a valid key, or None; one point read per key and cache interval."""
        match = _KEY.fullmatch(presented)
        if match is None:
            return None
        hashed = digest(presented)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(hashed)
        if cached is not None and 0 <= now - cached[0] < self._cache_seconds:
            return cached[1]
        row = self._rows.get(KEYS_PARTITION, match.group(1))
        principal = None
        if row is not None and not row.get("revoked") and hmac.compare_digest(
                str(row.get("hash", "")), hashed):
            principal = Principal("key:" + match.group(1), str(row["scope"]),
                                  str(row.get("tenant") or "") or None)
        with self._lock:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[hashed] = (now, principal)
        return principal


def _base32(n: int) -> str:
    return base64.b32encode(secrets.token_bytes(n)).decode("ascii").lower()[:16]


def _key(key_id: str, row: dict[str, object]) -> ApiKey:
    return ApiKey(key_id, str(row.get("scope", "")), str(row.get("tenant") or "") or None,
                  str(row.get("description") or ""), str(row.get("created") or ""),
                  str(row.get("revoked") or "") or None)
