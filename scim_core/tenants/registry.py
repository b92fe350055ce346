"""The tenant registry: which tenants exist and their state; in memory, and cached."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Protocol

from scim_core.lru import Lru
from scim_core.rate_limit import RateLimit
from scim_core.tenants.model import DEFAULT_TENANT, Tenant, implicit_default


class TenantExists(Exception):
    """A tenant with that id is already registered."""


class TenantMissing(Exception):
    """No tenant with that id is registered."""


class TenantMoved(Exception):
    """The tenant's registry row changed since it was read (its etag moved on)."""


class TenantRegistry(Protocol):
    """Registered tenants, by id."""

    def get(self, tenant_id: str) -> Tenant | None:
        """The registered tenant, or None."""
        ...

    def create(self, tenant: Tenant) -> Tenant:
        """Register a new tenant; ``TenantExists`` when the id is taken. Returns it with its
        etag."""
        ...

    def update(self, tenant: Tenant) -> Tenant:
        """Replace a registered tenant's name, state and epoch; ``TenantMissing`` when it is
        not registered, ``TenantMoved`` when ``tenant.etag`` is given and the row changed
        since (so a state change never undoes another). Returns it with its new etag."""
        ...

    def delete(self, tenant_id: str) -> None:
        """Forget a tenant (its data must be gone first); deleting a missing one is a no-op."""
        ...

    def list(self) -> Iterator[Tenant]:
        """Every registered tenant, by id."""
        ...


class MemoryTenantRegistry:
    """Tenants in process memory (the memory store's registry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, Tenant] = {}
        self._etags = itertools.count(1)

    def get(self, tenant_id: str) -> Tenant | None:
        """The registered tenant, or None."""
        with self._lock:
            return self._tenants.get(tenant_id)

    def create(self, tenant: Tenant) -> Tenant:
        """Register a new tenant."""
        with self._lock:
            if tenant.id in self._tenants:
                raise TenantExists(tenant.id)
            stored = self._tenants[tenant.id] = replace(tenant, etag=str(next(self._etags)))
            return stored

    def update(self, tenant: Tenant) -> Tenant:
        """Replace a registered tenant."""
        with self._lock:
            current = self._tenants.get(tenant.id)
            if current is None:
                raise TenantMissing(tenant.id)
            if tenant.etag is not None and tenant.etag != current.etag:
                raise TenantMoved(tenant.id)
            stored = self._tenants[tenant.id] = replace(tenant, etag=str(next(self._etags)))
            return stored

    def delete(self, tenant_id: str) -> None:
        """Forget a tenant."""
        with self._lock:
            self._tenants.pop(tenant_id, None)

    def list(self) -> Iterator[Tenant]:
        """Every registered tenant, by id."""
        with self._lock:
            return iter(sorted(self._tenants.values(), key=lambda t: t.id))


ABSENT_CACHE_SIZE = 4_096
"""Ids found to have no tenant, remembered apart from the known tenants."""
UNKNOWN_READS_PER_SECOND = 20.0
"""Registry reads per second and process that may find no tenant (``burst`` at once): even
50 instances under a flood stay at half the registry partition's ~2,000 reads a second."""
UNKNOWN_READS_BURST = 100


class CachedTenants:
    """Registry reads for serving requests. A registered tenant is remembered for ``ttl``
    seconds, at most ``size`` of them, least recently used first out; the default tenant is
    served as enabled until someone registers it.

    Ids with no tenant are remembered apart (at most ``absent_size``, also for ``ttl``), so
    a flood of random ids cannot push known tenants out. Ids not known here are read while
    fewer than ``burst`` reads found nothing, refilled at ``reads_per_second``; past that
    they are answered as absent without a read and not remembered. A read that finds a
    tenant costs no budget, so a cold process can take up any number of real tenants. A
    known tenant whose entry has expired is re-read whatever that budget says."""

    def __init__(self, registry: TenantRegistry, *, ttl: float = 60.0, size: int = 20_000,
                 clock: Callable[[], float] = time.monotonic,
                 absent_size: int = ABSENT_CACHE_SIZE,
                 reads_per_second: float = UNKNOWN_READS_PER_SECOND,
                 burst: int = UNKNOWN_READS_BURST) -> None:
        self.registry = registry
        self._ttl = ttl
        self._clock = clock
        self._entries: Lru[str, tuple[float, Tenant]] = Lru(size)
        self._absent: Lru[str, float] = Lru(absent_size)
        self._unknown_reads = RateLimit(reads_per_second, burst, clock=clock)

    def get(self, tenant_id: str) -> Tenant | None:
        """The tenant as registered (cached), or None when there is none (or when reading
        one more unknown id now would exceed the budget)."""
        now = self._clock()
        entry = self._entries.get(tenant_id)
        if entry is not None:
            if now - entry[0] < self._ttl:
                return entry[1]
            return self._read(tenant_id, now)
        absent_since = self._absent.get(tenant_id)
        if absent_since is not None and now - absent_since < self._ttl:
            return None
        if tenant_id == DEFAULT_TENANT:
            return self._read(tenant_id, now)
        if not self._unknown_reads.take():
            return None
        found = self._read(tenant_id, now)
        if found is not None:
            self._unknown_reads.give_back()  # the budget counts the ids found absent
        return found

    def _read(self, tenant_id: str, now: float) -> Tenant | None:
        found = self.registry.get(tenant_id)
        if found is None and tenant_id == DEFAULT_TENANT:
            found = implicit_default()
        if found is None:
            self._entries.pop(tenant_id)
            self._absent.put(tenant_id, now)
        else:
            self._absent.pop(tenant_id)
            self._entries.put(tenant_id, (now, found))
        return found

    def forget(self, tenant_id: str) -> None:
        """Drop what is cached of a tenant (after this process changed it)."""
        self._entries.pop(tenant_id)
        self._absent.pop(tenant_id)

    def __len__(self) -> int:
        """How many registered tenants are cached."""
        return len(self._entries)
