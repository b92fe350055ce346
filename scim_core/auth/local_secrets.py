"""Tenant tokens without Key Vault: each version kept only as a salted hash, beside the data
(``scim_core.store.secrets``), and verified on the request path (docs/architecture.md,
"Local secrets")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from scim_core.auth.secrets import DeletedSecret, SecretStoreError, TokenVersion
from scim_core.config import Settings, SettingsError
from scim_core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

HASH_SCHEME = "pbkdf2-sha256"
HASH_ITERATIONS = 1_000
"""Tokens are 256 random bits (``MIN_TOKEN_CHARS`` enforces at least 192), so stretching adds
nothing against guessing; the count is kept low because every cache miss on the request
path (a new or a wrong token) verifies against up to two versions. Each hash records its
own count, so raising it later leaves older versions readable."""
SALT_BYTES = 16
MIN_TOKEN_CHARS = 32
ACCEPTED_VERSIONS = 2
MIN_REFRESH_INTERVAL = 1.0
VERIFIED_CACHE_SIZE = 256
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode(token: str) -> bytes:
    return token.encode("utf-8", "surrogatepass")


def hash_token(token: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None
               ) -> str:
    """``pbkdf2-sha256$<iterations>$<salt>$<digest>`` of ``token``, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", _encode(token), salt, iterations)
    return f"{HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_token(token: str, stored: str) -> bool:
    """Whether ``token`` is the one ``stored`` (a ``hash_token`` result) was made from; a
    malformed ``stored`` matches nothing."""
    try:
        scheme, rounds, salt, digest = stored.split("$")
        iterations = int(rounds)
        if scheme != HASH_SCHEME or not 1 <= iterations <= 10_000_000:
            return False
        expected = _unb64(digest)
        actual = hashlib.pbkdf2_hmac("sha256", _encode(token), _unb64(salt), iterations)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class StoredVersion:
    """One local version: its hash, never its token. Times in Unix seconds."""

    name: str
    version: str
    token_hash: str = field(repr=False)
    created: float
    updated: float
    enabled: bool = True
    not_before: float | None = None
    expires_on: float | None = None

    def valid_at(self, now: float) -> bool:
        """Enabled, past ``not_before`` and before ``expires_on``."""
        return self.enabled and (self.not_before is None or now >= self.not_before) and \
            self.in_window(now)

    def in_window(self, now: float) -> bool:
        """Not expired at ``now``."""
        return self.expires_on is None or now < self.expires_on

    def described(self) -> TokenVersion:
        """Its attributes as ``TokenVersion``."""
        return TokenVersion(self.version, _moment(self.created), self.enabled,
                            _moment(self.not_before), _moment(self.expires_on),
                            f"local secret {self.name} version {self.version}")


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class VersionRows(Protocol):
    """Where local versions are kept (a table's ``$secrets`` partition, or memory)."""

    @property
    def location(self) -> str:
        """Where, for messages (never an account key)."""
        ...

    def list(self, name: str) -> list[StoredVersion]:
        """The versions of ``name`` (case-insensitive), oldest first."""
        ...

    def put(self, version: StoredVersion) -> None:
        """Store a new version or replace a stored one."""
        ...

    def delete(self, name: str) -> int:
        """Remove every version of ``name``; how many there were."""
        ...


class LocalSecrets:
    """``SecretStore`` over ``VersionRows``, with Key Vault's rules for versions (creation
    order, disabled versions never accepted) but no soft delete: a deleted secret is gone at
    once. A version's token is shown once, by whoever created it; only its hash is kept."""

    keeps_values = False

    def __init__(self, rows: VersionRows, *, clock: Callable[[], float] = time.time) -> None:
        self._rows = rows
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalSecrets({self.location!r})"

    @property
    def location(self) -> str:
        """Where the hashes are kept."""
        return self._rows.location

    def versions(self, name: str) -> list[TokenVersion]:
        """Every version's attributes, oldest first."""
        return [v.described() for v in self._rows.list(_check(name))]

    def add(self, name: str, token: str) -> TokenVersion:
        """Keep the salted hash of ``token`` as the newest version of ``name``."""
        _check(name)
        if len(token) < MIN_TOKEN_CHARS:
            raise SecretStoreError(f"a token must have at least {MIN_TOKEN_CHARS} characters")
        now = self._now(name)
        made = StoredVersion(name, _version_id(now), hash_token(token), now, now)
        self._rows.put(made)
        return made.described()

    def disable(self, name: str, version: str) -> None:
        """Disable one version."""
        for found in self._rows.list(_check(name)):
            if found.version == version:
                self._rows.put(replace(found, enabled=False, updated=self._clock()))
                return
        raise SecretStoreError(f"secret {name!r} has no version {version!r} in {self.location}")

    def delete(self, name: str) -> DeletedSecret:
        """Remove every version at once: the name is free again."""
        return DeletedSecret(self._rows.delete(_check(name)) > 0, False, None)

    def read(self, name: str) -> str | None:
        """Nothing: local secrets keep no plain values."""
        return None

    def token_source(self, name: str, *, cache_seconds: float) -> LocalTokenSource:
        """Verifies presented tokens against the newest two valid versions' hashes."""
        _check(name)
        return LocalTokenSource(lambda: self._rows.list(name), name,
                                cache_seconds=cache_seconds, clock=self._clock)

    def close(self) -> None:
        """Nothing to close (the store owns its table client)."""

    def _now(self, name: str) -> float:
        """Now, but after the newest version's creation: versions of one secret are
        strictly ordered even when created within one clock tick."""
        now = self._clock()
        versions = self._rows.list(name)
        if versions and now <= versions[-1].created:
            now = versions[-1].created + 1e-6
        return now


def _check(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SecretStoreError(f"{name!r} is not a valid secret name")
    return name


def _version_id(created: float) -> str:
    """32 hex digits like Key Vault's; the first 16 are the creation time, so ids sort in
    creation order."""
    return f"{int(created * 1_000_000):016x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class _Snapshot:
    accepted: tuple[StoredVersion, ...]
    loaded_at: float


class LocalTokenSource:
    """A ``TokenSource`` over the hashes of one local secret's newest two valid versions.

    The versions are re-read after ``cache_seconds``, and at once (at most once per
    ``MIN_REFRESH_INTERVAL``) when an unknown token is presented. A token that verified is
    remembered by its SHA-256 (``VERIFIED_CACHE_SIZE`` of them), so the salted hash is
    computed only on a cache miss; a retired version stops matching at the next re-read.
    """

    def __init__(self, load: Callable[[], list[StoredVersion]], name: str, *,
                 cache_seconds: float, min_refresh_interval: float = MIN_REFRESH_INTERVAL,
                 clock: Callable[[], float] = time.time) -> None:
        self._load = load
        self._name = name
        self._cache_seconds = cache_seconds
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float | None = None
        self._verified: dict[bytes, str] = {}

    def __repr__(self) -> str:
        return f"LocalTokenSource({self._name!r})"

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is a valid version's token; ``ServiceUnavailable`` when the
        versions cannot be read and none are cached."""
        snapshot = self._current()
        if self._matches(presented, snapshot):
            return True
        newer = self._reload(snapshot, unknown=True)
        return newer is not snapshot and self._matches(presented, newer)

    def version_of(self, presented: str) -> str | None:
        """The version ``presented`` verified against (remembered by its SHA-256 when it
        was accepted: no hash is derived and nothing is read); None when unknown."""
        snapshot = self._snapshot
        known = self._verified.get(hashlib.sha256(_encode(presented)).digest())
        if snapshot is None or known is None:
            return None
        now = self._clock()
        return known if any(v.version == known and v.in_window(now)
                            for v in snapshot.accepted) else None

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._reload(None, unknown=False)
        elif not 0 <= self._clock() - snapshot.loaded_at < self._cache_seconds:
            snapshot = self._reload(snapshot, unknown=False)
        return snapshot

    def _reload(self, seen: _Snapshot | None, *, unknown: bool) -> _Snapshot:
        """A new snapshot, or ``seen`` when throttled or the store failed."""
        with self._lock:
            current = self._snapshot
            if current is not None and current is not seen:
                return current  # another thread reloaded meanwhile
            now = self._clock()
            last = self._last_attempt
            if seen is not None and last is not None and \
                    0 <= now - last < self._min_refresh_interval:
                return seen
            self._last_attempt = now
            try:
                versions = self._load()
            except Exception as exc:  # any failure is "cannot decide", never a 500
                log.warning("Could not read local token secret %r (%s).", self._name,
                            type(exc).__name__)
                if seen is None:
                    raise ServiceUnavailable(
                        "The bearer token cannot be verified right now; retry later.",
                        retry_after=5) from None
                return seen
            valid = [v for v in versions if v.valid_at(now)]
            valid.sort(key=lambda v: (v.created, v.version), reverse=True)
            fresh = _Snapshot(tuple(valid[:ACCEPTED_VERSIONS]), now)
            self._snapshot = fresh
            if unknown or seen is None or \
                    [v.version for v in seen.accepted] != [v.version for v in fresh.accepted]:
                log.debug("Local token secret %r: %d accepted version(s).", self._name,
                          len(fresh.accepted))
            return fresh

    def _matches(self, presented: str, snapshot: _Snapshot) -> bool:
        now = self._clock()
        live = [v for v in snapshot.accepted if v.in_window(now)]
        key = hashlib.sha256(_encode(presented)).digest()
        known = self._verified.get(key)
        if known is not None:
            return any(v.version == known for v in live)
        matched = None
        for version in live:  # every candidate: timing does not say which one matched
            if verify_token(presented, version.token_hash):
                matched = version.version
        if matched is None:
            return False
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[key] = matched
        return True


def check_local_secrets_allowed(settings: Settings) -> None:
    """Refuse local secrets in Azure (a Functions host sets ``WEBSITE_SITE_NAME`` or
    ``WEBSITE_INSTANCE_ID``) unless ``SCIM_ALLOW_LOCAL_SECRETS=true``: there the tokens
    belong in Key Vault, out of reach of the table's readers."""
    if settings.azure_host and not settings.allow_local_secrets:
        raise SettingsError(
            f"this app runs in Azure ({settings.azure_host} is set) without SCIM_KEYVAULT_URL, "
            "so its tenants' tokens would be kept in its table: set SCIM_KEYVAULT_URL, or "
            "SCIM_ALLOW_LOCAL_SECRETS=true to keep them there (as salted hashes) on purpose")
