"""Bearer tokens kept as the versions of one Key Vault secret, cached, rotatable without
downtime (docs/architecture.md, "Key Vault token source")."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from scim_core.auth.source import constant_time_in, constant_time_which
from scim_core.config import Settings, SettingsError
from scim_core.errors import ServiceUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient, SecretProperties

log = logging.getLogger(__name__)

ACCEPTED_VERSIONS = 2
DEFAULT_MIN_REFRESH_INTERVAL = 5.0
DEFAULT_WAIT_SECONDS = 10.0

# Key Vault answers in milliseconds; a request thread must not hang on it for long.
FAST_FAIL_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 2,
    "connection_timeout": 3,
    "read_timeout": 5,
    "timeout": 10,  # the retry policy's budget for one operation, retries included
}

_EPOCH = datetime.fromtimestamp(0, UTC)


def newest_first(versions: Iterable[SecretProperties]) -> list[SecretProperties]:
    """Versions sorted newest first by ``created_on``; ties broken by version id."""
    return sorted(versions, key=lambda p: (p.created_on or _EPOCH, p.version or ""), reverse=True)


def is_valid(props: SecretProperties, now: float) -> bool:
    """Enabled, past ``not_before`` and before ``expires_on`` at ``now`` (Unix seconds).

    An unknown ``enabled`` counts as disabled: never accept in doubt.
    """
    if props.enabled is not True:
        return False
    return _in_window(now, _timestamp(props.not_before), _timestamp(props.expires_on))


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _in_window(now: float, not_before: float | None, expires_on: float | None) -> bool:
    if not_before is not None and now < not_before:
        return False
    return expires_on is None or now < expires_on


def describe_error(exc: BaseException) -> str:
    """The exception type and, for HTTP errors, the status and Key Vault error codes.

    Free text from exceptions is left out on purpose: it is not ours to vouch for.
    """
    text = type(exc).__name__
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        text += f", HTTP {exc.status_code}"
        codes = _error_codes(exc)
        if codes:
            text += f", {'/'.join(codes)}"
    return text


def _error_codes(exc: HttpResponseError) -> list[str]:
    error = exc.error
    if error is None:
        return []
    codes = [str(error.code)] if error.code else []
    inner = getattr(error, "innererror", None)
    if isinstance(inner, dict) and inner.get("code"):
        codes.append(str(inner["code"]))
    return codes


def is_secret_disabled(exc: HttpResponseError) -> bool:
    """Key Vault's answer to reading a disabled version: 403 with inner code SecretDisabled."""
    return exc.status_code == 403 and "SecretDisabled" in _error_codes(exc)


@dataclass(frozen=True)
class _Accepted:
    version: str
    value: str = field(repr=False)
    expires_on: float | None


@dataclass(frozen=True)
class _Snapshot:
    accepted: tuple[_Accepted, ...]
    loaded_at: float
    generation: int


class KeyVaultTokenSource:
    """A ``TokenSource`` backed by the versions of one Key Vault secret: the newest two valid
    ones (docs/architecture.md, "Key Vault token source")."""

    def __init__(
        self,
        client: SecretClient,
        secret_name: str,
        *,
        cache_seconds: float = 60.0,
        min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_name:
            raise ValueError("secret_name must not be empty")
        if cache_seconds < 0 or min_refresh_interval < 0 or wait_seconds < 0:
            raise ValueError("cache_seconds, min_refresh_interval and wait_seconds must be >= 0")
        self._client = client
        self._secret_name = secret_name
        self._cache_seconds = cache_seconds
        self._min_refresh_interval = min_refresh_interval
        self._wait_seconds = wait_seconds
        self._clock = clock
        self._retry_after = max(1, math.ceil(min_refresh_interval))
        # A token not in the cache reloads at most this often: often enough that a rotation's
        # new token is accepted within one cache interval (and at most 5 s by default), rarely
        # enough that a flood of wrong tokens cannot hammer the vault (at least 1 s apart).
        self._unknown_interval = min(max(cache_seconds, 1.0), min_refresh_interval)
        # Nothing reads the vault twice within a second (so a zero TTL behaves as one second).
        self._read_gap = min(1.0, min_refresh_interval)
        self._lock = threading.Lock()  # held for the whole of a refresh: one at a time
        # Written only under _lock; read without it (a reference read is atomic).
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float | None = None
        self._last_failure: float | None = None

    def __repr__(self) -> str:
        snapshot = self._snapshot
        cached = "none" if snapshot is None else str(len(snapshot.accepted))
        return (
            f"KeyVaultTokenSource(vault_url={self._client.vault_url!r}, "
            f"secret_name={self._secret_name!r}, cached_versions={cached})"
        )

    @property
    def secret_name(self) -> str:
        """The name of the Key Vault secret whose versions are the tokens."""
        return self._secret_name

    def close(self) -> None:
        """Close the Key Vault client."""
        self._client.close()

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is an accepted version's value; refreshes the cache as needed."""
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._load_cold()
        elif self._is_stale(snapshot):
            snapshot = self._refresh_stale(snapshot)
        if self._matches(presented, snapshot):
            return True
        newer = self._refresh_for_unknown(snapshot)
        return newer is not None and self._matches(presented, newer)

    def version_of(self, presented: str) -> str | None:
        """The cached version whose value is ``presented`` (no vault call); None when
        none is, or nothing is cached."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        now = self._clock()
        return constant_time_which(presented, ((a.version, a.value) for a in snapshot.accepted
                                               if _in_window(now, None, a.expires_on)))

    # decisions ---------------------------------------------------------------------------

    def _matches(self, presented: str, snapshot: _Snapshot) -> bool:
        now = self._clock()
        live = [a.value for a in snapshot.accepted if _in_window(now, None, a.expires_on)]
        return constant_time_in(presented, live)

    def _is_stale(self, snapshot: _Snapshot) -> bool:
        age = self._clock() - snapshot.loaded_at
        return not 0 <= age < self._cache_seconds  # a clock stepping back counts as stale

    def _backing_off(self) -> bool:
        """Key Vault failed less than ``min_refresh_interval`` ago: do not ask it again yet."""
        return self._within(self._last_failure, self._min_refresh_interval)

    def _throttled_for_stale(self) -> bool:
        """Key Vault failed recently, or was read less than a second ago."""
        return self._backing_off() or self._within(self._last_attempt, self._read_gap)

    def _throttled_for_unknown(self) -> bool:
        """Too soon after the last read to read again for a token that is not cached."""
        return self._backing_off() or self._within(self._last_attempt, self._unknown_interval)

    def _within(self, since: float | None, interval: float) -> bool:
        return since is not None and 0 <= self._clock() - since < interval

    def _newer_than(self, seen: _Snapshot) -> _Snapshot | None:
        current = self._snapshot
        return current if current is not None and current.generation != seen.generation else None

    def _unavailable(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            "The bearer token cannot be verified right now; retry later.",
            retry_after=self._retry_after,
        )

    # the three refresh paths ---------------------------------------------------------------

    def _load_cold(self) -> _Snapshot:
        if not self._lock.acquire(timeout=self._wait_seconds):
            raise self._unavailable()
        try:
            snapshot = self._snapshot
            if snapshot is not None:
                return snapshot
            if self._backing_off():
                raise self._unavailable()
            snapshot = self._refresh_locked()
            if snapshot is None:
                raise self._unavailable()
            return snapshot
        finally:
            self._lock.release()

    def _refresh_stale(self, snapshot: _Snapshot) -> _Snapshot:
        # Once the cache interval has passed only a recent failure (or a read within the last
        # second) holds back a reload: a retired token stops within the interval plus one
        # reload, not at the next multiple of min_refresh_interval.
        if self._throttled_for_stale() or not self._lock.acquire(blocking=False):
            return self._newer_than(snapshot) or snapshot
        try:
            newer = self._newer_than(snapshot)
            if newer is not None:
                return newer
            if self._throttled_for_stale():
                return snapshot
            fresh = self._refresh_locked()
            if fresh is None:
                log.warning(
                    "Serving %d cached bearer-token version(s) of secret %r loaded %.0f s ago "
                    "until Key Vault answers again.",
                    len(snapshot.accepted),
                    self._secret_name,
                    self._clock() - snapshot.loaded_at,
                )
                return snapshot
            return fresh
        finally:
            self._lock.release()

    def _refresh_for_unknown(self, seen: _Snapshot) -> _Snapshot | None:
        """A token not in the cache: reload unless throttled; wait for a refresh in progress."""
        if self._throttled_for_unknown() and not self._lock.locked():
            return self._newer_than(seen)
        if not self._lock.acquire(timeout=self._wait_seconds):
            return self._newer_than(seen)
        try:
            newer = self._newer_than(seen)
            if newer is not None or self._throttled_for_unknown():
                return newer
            log.debug("Presented bearer token is not cached; reloading from Key Vault.")
            return self._refresh_locked()
        finally:
            self._lock.release()

    # Key Vault -----------------------------------------------------------------------------

    def _refresh_locked(self) -> _Snapshot | None:
        """Reload under ``_lock``; the new snapshot, or None when Key Vault failed."""
        started = self._clock()
        self._last_attempt = started
        try:
            accepted = self._fetch(started)
        except Exception as exc:  # any failure is "cannot decide", never a 500
            self._last_failure = started
            log.warning(
                "Could not read bearer-token secret %r from Key Vault (%s).",
                self._secret_name,
                describe_error(exc),
            )
            return None
        self._last_failure = None
        previous = self._snapshot
        generation = 1 if previous is None else previous.generation + 1
        snapshot = _Snapshot(accepted, started, generation)
        self._snapshot = snapshot
        versions = [a.version for a in accepted]
        if previous is None or versions != [a.version for a in previous.accepted]:
            log.info(
                "Bearer-token secret %r: accepting version(s) %s.",
                self._secret_name,
                ", ".join(versions) or "none",
            )
        if not accepted:
            log.warning(
                "Bearer-token secret %r has no valid version; every request is refused. "
                "Create one with: python -m scim_core.admin rotate-token [--tenant ID]",
                self._secret_name,
            )
        return snapshot

    def _fetch(self, now: float) -> tuple[_Accepted, ...]:
        try:
            versions = list(self._client.list_properties_of_secret_versions(self._secret_name))
        except ResourceNotFoundError:
            versions = []
        accepted: list[_Accepted] = []
        for props in newest_first(v for v in versions if is_valid(v, now)):
            if len(accepted) == ACCEPTED_VERSIONS:
                break
            version = props.version or ""
            try:
                secret = self._client.get_secret(self._secret_name, version)
            except ResourceNotFoundError:
                continue  # deleted since it was listed
            except HttpResponseError as exc:
                if is_secret_disabled(exc):
                    continue  # disabled since it was listed
                raise
            if secret.value:
                expires = _timestamp(secret.properties.expires_on)
                accepted.append(_Accepted(version, secret.value, expires))
        return tuple(accepted)


def secret_client(
    vault_url: str, credential: TokenCredential, **client_kwargs: Any
) -> SecretClient:
    """A ``SecretClient`` that fails fast (``FAST_FAIL_CLIENT_OPTIONS``, overridable)."""
    from azure.keyvault.secrets import SecretClient

    options = {**FAST_FAIL_CLIENT_OPTIONS, **client_kwargs}
    return SecretClient(vault_url=vault_url, credential=credential, **options)


def keyvault_token_source(
    settings: Settings,
    *,
    credential: TokenCredential | None,
    client: SecretClient | None = None,
    min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
    clock: Callable[[], float] = time.time,
    **client_kwargs: Any,
) -> KeyVaultTokenSource:
    """The production token source: ``SCIM_KEYVAULT_URL`` / ``SCIM_TOKEN_SECRET_NAME`` read
    through ``client`` when given (the one the app shares with its other tenants; then
    ``credential`` may be None), else through a new client with ``credential``."""
    if not settings.keyvault_url:
        raise SettingsError("SCIM_KEYVAULT_URL must be set to read the bearer token from Key Vault")
    if client is None:
        if credential is None:
            raise TypeError("keyvault_token_source needs a credential or a client")
        client = secret_client(settings.keyvault_url, credential, **client_kwargs)
    return KeyVaultTokenSource(
        client,
        settings.token_secret_name,
        cache_seconds=settings.token_cache_seconds,
        min_refresh_interval=min_refresh_interval,
        clock=clock,
    )
