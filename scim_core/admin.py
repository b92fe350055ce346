"""Operator commands for tenants, their tokens and their change feeds: ``python -m
scim_core.admin <subcommand> --help`` (docs/architecture.md, "The admin command"); the work
is done by ``scim_core.operations`` (``tenants.TenantAdmin``, ``retention``), which a
vendor's own console can import.

The commands read the app's settings (the environment, then local.settings.json ``Values``,
the environment winning as a whole for the store settings and for the vault settings): next
to a local run they manage its tenants (Azurite and the local secrets); with
``SCIM_KEYVAULT_URL`` (or ``--vault-url``) they use Key Vault, and the table of
``SCIM_TABLES_ENDPOINT``, with the operator's own sign-in (``admin_credential``). Each says on
stderr which table and vault it acts on, and refuses a local table with a remote vault (or
the reverse) unless given ``--allow-mixed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError

from scim_core.app import build_admin
from scim_core.config import (
    DEFAULT_SECRET_NAME,
    SETTING_GROUPS,
    Settings,
    SettingsError,
    app_environment,
)
from scim_core.events.model import Event
from scim_core.operations.retention import DEFAULT_STEP, TenantTrim, trim_feeds
from scim_core.operations.tenants import (
    DEFAULT_TENANT_URL_SECRET,
    TAGS,
    TOKEN_BYTES,
    TenantAdmin,
    TenantAdminError,
    explain,
)
from scim_core.store.errors import CursorExpired, StoreError
from scim_core.tenants.model import DEFAULT_TENANT, Tenant

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from scim_core.store import Store

__all__ = ["DEFAULT_TENANT_URL_SECRET", "TAGS", "TOKEN_BYTES", "AdminError", "main"]

ROOT = Path(__file__).resolve().parent.parent
"""The function app's directory, whose local.settings.json the commands read."""
DEFAULT_PORT = 7071
DEFAULT_EVENTS_LIMIT = 100

AdminError = TenantAdminError
"""A failure explained in one line for the operator (never containing a token)."""

Write = Callable[[str], None]


def main(
    argv: list[str] | None = None,
    *,
    credential: TokenCredential | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    root: Path | None = None,
    store: Store | None = None,
) -> int:
    """Run one subcommand; returns the exit code. Tests inject a credential, TLS settings,
    the environment, the directory of local.settings.json and a store."""
    out = out or sys.stdout
    environment = os.environ if env is None else env
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = _settings(args, environment, root or ROOT)
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "confirm", True) is False:
        print("error: tenant delete removes every user, group and token of the tenant; "
              "add --yes to confirm", file=sys.stderr)
        return 2
    target = Target.of(settings)
    print(f"target: {target}", file=sys.stderr)
    mix = target.mix(settings)
    if mix and not args.allow_mixed:
        print(f"error: {mix}", file=sys.stderr)
        return 2
    port = args.port or DEFAULT_PORT
    try:
        with build_admin(settings, credential=credential, store=store,
                         client_kwargs=client_kwargs,
                         tenant_url_secret=getattr(args, "tenant_url_secret",
                                                   DEFAULT_TENANT_URL_SECRET),
                         local_base_url=_local_url(args.port or _local_port(
                             app_environment(environment, root or ROOT)) or port)) as admin:
            command: Callable[[TenantAdmin, argparse.Namespace, Write], int] = args.command
            return command(admin, args, _writer(out))
    except TenantAdminError as exc:
        message = str(exc)
    except AzureError as exc:
        message = explain(exc, settings)
    print(f"error: {message}", file=sys.stderr)
    return 1


def _local_port(env: Mapping[str, str]) -> int | None:
    """The dev host's port as ``make run`` chooses it: ``PORT`` (None when unset)."""
    raw = env.get("PORT", "").strip()
    return int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else None


def _local_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/scim/v2"


def _settings(args: argparse.Namespace, env: Mapping[str, str], root: Path) -> Settings:
    settings = Settings.from_env(app_environment(env, root))
    if args.vault_url is not None:
        vault_url: str = args.vault_url.rstrip("/")
        if not vault_url.lower().startswith("https://") or len(vault_url) <= len("https://"):
            raise ValueError(f"--vault-url must be an https:// URL, not {vault_url!r}")
        settings = dataclasses.replace(settings, keyvault_url=vault_url)
    secret_name = getattr(args, "secret_name", None)
    if secret_name:
        settings = dataclasses.replace(settings, token_secret_name=secret_name)
    return settings


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.endswith(".localhost")


@dataclasses.dataclass(frozen=True)
class Target:
    """The table and the vault a command acts on, as the operator is shown them (never a
    key: a connection string is shown as its table endpoint)."""

    table: str | None
    """``<endpoint>/<table>``, "memory", or None when no table is configured."""
    vault: str | None
    """The vault's URL, or None for the store's local secrets."""

    @classmethod
    def of(cls, settings: Settings) -> Target:
        """What ``settings`` point at."""
        vault = settings.keyvault_url or None
        if settings.store == "memory":
            return cls("memory", vault)
        endpoint = None
        if settings.tables_connection:
            from azure.data.tables import TableClient

            try:
                endpoint = TableClient.from_connection_string(
                    settings.tables_connection, settings.table_name).url
            except (ValueError, TypeError):
                endpoint = "an unreadable SCIM_TABLES_CONNECTION"
        elif settings.tables_endpoint:
            parts = urlsplit(settings.tables_endpoint)
            endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}"
        if endpoint is None:
            return cls(None, vault)
        return cls(f"{endpoint.rstrip('/')}/{settings.table_name}", vault)

    @property
    def table_is_local(self) -> bool | None:
        """Whether the table is on this machine (Azurite or memory); None: no table."""
        if self.table is None:
            return None
        return self.table == "memory" or _is_local(self.table)

    def __str__(self) -> str:
        table = {None: "no table configured", "memory": "the memory store"}.get(
            self.table, f"table {self.table}")
        if self.vault is None:
            tokens = "tokens in that table's local secrets" if self.table else \
                "tokens in the table's local secrets"
        else:
            tokens = f"tokens in Key Vault {self.vault}"
        return f"{table}; {tokens}"

    def mix(self, settings: Settings) -> str | None:
        """Why the table and the vault look like two deployments' (None: they do not)."""
        local_table = self.table_is_local
        if local_table is None:
            return None
        groups = "; ".join(", ".join(group) for group in SETTING_GROUPS)
        advice = (f"settings from the environment replace local.settings.json's as a whole "
                  f"per group ({groups}); set both groups for one deployment, or pass "
                  "--allow-mixed if this is meant")
        if self.vault is not None and local_table != _is_local(self.vault):
            where = ("a local table with a remote vault" if local_table
                     else "a remote table with a local vault")
            return f"refusing to act on {where} ({self}): {advice}"
        if self.vault is None and not local_table and not settings.allow_local_secrets:
            return (f"refusing to keep tokens in the local secrets of a remote table ({self}): "
                    "set SCIM_KEYVAULT_URL (or --vault-url) to the deployment's vault, or "
                    "SCIM_ALLOW_LOCAL_SECRETS=true if the deployment keeps them there")
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scim_core.admin",
        description="Manage the tenants of the SCIM endpoint and the bearer tokens that "
                    "Microsoft Entra sends to them.",
    )
    commands = parser.add_subparsers(required=True, metavar="<subcommand>")

    def add(group: Any, name: str, command: Callable[..., int],
            help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help_text,
                                                        description=help_text)
        sub.set_defaults(command=command)
        sub.add_argument("--vault-url", metavar="URL",
                         help="https://<vault>.vault.azure.net (default: SCIM_KEYVAULT_URL; "
                              "without either, the local secrets next to a local run)")
        sub.add_argument("--port", type=int, default=None,
                         help=f"the local dev host's port, for its Tenant URL (default PORT, else "
                              f"{DEFAULT_PORT})")
        sub.add_argument("--allow-mixed", action="store_true",
                         help="act even when the table is local and the vault remote, or "
                              "the reverse")
        return sub

    def tenant_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--tenant", default=DEFAULT_TENANT, metavar="ID",
                         help="the tenant (default: the default tenant of /scim/v2)")

    rotate = add(commands, "rotate-token", _rotate,
                 "Create a new token; the previous one stays valid.")
    retire = add(commands, "retire-token", _retire,
                 "Disable every version older than the newest valid one.")
    cancel = add(commands, "cancel-rotation", _cancel_rotation,
                 "Disable the newest token of a pending rotation (its token was lost); "
                 "the previous one stays valid.")
    show = add(commands, "show-endpoint", _show_endpoint,
               "Print the Tenant URL to paste into Entra.")
    for sub in (rotate, retire, cancel, show):
        tenant_option(sub)
    for sub in (rotate, retire, cancel):
        sub.add_argument("--secret-name", default=None, metavar="NAME",
                         help="the default tenant's secret (default SCIM_TOKEN_SECRET_NAME, "
                              f"{DEFAULT_SECRET_NAME}); another tenant's is scim-token-<id>")
    for sub in (rotate, show):
        sub.add_argument("--tenant-url-secret", default=DEFAULT_TENANT_URL_SECRET,
                         metavar="NAME",
                         help=f"secret holding the Tenant URL (default "
                              f"{DEFAULT_TENANT_URL_SECRET})")

    tenant = commands.add_parser("tenant", help="Create, list, show, disable, enable or "
                                 "delete tenants.", description="Manage tenants.")
    tenants = tenant.add_subparsers(required=True, metavar="<tenant subcommand>")
    create = add(tenants, "create", _create,
                 "Register a tenant and print its Tenant URL and Secret Token.")
    create.add_argument("--name", required=True, help="the tenant's display name")
    create.add_argument("--id", dest="tenant_id", default=None, metavar="ID",
                        help="the tenant id (default: 16 random characters)")
    add(tenants, "list", _list, "List the tenants.")
    for name, command, text in (
            ("show", _show, "Show a tenant."),
            ("disable", _disable, "Stop serving a tenant (403; its data is kept)."),
            ("enable", _enable, "Serve a disabled tenant again."),
            ("delete", _delete, "Delete a tenant's data, token and registration.")):
        sub = add(tenants, name, command, text)
        sub.add_argument("tenant", metavar="ID")
        if name == "delete":
            sub.add_argument("--yes", dest="confirm", action="store_true",
                             help="confirm: every user, group and token of it goes")

    events = commands.add_parser("events", help="Trim or show the tenants' change feeds.",
                                 description="The change feeds (docs/events.md).")
    feeds = events.add_subparsers(required=True, metavar="<events subcommand>")
    trim = add(feeds, "trim", _trim,
               "Remove events older than the retention from every tenant's feed (or one's).")
    trim.add_argument("--tenant", default=None, metavar="ID",
                      help="only this tenant (default: every tenant, the default one included)")
    trim.add_argument("--days", type=_count(1), default=None, metavar="N",
                      help="keep N days of events (default SCIM_EVENTS_RETENTION_DAYS)")
    trim.add_argument("--step", type=_count(1), default=DEFAULT_STEP, metavar="N",
                      help=f"events removed per storage step (default {DEFAULT_STEP})")
    show_events = add(feeds, "show", _show_events, "Print a tenant's events as JSON lines.")
    tenant_option(show_events)
    show_events.add_argument("--after", type=_count(0), default=0, metavar="N",
                             help="start after position N (default 0: the oldest kept)")
    show_events.add_argument("--limit", type=_count(1), default=DEFAULT_EVENTS_LIMIT,
                             metavar="N", help=f"at most N events (default "
                                               f"{DEFAULT_EVENTS_LIMIT})")
    _api_key_parser(commands, add)
    _setup_link_parser(commands, add)
    _activity_parsers(commands, add, tenant_option)
    return parser


def _api_key_parser(commands: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """``api-key create|list|revoke``: the management API's keys (docs/management-api.md)."""
    group = commands.add_parser("api-key", help="Create, list or revoke management API keys.",
                                description="Keys of the management API (/manage/v1).")
    keys = group.add_subparsers(required=True, metavar="<api-key subcommand>")
    create = add(keys, "create", _api_key_create,
                 "Create a key and print it once (only its hash is kept).")
    create.add_argument("--scope", choices=("manage", "read"), default="manage",
                        help="manage: everything; read: directory and events only")
    create.add_argument("--tenant", default=None, metavar="ID",
                        help="bind the key to one tenant")
    create.add_argument("--description", default="", help="what the key is for")
    add(keys, "list", _api_key_list, "List the keys (never their values).")
    revoke = add(keys, "revoke", _api_key_revoke, "Revoke a key.")
    revoke.add_argument("key_id", metavar="KEY_ID")


def _api_keys(admin: TenantAdmin) -> Any:
    from scim_core.manage.keys import ApiKeys
    from scim_core.manage.rows import side_rows

    return ApiKeys(side_rows(admin.store))


def _api_key_create(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    from scim_core.manage.keys import InvalidKeyRequest
    from scim_core.tenants.model import InvalidTenant

    try:
        key, value = _api_keys(admin).create(args.scope, tenant=args.tenant,
                                             description=args.description)
    except (InvalidKeyRequest, InvalidTenant) as exc:
        raise TenantAdminError(str(exc)) from None
    write(f"API key {key.id} (scope {key.scope}"
          f"{', tenant ' + key.tenant if key.tenant else ''}); shown once, keep it secret:")
    write(value)
    return 0


def _api_key_list(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    for key in _api_keys(admin).list():
        write(f"{key.id}  {key.scope:6}  {key.tenant or '*':20}  {key.created}  "
              f"{'revoked ' + key.revoked if key.revoked else 'active'}  {key.description}")
    return 0


def _api_key_revoke(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    if _api_keys(admin).revoke(args.key_id) is None:
        raise TenantAdminError(f"no API key with id {args.key_id!r}")
    write(f"API key {args.key_id} revoked (every process refuses it within 30 seconds).")
    return 0


def _setup_link_parser(commands: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """``setup-link create|revoke``: single-use links to a tenant's setup page."""
    group = commands.add_parser("setup-link", help="Create or revoke setup page links.",
                                description="Single-use links to a tenant's setup page "
                                            "(/setup), for the customer's IT admin.")
    links = group.add_subparsers(required=True, metavar="<setup-link subcommand>")
    create = add(links, "create", _setup_link_create,
                 "Create a link and print it once (only its hash is kept).")
    create.add_argument("--tenant", required=True, metavar="ID", help="the tenant")
    create.add_argument("--hours", type=float, default=24.0,
                        help="how long the link can be opened (default 24, at most 168)")
    revoke = add(links, "revoke", _setup_link_revoke,
                 "Revoke a link and end the session it opened.")
    revoke.add_argument("link_id", metavar="LINK_ID")


def _setup_link_create(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    from scim_core.manage.rows import side_rows
    from scim_core.manage.setup_links import InvalidLinkRequest, SetupLinks
    from scim_core.tenants.model import InvalidTenant

    admin.show(args.tenant)
    try:
        link, value = SetupLinks(side_rows(admin.store)).create(
            args.tenant, seconds=args.hours * 3600)
    except (InvalidLinkRequest, InvalidTenant) as exc:
        raise TenantAdminError(str(exc)) from None
    _note_in_activity(admin, link.tenant, "POST", "/admin/setup-link", 201)
    url = admin.endpoint(args.tenant)
    site = url[:url.find("/tenants/")] if "/tenants/" in url else url.removesuffix("/scim/v2")
    write(f"Setup link {link.id} for tenant {link.tenant}, until {link.expires}; it opens "
          "the page once. Send it to the customer's IT admin:")
    write(f"{site}/setup/{value}")
    return 0


def _setup_link_revoke(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    from scim_core.manage.rows import side_rows
    from scim_core.manage.setup_links import SetupLinks

    revoked = SetupLinks(side_rows(admin.store)).revoke(args.link_id)
    if revoked is None:
        raise TenantAdminError(f"no setup link with id {args.link_id!r}")
    _note_in_activity(admin, revoked.tenant, "DELETE", "/admin/setup-link", 204)
    write(f"Setup link {args.link_id} revoked; the session it opened has ended.")
    return 0


def _note_in_activity(admin: TenantAdmin, tenant: str, method: str, route: str,
                      status: int) -> None:
    """Record what the command did in the tenant's activity log, as the management API's
    calls are (never the link itself); written before the command returns."""
    from scim_core.activity.build import build_recorder
    from scim_core.http import Request, Response

    recorder = build_recorder(admin.settings, admin.store, frozenset())
    recorder.record(Request(method, route, "", headers={"User-Agent": "scim_core.admin"}),
                    Response(status, {}, b""), tenant, None, 0.0, route=route)
    recorder.close()


def _activity_parsers(commands: Any, add: Callable[..., argparse.ArgumentParser],
                      tenant_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """``activity show`` and ``health`` (the activity log, docs: operating)."""
    activity = commands.add_parser("activity", help="Show a tenant's SCIM request log.",
                                   description="The per-tenant activity log.")
    entries = activity.add_subparsers(required=True, metavar="<activity subcommand>")
    show = add(entries, "show", _show_activity,
               "Print a tenant's logged requests as JSON lines, newest first.")
    tenant_option(show)
    show.add_argument("--name", default=None, metavar="VALUE",
                      help="only requests naming VALUE (userName, externalId, displayName or "
                           "resource id; any letter case)")
    show.add_argument("--status", default=None, choices=("2xx", "3xx", "4xx", "5xx", "auth"),
                      help="only this status class (auth: refused credentials)")
    show.add_argument("--operation", default=None, metavar="OP",
                      help="only this operation, e.g. 'POST /Users'")
    show.add_argument("--since", default=None, metavar="TIME", help="ISO 8601 time")
    show.add_argument("--until", default=None, metavar="TIME", help="ISO 8601 time")
    show.add_argument("--limit", type=_count(1), default=50, metavar="N",
                      help="at most N entries (default 50)")
    show.add_argument("--cursor", default=None, help="continue from a printed cursor")
    health = add(commands, "health", _health,
                 "Print a tenant's connection health and its last hour's minute aggregates.")
    tenant_option(health)
    health.add_argument("--since", default=None, metavar="TIME",
                        help="aggregates since this ISO 8601 time (default: an hour ago)")


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


# tenant subcommands ------------------------------------------------------------------------


def _create(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    tenant, token = admin.create(args.name, tenant_id=args.tenant_id)
    write(f"Created tenant {tenant.id} ({tenant.name}).")
    write("")
    _token_lines(write, admin.endpoint(tenant.id), token)
    write("")
    write("The Secret Token is shown this once; paste it into Entra and keep no other copy.")
    _entra_steps(write)
    return 0


def _list(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    tenants = admin.list()
    width = max(len(t.id) for t in tenants)
    write(f"{'ID':<{width}}  {'STATE':<9}  NAME")
    for tenant in tenants:
        write(f"{tenant.id:<{width}}  {tenant.state:<9}  {tenant.name}")
    return 0


def _show(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    tenant = admin.show(args.tenant)
    _describe(write, tenant)
    if tenant.state != "deleting":
        write(f"Tenant URL:    {_url_or_hint(admin, tenant.id)}")
    return 0


def _disable(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    tenant = admin.disable(args.tenant)
    write(f"Tenant {tenant.id} is disabled: its Tenant URL answers 403 and its data is kept.")
    _cache_note(admin, write)
    return 0


def _enable(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    tenant = admin.enable(args.tenant)
    write(f"Tenant {tenant.id} is enabled: its Tenant URL serves again.")
    _cache_note(admin, write)
    return 0


def _delete(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    done = admin.delete(args.tenant, on_progress=lambda rows: write(f"Removed {rows} rows..."))
    write(f"Deleted tenant {done.tenant_id}: {done.rows} rows removed"
          + (f", secret {done.secret_name!r} deleted." if done.secret_deleted else "."))
    write(done.message)
    return 0


# events subcommands ------------------------------------------------------------------------


def _trim(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    days: int = args.days or admin.settings.events_retention_days
    tenants = None if args.tenant is None else [admin.serving(args.tenant).id]
    try:
        report = trim_feeds(admin.store, days=days, step=args.step, budget_seconds=math.inf,
                            tenants=tenants)
    except StoreError as exc:
        raise TenantAdminError(admin.explain(exc)) from exc
    for trimmed in report.tenants:
        write(_trim_line(trimmed, report.before))
    if report.failed:
        write(f"{len(report.failed)} tenant(s) failed; run the command again to finish them.")
        return 1
    return 0


def _trim_line(trimmed: TenantTrim, before: str) -> str:
    steps = f"{trimmed.steps} step{'s' if trimmed.steps != 1 else ''}"
    if trimmed.error is not None:
        return (f"{trimmed.tenant}: failed after removing {trimmed.removed} events in {steps} "
                f"({trimmed.error})")
    return f"{trimmed.tenant}: removed {trimmed.removed} events older than {before} in {steps}"


def _show_events(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    tenant = admin.serving(args.tenant)
    try:
        events = admin.store.tenant(tenant.id).events(after=args.after, limit=args.limit)
    except CursorExpired:
        raise TenantAdminError(
            f"events after position {args.after} of tenant {tenant.id} were removed by "
            "retention (SCIM_EVENTS_RETENTION_DAYS); start from a later position") from None
    except StoreError as exc:
        raise TenantAdminError(admin.explain(exc)) from exc
    for event in events:
        write(json.dumps(_event_document(event), ensure_ascii=False, separators=(",", ":")))
    return 0


def _show_activity(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    from scim_core.activity import ActivityStoreError, BadQuery
    from scim_core.activity.build import activity_log

    tenant = admin.show(args.tenant).id
    try:
        page = activity_log(admin.settings, admin.store).search(
            tenant, since=args.since, until=args.until, status=args.status,
            operation=args.operation, name=args.name, limit=args.limit, cursor=args.cursor)
    except (BadQuery, ActivityStoreError) as exc:
        raise TenantAdminError(str(exc)) from exc
    for entry in page.entries:
        write(json.dumps(entry.document(), ensure_ascii=False, separators=(",", ":")))
    if page.cursor:
        write(f"# more: --cursor {page.cursor}")
    return 0


def _health(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    from scim_core.activity import ActivityStoreError, BadQuery
    from scim_core.activity.build import activity_log
    from scim_core.activity.views import health_view

    tenant = admin.show(args.tenant).id
    try:
        view = health_view(activity_log(admin.settings, admin.store), tenant,
                           {"since": args.since or ""})
    except (BadQuery, ActivityStoreError) as exc:
        raise TenantAdminError(str(exc)) from exc
    used = {str(v["version"]): v["lastUsed"] for v in view.get("tokenVersions", [])}
    view["tokenVersions"] = _token_versions(admin, tenant, used)
    write(json.dumps(view, ensure_ascii=False, indent=2))
    return 0


def _token_versions(admin: TenantAdmin, tenant: str, used: dict[str, Any]
                    ) -> list[dict[str, Any]] | str:
    """The tenant's token versions (creation, state, last use as ``used`` has it), or why
    they could not be listed."""
    try:
        versions = admin.tokens.versions(admin.tokens.secret_name(tenant))
    except Exception as exc:  # a vault or table the operator cannot reach: health still prints
        return f"not listed ({type(exc).__name__})"
    return [{"version": v.version,
             "created": v.created_on.isoformat() if v.created_on else None,
             "enabled": v.enabled,
             "expires": v.expires_on.isoformat() if v.expires_on else None,
             "lastUsed": used.get(v.version)}
            for v in versions]


def _event_document(event: Event) -> dict[str, Any]:
    """An event as docs/events.md names its fields."""
    return {"id": event.id, "tenant": event.tenant, "position": event.position,
            "type": str(event.type), "time": event.time, "resourceType": event.resource_type,
            "resourceId": event.resource_id, "version": event.version,
            "attributes": list(event.attributes), "members": list(event.members),
            "resource": None if event.resource is None else dict(event.resource)}


# token subcommands -------------------------------------------------------------------------


def _rotate(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    rotation = admin.rotate(args.tenant)
    write(f"Created version {rotation.version} of secret {rotation.secret_name!r} in "
          f"{admin.vault_url}.")
    write("")
    _token_lines(write, rotation.tenant_url or f"not found ({admin.missing_tenant_url()})",
                 rotation.token)
    write("")
    write("The Secret Token is shown this once; paste it into Entra and keep no other copy.")
    _entra_steps(write)
    if rotation.previous_valid:
        write("  3. Retire the previous token:")
        write(f"       python -m scim_core.admin retire-token{_where(admin, args)}")
        write("Until step 3 both the previous and the new token are accepted, so provisioning")
        write("keeps running while you switch.")
    else:
        write("This is the first valid token of this secret: there is nothing to retire.")
    return 0


def _retire(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    done = admin.retire_token(args.tenant)
    created = f"{done.kept_created:%Y-%m-%d %H:%M:%S} UTC" if done.kept_created else "unknown"
    write(f"Disabled {done.disabled} older version(s) of secret {done.secret_name!r}.")
    write(f"The only accepted token is now version {done.kept_version} (created {created}).")
    if done.disabled:
        write("The app stops accepting the retired token(s) within SCIM_TOKEN_CACHE_SECONDS")
        write(f"({admin.settings.token_cache_seconds} seconds).")
    return 0


def _cancel_rotation(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    done = admin.cancel_rotation(args.tenant)
    created = f"{done.kept_created:%Y-%m-%d %H:%M:%S} UTC" if done.kept_created else "unknown"
    write(f"Disabled version {done.cancelled_version} of secret {done.secret_name!r}: the "
          "rotation is cancelled.")
    write(f"The accepted token is version {done.kept_version} (created {created}), the one "
          "in use before the rotation.")
    write("The app stops accepting the cancelled token within SCIM_TOKEN_CACHE_SECONDS")
    write(f"({admin.settings.token_cache_seconds} seconds). For a new token run:")
    write(f"  python -m scim_core.admin rotate-token{_where(admin, args)}")
    return 0


def _show_endpoint(admin: TenantAdmin, args: argparse.Namespace, write: Write) -> int:
    write(admin.endpoint(args.tenant))
    return 0


# helpers -----------------------------------------------------------------------------------


def _writer(out: TextIO) -> Write:
    def write(line: str) -> None:
        print(line, file=out)

    return write


def _token_lines(write: Write, tenant_url: str, token: str) -> None:
    """The two lines ``make run`` prints."""
    write(f"Tenant URL:    {tenant_url}")
    write(f"Secret Token:  {token}")


def _entra_steps(write: Write) -> None:
    write("Next:")
    write("  1. Entra admin center > Enterprise applications > your app > Provisioning >")
    write("     Admin Credentials: paste the Secret Token (and the Tenant URL if not set yet).")
    write("  2. Select Test Connection, then Save.")


def _where(admin: TenantAdmin, args: argparse.Namespace) -> str:
    """The options that make a follow-up command act on the same secret."""
    where = f" --vault-url {admin.settings.keyvault_url}" if admin.uses_key_vault else ""
    if args.tenant != DEFAULT_TENANT:
        where += f" --tenant {args.tenant}"
    elif admin.settings.token_secret_name != DEFAULT_SECRET_NAME:
        where += f" --secret-name {admin.settings.token_secret_name}"
    return where


def _describe(write: Write, tenant: Tenant) -> None:
    write(f"ID:            {tenant.id}")
    write(f"Name:          {tenant.name}")
    write(f"State:         {tenant.state}")
    if tenant.created:
        write(f"Created:       {tenant.created}")
        write(f"Changed:       {tenant.changed}")


def _url_or_hint(admin: TenantAdmin, tenant_id: str) -> str:
    try:
        return admin.endpoint(tenant_id)
    except TenantAdminError as exc:
        return f"not found ({exc})"


def _cache_note(admin: TenantAdmin, write: Write) -> None:
    write("A running app sees the change within SCIM_TENANT_CACHE_SECONDS "
          f"({admin.settings.tenant_cache_seconds} seconds).")


if __name__ == "__main__":
    sys.exit(main())
