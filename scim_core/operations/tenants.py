"""The tenant state machine as a Python API: create, list, show, disable, enable and delete
tenants, and their Tenant URLs; rotating, retiring and cancelling tokens is checked against
the tenant here and done by ``TokenAdmin`` (``operations.tokens``). The commands of
``python -m scim_core.admin``, the management API and a vendor's own console call the same
methods; this module neither parses arguments nor prints, and builds no store, secret store
or credential: ``scim_core.app.build_admin`` does (docs/architecture.md, "Tenants").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from azure.core.exceptions import AzureError

from scim_core.auth.keyvault_secrets import TAGS, explain_vault_error
from scim_core.auth.secrets import SecretStore, SecretStoreError
from scim_core.config import Settings
from scim_core.events import drafts
from scim_core.events.model import EventType
from scim_core.operations.tenant_urls import (
    DEFAULT_TENANT_URL_SECRET,
    LOCAL_BASE_URL,
    TenantUrls,
    tenant_url,
)
from scim_core.operations.tokens import (
    TOKEN_BYTES,
    Cancellation,
    Retirement,
    Rotation,
    TokenAdmin,
    TokenError,
    reuse_message,
)
from scim_core.retry import TENANT_STATE
from scim_core.store.base import Store
from scim_core.store.errors import NotEmpty, StoreError, TenantGone
from scim_core.tenants.model import (
    DEFAULT_TENANT,
    DELETING,
    DISABLED,
    ENABLED,
    InvalidTenant,
    Tenant,
    check_name,
    check_tenant_id,
    implicit_default,
    new_tenant_id,
)
from scim_core.tenants.registry import TenantExists, TenantMissing, TenantMoved

DEFAULT_STEP_ROWS = 1000
_STATE_EVENTS = {DISABLED: EventType.TENANT_DISABLED, ENABLED: EventType.TENANT_ENABLED}


class TenantAdminError(Exception):
    """A failed admin operation, explained in one line (never containing a token)."""


__all__ = ["DEFAULT_TENANT_URL_SECRET", "LOCAL_BASE_URL", "TAGS", "TOKEN_BYTES", "Cancellation",
           "Deletion", "Retirement", "Rotation", "TenantAdmin", "TenantAdminError", "explain",
           "tenant_url"]


@dataclass(frozen=True)
class Deletion:
    """What ``delete`` did. ``reusable_after``: when the id can be given to a new tenant
    (None: at once); ``message`` says so in words."""

    tenant_id: str
    rows: int
    secret_name: str
    secret_deleted: bool
    soft_deleted: bool
    reusable_after: datetime | None
    message: str


class TenantAdmin:
    """The tenants of ``store`` (their data and the registry), with their tokens in
    ``secrets`` (Key Vault, or the store's local secrets); ``settings`` names the default
    tenant's secret, the vault and the base URL. ``close()`` calls ``closing`` (what the
    builder made for this object; nothing by default)."""

    def __init__(self, store: Store, secrets: SecretStore, settings: Settings, *,
                 tenant_url_secret: str = DEFAULT_TENANT_URL_SECRET,
                 local_base_url: str = LOCAL_BASE_URL,
                 clock: Callable[[], float] = time.time,
                 closing: Iterable[Callable[[], None]] = ()) -> None:
        self.store = store
        self.secrets = secrets
        self.settings = settings
        self.tokens = TokenAdmin(secrets, default_secret=settings.token_secret_name,
                                 clock=clock)
        self.urls = TenantUrls(secrets, in_vault=self.uses_key_vault, base_url=settings.base_url,
                               secret=tenant_url_secret, local_base_url=local_base_url)
        self._closing = list(closing)
        self._clock = clock

    def __enter__(self) -> TenantAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close what the builder handed over for closing (the clients it made)."""
        closing, self._closing = self._closing, []
        for close in reversed(closing):
            close()

    @property
    def uses_key_vault(self) -> bool:
        """Whether the tokens are in Key Vault (else in the store's local secrets)."""
        return bool(self.settings.keyvault_url)

    @property
    def vault_url(self) -> str:
        """Where the tokens are: the vault's URL, or the store's local secrets."""
        return self.secrets.location

    # tenants -----------------------------------------------------------------------------

    def create(self, name: str, *, tenant_id: str | None = None) -> tuple[Tenant, str]:
        """Register a new enabled tenant with its first token; returns it and the token
        (shown once: only its secret keeps it). ``tenant_id`` is generated unless given. An
        id used before gets a new epoch: nothing of the earlier tenant (rows, token, paging
        or feed cursor) works on the new one; an id whose data is still there is refused."""
        name = _checked(check_name, name)
        chosen = self._new_id(tenant_id)
        now = self._now()
        registry = self.store.tenant_registry()
        try:
            with self._storage():
                registered = registry.create(Tenant(chosen, name, DISABLED, now, now))
        except TenantExists:
            raise TenantAdminError(f"a tenant with id {chosen!r} already exists") from None
        secret = self.tokens.secret_name(chosen)
        view = self.store.tenant(chosen)
        started = False
        try:
            with self._storage():
                try:
                    epoch = view.start_epoch(ENABLED)
                except NotEmpty:
                    raise TenantAdminError(
                        f"the id {chosen!r} still holds data of an earlier tenant; choose "
                        "another id") from None
            started = True
            with self._azure():
                token, _ = self.tokens.write(secret)
                self.tokens.disable_older(secret, keep=1)  # a stale secret's old tokens never count
            with self._storage():
                tenant = registry.update(replace(registered, state=ENABLED, epoch=epoch))
        except BaseException:
            with self._storage():
                if started:
                    view.mark_deleted()  # the feed row is a tombstone again
                registry.delete(chosen)  # nothing was issued: the id is free again
            raise
        return tenant, token

    def list(self) -> list[Tenant]:
        """Every tenant by id, the default one included (implicit until it is changed)."""
        with self._storage():
            found = list(self.store.tenant_registry().list())
        if not any(t.id == DEFAULT_TENANT for t in found):
            found.append(implicit_default())
        return sorted(found, key=lambda t: (t.id != DEFAULT_TENANT, t.id))

    def show(self, tenant_id: str) -> Tenant:
        """The tenant ``tenant_id``."""
        return self._tenant(tenant_id)

    def serving(self, tenant_id: str) -> Tenant:
        """The tenant ``tenant_id``, refused while it is being deleted."""
        tenant = self._tenant(tenant_id)
        if tenant.state == DELETING:
            raise TenantAdminError(self._being_deleted(tenant_id))
        return tenant

    def disable(self, tenant_id: str) -> Tenant:
        """Stop serving the tenant: its Tenant URL answers 403 (data kept) within
        ``SCIM_TENANT_CACHE_SECONDS``."""
        return self._set_state(tenant_id, DISABLED)

    def enable(self, tenant_id: str) -> Tenant:
        """Serve the tenant again (within ``SCIM_TENANT_CACHE_SECONDS``)."""
        return self._set_state(tenant_id, ENABLED)

    def update(self, tenant_id: str, *, name: str | None = None, enabled: bool | None = None,
               precondition: Callable[[Tenant], None] | None = None) -> Tenant:
        """Rename the tenant and/or enable or disable it in one conditional write of its
        registry row; ``precondition`` (e.g. an HTTP If-Match) is checked against the row
        as read, inside that write: it raises to refuse, and is checked again whenever
        another process changed the row first. Nothing changes when nothing differs."""
        name = None if name is None else _checked(check_name, name)
        state = None if enabled is None else ENABLED if enabled else DISABLED

        def change(tenant: Tenant) -> Tenant | None:
            if tenant.state == DELETING:
                raise TenantAdminError(self._being_deleted(tenant_id))
            changed = tenant
            if state is not None and state != tenant.state:
                changed = self._state_change(tenant, state)
            if name is not None and name != tenant.name:
                changed = replace(changed, name=name, changed=self._now())
            return None if changed is tenant else changed

        return self._change(tenant_id, change, precondition=precondition)

    def rename(self, tenant_id: str, name: str, *,
               precondition: Callable[[Tenant], None] | None = None) -> Tenant:
        """Give the tenant a new display name (its id, Tenant URL and tokens stay)."""
        return self.update(tenant_id, name=name, precondition=precondition)

    def delete(self, tenant_id: str, *, step_rows: int = DEFAULT_STEP_ROWS,
               on_progress: Callable[[int], None] | None = None) -> Deletion:
        """Delete a tenant: mark it deleting in the registry (it then answers as unknown,
        401) and on its feed row (from then on no write of any process lands), remove its
        rows ``step_rows`` at a time (``on_progress`` gets the running total), leave the
        feed row as its tombstone, delete its token secret, then its registry row.
        Interrupted, calling it again continues."""
        if _checked(check_tenant_id, tenant_id) == DEFAULT_TENANT:
            raise TenantAdminError("the default tenant is implicit and cannot be deleted; "
                                   "disable it instead")
        if step_rows < 1:
            raise TenantAdminError("step_rows must be at least 1")
        registry = self.store.tenant_registry()
        self._change(tenant_id, lambda tenant: (
            None if tenant.state == DELETING else tenant.with_state(DELETING, self._now())))
        with self._storage():
            view = self.store.tenant(tenant_id)
            view.mark_deleting()
            rows = 0
            while removed := view.purge(limit=step_rows):
                rows += removed
                if on_progress is not None:
                    on_progress(rows)
            view.mark_deleted()
        secret = self.tokens.secret_name(tenant_id)
        with self._azure():
            deleted, purge_date, soft = self.tokens.delete_secret(secret)
        with self._storage():
            registry.delete(tenant_id)
        return Deletion(tenant_id, rows, secret, deleted, soft, purge_date,
                        reuse_message(tenant_id, secret, soft, purge_date))

    # tokens ------------------------------------------------------------------------------

    def rotate_token(self, tenant_id: str = DEFAULT_TENANT) -> str:
        """A new token for the tenant; the previous one stays valid until ``retire_token``."""
        return self.rotate(tenant_id).token

    def rotate(self, tenant_id: str = DEFAULT_TENANT) -> Rotation:
        """``rotate_token`` with what a console or command shows around the token."""
        self._serving(tenant_id)
        tenant_url = self._tenant_url(tenant_id)  # read first: fail before writing
        with self._azure():
            return self.tokens.rotate(tenant_id, tenant_url=tenant_url)

    def retire_token(self, tenant_id: str = DEFAULT_TENANT) -> Retirement:
        """Disable every version older than the newest valid one; the app stops accepting
        them within ``SCIM_TOKEN_CACHE_SECONDS``."""
        self._serving(tenant_id)
        with self._azure():
            return self.tokens.retire(tenant_id)

    def cancel_rotation(self, tenant_id: str = DEFAULT_TENANT) -> Cancellation:
        """Undo a pending rotation whose new token was lost: disable the newest version; the
        previous token stays accepted, and ``rotate_token`` can run again."""
        self._serving(tenant_id)
        with self._azure():
            return self.tokens.cancel_rotation(tenant_id)

    def endpoint(self, tenant_id: str = DEFAULT_TENANT) -> str:
        """The tenant's Tenant URL, to paste into Entra."""
        self._serving(tenant_id)
        found = self._tenant_url(tenant_id)
        if found is None:
            raise TenantAdminError(self.missing_tenant_url())
        return found

    def missing_tenant_url(self) -> str:
        """Why no Tenant URL is known (Key Vault without the deployment's URL secret)."""
        return self.urls.missing()

    # internals: tenants ------------------------------------------------------------------

    def _new_id(self, tenant_id: str | None) -> str:
        if tenant_id is None:
            return new_tenant_id()
        if _checked(check_tenant_id, tenant_id) == DEFAULT_TENANT:
            raise TenantAdminError("'default' is the implicit tenant of /scim/v2; it cannot be "
                                   "created (rotate its token with rotate-token)")
        return tenant_id

    def _tenant(self, tenant_id: str) -> Tenant:
        _checked(check_tenant_id, tenant_id)
        with self._storage():
            found = self.store.tenant_registry().get(tenant_id)
        if found is None and tenant_id == DEFAULT_TENANT:
            return implicit_default()
        if found is None:
            raise TenantAdminError(f"no tenant with id {tenant_id!r}")
        return found

    def _serving(self, tenant_id: str) -> None:
        """Refuse a tenant that is not registered or is being deleted; the default tenant
        is always there (and no store is reached for it)."""
        if _checked(check_tenant_id, tenant_id) == DEFAULT_TENANT:
            return
        if self._tenant(tenant_id).state == DELETING:
            raise TenantAdminError(self._being_deleted(tenant_id))

    def _set_state(self, tenant_id: str, state: str) -> Tenant:
        def change(tenant: Tenant) -> Tenant:
            if tenant.state == DELETING:
                raise TenantAdminError(self._being_deleted(tenant_id))
            return self._state_change(tenant, state)

        return self._change(tenant_id, change)

    def _state_change(self, tenant: Tenant, state: str) -> Tenant:
        changed = tenant.with_state(state, self._now())
        if tenant.state != state:
            # The feed records the state with its event, so a retry after a failure
            # between these two writes adds no second event. The feed row refuses it
            # once a delete has marked it.
            try:
                self.store.tenant(tenant.id).append(
                    [drafts.tenant_state(_STATE_EVENTS[state], changed.changed)],
                    tenant_state=state)
            except TenantGone:
                raise TenantAdminError(self._being_deleted(tenant.id)) from None
        return changed

    def _change(self, tenant_id: str, change: Callable[[Tenant], Tenant | None], *,
                precondition: Callable[[Tenant], None] | None = None) -> Tenant:
        """Write ``change(tenant)`` over the registry row as read (If-Match on its etag),
        reading again and re-deciding when another process changed it first, so that no
        state change undoes another; None from ``change`` leaves the row as it is.
        ``precondition(tenant)`` is checked first against each row as read (it raises to
        refuse), so a caller's condition holds for the row the write replaces."""
        registry = self.store.tenant_registry()
        for _ in TENANT_STATE.tries():
            tenant = self._tenant(tenant_id)
            if precondition is not None:
                precondition(tenant)
            with self._storage():
                changed = change(tenant)
                if changed is None:
                    return tenant
                try:
                    if tenant.etag is None:  # the implicit default tenant, registered now
                        return registry.create(replace(changed, created=changed.changed))
                    return registry.update(changed)
                except (TenantMoved, TenantExists):
                    continue
                except TenantMissing:
                    raise TenantAdminError(f"no tenant with id {tenant_id!r}") from None
        raise TenantAdminError(f"tenant {tenant_id!r} keeps changing; try again")

    @staticmethod
    def _being_deleted(tenant_id: str) -> str:
        return (f"tenant {tenant_id!r} is being deleted; finish with: "
                f"python -m scim_core.admin tenant delete {tenant_id} --yes")

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # internals: tokens and URLs --------------------------------------------------------

    def _tenant_url(self, tenant_id: str) -> str | None:
        with self._azure():
            return self.urls.of(tenant_id)

    # internals: errors -------------------------------------------------------------------

    def _storage(self) -> _Translate:
        return _Translate(self)

    def _azure(self) -> _Translate:
        return _Translate(self)

    def explain(self, exc: BaseException) -> str:
        """One line for a Key Vault or storage failure; never a secret value."""
        return explain(exc, self.settings)


class _Translate:
    """Turns store and Azure failures inside a block into ``TenantAdminError``."""

    def __init__(self, admin: TenantAdmin, *,
                 rethrow: tuple[type[BaseException], ...] = ()) -> None:
        self._admin = admin
        self._rethrow = rethrow

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None or isinstance(exc, (TenantAdminError, *self._rethrow)):
            return
        if isinstance(exc, InvalidTenant | TokenError | SecretStoreError):
            raise TenantAdminError(str(exc)) from exc
        if isinstance(exc, StoreError | AzureError):
            raise TenantAdminError(self._admin.explain(exc)) from exc


def _checked(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except InvalidTenant as exc:
        raise TenantAdminError(str(exc)) from None


def explain(exc: BaseException, settings: Settings) -> str:
    """One line for a Key Vault or storage failure under ``settings``; never a secret value."""
    if isinstance(exc, StoreError):
        return (f"Table Storage failed ({exc}); check SCIM_TABLES_CONNECTION or "
                "SCIM_TABLES_ENDPOINT, and that your identity has the 'Storage Table Data "
                "Contributor' role on the storage account")
    if not isinstance(exc, AzureError):
        return type(exc).__name__
    return explain_vault_error(exc, settings.keyvault_url or "the local secrets")
