"""Tenant administration as a Python API: create, list, show, disable, enable and delete
tenants, and rotate, retire and show their tokens and Tenant URLs. The commands of
``python -m scim_core.admin`` and a vendor's own admin console call the same methods; this
module neither parses arguments nor prints (docs/architecture.md, "Tenants").

Tokens live where the app reads them: in the Key Vault of ``SCIM_KEYVAULT_URL``, or, when no
vault is configured, in the store's local secrets (``scim_core.store.secrets``); their
versions and rotation are ``scim_core.tenants.tokens.TokenAdmin``'s, which this delegates to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from scim_core.auth.keyvault_secrets import TAGS, as_secret_store, explain_vault_error
from scim_core.auth.secrets import SecretStore, SecretStoreError
from scim_core.auth.tenant_tokens import tenant_secret_name
from scim_core.config import Settings, SettingsError
from scim_core.events import drafts
from scim_core.events.model import EventType
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
from scim_core.tenants.tokens import (
    TOKEN_BYTES,
    Cancellation,
    Retirement,
    Rotation,
    TokenAdmin,
    TokenError,
    reuse_message,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient

    from scim_core.store import Store

DEFAULT_TENANT_URL_SECRET = "scim-tenant-url"
LOCAL_BASE_URL = "http://127.0.0.1:7071/scim/v2"
SCIM_ROOT = "/scim/v2"
DEFAULT_STEP_ROWS = 1000
STATE_ATTEMPTS = 20
_STATE_EVENTS = {DISABLED: EventType.TENANT_DISABLED, ENABLED: EventType.TENANT_ENABLED}


class TenantAdminError(Exception):
    """A failed admin operation, explained in one line (never containing a token)."""


__all__ = ["TAGS", "TOKEN_BYTES", "Cancellation", "Deletion", "Retirement", "Rotation",
           "TenantAdmin", "TenantAdminError", "explain_vault_error", "tenant_url"]


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
    """Admin operations on the tenants of the deployment ``settings`` describe.

    The store and the secrets are built from ``settings`` on first use (the tables store
    with ``credential`` when it is reached by endpoint; Key Vault with ``credential`` when
    ``SCIM_KEYVAULT_URL`` is set, else the store's local secrets); tests and consoles may
    pass their own. ``credential`` defaults to ``admin_credential()`` (``az login`` or a
    service principal); inside the function app pass ``production_credential()``.
    """

    def __init__(self, settings: Settings, *, credential: TokenCredential | None = None,
                 store: Store | None = None,
                 secrets: SecretStore | SecretClient | None = None,
                 client_kwargs: dict[str, Any] | None = None,
                 tenant_url_secret: str = DEFAULT_TENANT_URL_SECRET,
                 local_base_url: str = LOCAL_BASE_URL,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._credential = credential
        self._store = store
        self._own_store = False
        self._secrets = None if secrets is None else as_secret_store(secrets)
        self._own_secrets = False
        self._tokens: TokenAdmin | None = None
        self._client_kwargs = dict(client_kwargs or {})
        self.tenant_url_secret = tenant_url_secret
        self.local_base_url = local_base_url.rstrip("/")
        self._clock = clock

    # lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> TenantAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the clients this object built (not the ones it was given)."""
        if self._own_secrets and self._secrets is not None:
            self._secrets.close()
        if self._own_store and self._store is not None:
            close = getattr(self._store, "close", None)
            if close is not None:
                close()

    @property
    def uses_key_vault(self) -> bool:
        """Whether the tokens are in Key Vault (else in the store's local secrets)."""
        return bool(self.settings.keyvault_url)

    @property
    def vault_url(self) -> str:
        """Where the tokens are: the vault's URL, or the store's local secrets."""
        return self.secrets.location

    @property
    def store(self) -> Store:
        """The store holding the tenants' data and the registry."""
        if self._store is None:
            self._store = self._build_store()
            self._own_store = True
        return self._store

    @property
    def secrets(self) -> SecretStore:
        """The secret store holding the tokens (Key Vault, or the store's local secrets)."""
        if self._secrets is None:
            if self.uses_key_vault:
                from scim_core.auth.keyvault import secret_client
                from scim_core.auth.keyvault_secrets import KeyVaultSecrets

                self._secrets = KeyVaultSecrets(secret_client(
                    self.settings.keyvault_url, self._get_credential(), **self._client_kwargs))
                self._own_secrets = True
            else:
                from scim_core.auth.local_secrets import check_local_secrets_allowed
                from scim_core.store.secrets import local_secrets

                try:
                    check_local_secrets_allowed(self.settings)
                except SettingsError as exc:
                    raise TenantAdminError(str(exc)) from None
                self._secrets = local_secrets(self.store)
        return self._secrets

    @property
    def tokens(self) -> TokenAdmin:
        """The tenants' token versions and their rotation."""
        if self._tokens is None:
            self._tokens = TokenAdmin(self.secrets, default_secret=self.settings.token_secret_name,
                                      clock=self._clock)
        return self._tokens

    def _get_credential(self) -> TokenCredential:
        if self._credential is None:
            from scim_core.auth.credentials import admin_credential

            self._credential = admin_credential()
        return self._credential

    def _build_store(self) -> Store:
        if self.settings.store == "memory":
            raise TenantAdminError(
                "SCIM_STORE=memory keeps tenants in the app's own process, out of reach of "
                "another one: pass that store to TenantAdmin, or use SCIM_STORE=tables")
        from scim_core.store.tables import table_store
        from scim_core.store.tables.sdk_batches import install_batch_codec

        install_batch_codec()
        credential = None if self.settings.tables_connection else self._get_credential()
        try:
            return table_store(self.settings, credential=credential)
        except SettingsError as exc:
            raise TenantAdminError(str(exc)) from None

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
        secret = self._secret_name(chosen)
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
            token, _ = self._write_token(secret)
            self._disable_older(secret, keep=1)  # a stale secret's old tokens never count
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
        secret = self._secret_name(tenant_id)
        deleted, purge_date, soft = self._delete_secret(secret)
        with self._storage():
            registry.delete(tenant_id)
        return Deletion(tenant_id, rows, secret, deleted, soft, purge_date,
                        self._reuse_message(tenant_id, secret, soft, purge_date))

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
        return (f"the vault has no enabled secret {self.tenant_url_secret!r} holding the Tenant "
                "URL; the deployment stores it there, and its output SCIM_TENANT_URL has the "
                "same value (or set SCIM_BASE_URL)")

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
        for _ in range(STATE_ATTEMPTS):
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

    # internals: secrets (TokenAdmin's) ---------------------------------------------------

    def _secret_name(self, tenant_id: str) -> str:
        return tenant_secret_name(tenant_id, self.settings.token_secret_name)

    def _write_token(self, secret: str) -> tuple[str, str]:
        with self._azure():
            return self.tokens.write(secret)

    def _disable_older(self, secret: str, *, keep: int) -> None:
        with self._azure():
            self.tokens.disable_older(secret, keep=keep)

    def _delete_secret(self, secret: str) -> tuple[bool, datetime | None, bool]:
        with self._azure():
            return self.tokens.delete_secret(secret)

    @staticmethod
    def _reuse_message(tenant_id: str, secret: str, soft: bool,
                       purge: datetime | None) -> str:
        return reuse_message(tenant_id, secret, soft, purge)

    def _tenant_url(self, tenant_id: str) -> str | None:
        """The tenant's URL: the deployment's ``scim-tenant-url`` secret (Key Vault), else
        ``SCIM_BASE_URL``, else (local secrets) the local dev host's; with the default
        tenant's ``/scim/v2`` made ``/tenants/<id>/scim/v2``."""
        base: str | None = None
        if self.uses_key_vault:
            base = self._stored_url()
        base = base or self.settings.base_url or None
        if base is None and not self.uses_key_vault:
            base = self.local_base_url
        return None if base is None else tenant_url(base, tenant_id)

    def _stored_url(self) -> str | None:
        with self._azure():
            return self.secrets.read(self.tenant_url_secret)

    # internals: errors -------------------------------------------------------------------

    def _storage(self) -> _Translate:
        return _Translate(self)

    def _azure(self) -> _Translate:
        return _Translate(self)

    def explain(self, exc: BaseException) -> str:
        """One line for a Key Vault or storage failure; never a secret value."""
        if isinstance(exc, StoreError):
            return (f"Table Storage failed ({exc}); check SCIM_TABLES_CONNECTION or "
                    "SCIM_TABLES_ENDPOINT, and that your identity has the 'Storage Table Data "
                    "Contributor' role on the storage account")
        if not isinstance(exc, AzureError):
            return type(exc).__name__
        return explain_vault_error(exc, self.settings.keyvault_url or "the local secrets")


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


def tenant_url(default_url: str, tenant_id: str) -> str:
    """A tenant's URL from the default tenant's (``https://<host>/scim/v2``)."""
    base = default_url.rstrip("/")
    if tenant_id == DEFAULT_TENANT:
        return base
    site = base[:-len(SCIM_ROOT)] if base.lower().endswith(SCIM_ROOT) else base
    return f"{site}/tenants/{tenant_id}{SCIM_ROOT}"
