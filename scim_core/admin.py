"""Operator commands for the bearer token: ``python -m scim_core.admin <subcommand> --help``
(docs/architecture.md, "The admin command")."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from scim_core.auth.keyvault import (
    describe_error,
    is_secret_disabled,
    is_valid,
    newest_first,
    secret_client,
)
from scim_core.config import DEFAULT_SECRET_NAME

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import SecretClient, SecretProperties

DEFAULT_TENANT_URL_SECRET = "scim-tenant-url"
TOKEN_BYTES = 32  # 256 bits of randomness, 43 URL-safe characters
TAGS = {"created-by": "scim_core.admin"}


class AdminError(Exception):
    """A failure explained in one line for the operator (never containing a token)."""


def main(
    argv: list[str] | None = None,
    *,
    credential: TokenCredential | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
) -> int:
    """Run one subcommand; returns the exit code. Tests inject a credential and TLS settings."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return exc.code if isinstance(exc.code, int) else 2
    vault_url: str = args.vault_url.rstrip("/")
    if not vault_url.lower().startswith("https://") or len(vault_url) <= len("https://"):
        print(f"error: --vault-url must be an https:// URL, not {vault_url!r}", file=sys.stderr)
        return 2
    try:
        if credential is None:
            from scim_core.auth.credentials import admin_credential

            credential = admin_credential()
        with secret_client(vault_url, credential, **dict(client_kwargs or {})) as client:
            command: Callable[[SecretClient, argparse.Namespace, TextIO], int] = args.command
            return command(client, args, out)
    except AdminError as exc:
        message = str(exc)
    except AzureError as exc:
        message = _explain(exc, vault_url)
    print(f"error: {message}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scim_core.admin",
        description="Manage the bearer token that Microsoft Entra sends to the SCIM endpoint.",
    )
    commands = parser.add_subparsers(required=True, metavar="<subcommand>")

    def add(name: str, command: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=command)
        sub.add_argument(
            "--vault-url", required=True, metavar="URL", help="https://<vault>.vault.azure.net"
        )
        return sub

    rotate = add("rotate-token", _rotate, "Create a new token; the previous one stays valid.")
    retire = add("retire-token", _retire, "Disable every version older than the newest valid one.")
    show = add("show-endpoint", _show_endpoint, "Print the Tenant URL to paste into Entra.")
    for sub in (rotate, retire):
        sub.add_argument(
            "--secret-name",
            default=DEFAULT_SECRET_NAME,
            metavar="NAME",
            help=f"secret holding the token (default {DEFAULT_SECRET_NAME})",
        )
    for sub in (rotate, show):
        sub.add_argument(
            "--tenant-url-secret",
            default=DEFAULT_TENANT_URL_SECRET,
            metavar="NAME",
            help=f"secret holding the Tenant URL (default {DEFAULT_TENANT_URL_SECRET})",
        )
    return parser


# subcommands -------------------------------------------------------------------------------


def _rotate(client: SecretClient, args: argparse.Namespace, out: TextIO) -> int:
    name: str = args.secret_name
    valid = [v for v in newest_first(_versions(client, name)) if is_valid(v, time.time())]
    if len(valid) > 1:
        raise AdminError(
            f"a rotation is already pending: {len(valid)} versions of {name!r} are valid. "
            "Paste the newest token into Entra and run retire-token first. If the newest token "
            "was lost, disable it (az keyvault secret set-attributes --enabled false "
            f"--id {valid[0].id}) and run rotate-token again; the older token keeps working."
        )
    tenant_url = _tenant_url(client, args.tenant_url_secret)  # read first: fail before writing
    token = secrets.token_urlsafe(TOKEN_BYTES)
    # No retry: a repeated PUT whose first answer was lost would create a second new version.
    try:
        created = client.set_secret(
            name, token, content_type="text/plain", tags=dict(TAGS), retry_total=0
        )
    except (ServiceResponseError, HttpResponseError) as exc:
        if isinstance(exc, HttpResponseError) and (exc.status_code or 0) < 500:
            raise
        raise AdminError(
            f"{_explain(exc, client.vault_url)}. The new version may have been created without "
            "being shown: run rotate-token again and follow its instructions"
        ) from exc
    write = _writer(out)
    write(f"Created version {created.properties.version} of secret {name!r} in {client.vault_url}.")
    write("")
    write("Secret Token (shown this once; paste it into Entra and keep no other copy):")
    write("")
    write(f"    {token}")
    write("")
    _write_tenant_url(write, tenant_url, args.tenant_url_secret)
    write("")
    write("Next:")
    write("  1. Entra admin center > Enterprise applications > your app > Provisioning >")
    write("     Admin Credentials: paste the Secret Token (and the Tenant URL if not set yet).")
    write("  2. Select Test Connection, then Save.")
    if valid:
        write("  3. Retire the previous token:")
        write(
            f"       python -m scim_core.admin retire-token --vault-url {client.vault_url}"
            + ("" if name == DEFAULT_SECRET_NAME else f" --secret-name {name}")
        )
        write("Until step 3 both the previous and the new token are accepted, so provisioning")
        write("keeps running while you switch.")
    else:
        write("This is the first valid token of this secret: there is nothing to retire.")
    return 0


def _retire(client: SecretClient, args: argparse.Namespace, out: TextIO) -> int:
    name: str = args.secret_name
    ordered = newest_first(_versions(client, name))
    if not ordered:
        raise AdminError(f"secret {name!r} does not exist in {client.vault_url}; run rotate-token")
    now = time.time()
    keep_at = next((i for i, v in enumerate(ordered) if is_valid(v, now)), None)
    if keep_at is None:
        raise AdminError(
            f"no version of {name!r} is valid now, so retiring would leave no token; "
            "run rotate-token (or re-enable a version) first"
        )
    keep = ordered[keep_at]
    disabled = 0
    for props in ordered[keep_at + 1 :]:
        if props.enabled:
            client.update_secret_properties(name, props.version, enabled=False)
            disabled += 1
    created = f"{keep.created_on:%Y-%m-%d %H:%M:%S} UTC" if keep.created_on else "unknown"
    write = _writer(out)
    write(f"Disabled {disabled} older version(s) of secret {name!r}.")
    write(f"The only accepted token is now version {keep.version} (created {created}).")
    if disabled:
        write("The app stops accepting the retired token(s) within SCIM_TOKEN_CACHE_SECONDS")
        write("(default 60 seconds).")
    return 0


def _show_endpoint(client: SecretClient, args: argparse.Namespace, out: TextIO) -> int:
    tenant_url = _tenant_url(client, args.tenant_url_secret)
    if tenant_url is None:
        raise AdminError(_missing_tenant_url(args.tenant_url_secret))
    _writer(out)(tenant_url)
    return 0


# helpers -----------------------------------------------------------------------------------


def _writer(out: TextIO) -> Callable[[str], None]:
    def write(line: str) -> None:
        print(line, file=out)

    return write


def _versions(client: SecretClient, name: str) -> list[SecretProperties]:
    try:
        return list(client.list_properties_of_secret_versions(name))
    except ResourceNotFoundError:
        return []


def _tenant_url(client: SecretClient, secret_name: str) -> str | None:
    """The Tenant URL the deployment stored in the vault, or None when it is not there."""
    try:
        value = client.get_secret(secret_name).value
    except ResourceNotFoundError:
        return None
    except HttpResponseError as exc:
        if is_secret_disabled(exc):
            return None
        raise
    return (value or "").strip() or None


def _missing_tenant_url(secret_name: str) -> str:
    return (
        f"the vault has no enabled secret {secret_name!r} holding the Tenant URL; the "
        "deployment stores it there, and its output SCIM_TENANT_URL has the same value"
    )


def _write_tenant_url(write: Callable[[str], None], tenant_url: str | None, secret: str) -> None:
    if tenant_url is None:
        write(f"Tenant URL: not found ({_missing_tenant_url(secret)}).")
        return
    write("Tenant URL:")
    write("")
    write(f"    {tenant_url}")


def _explain(exc: AzureError, vault_url: str) -> str:
    """One line for an Azure failure; Key Vault error text never carries secret values."""
    if isinstance(exc, ClientAuthenticationError):
        if exc.status_code is None:
            detail = (exc.message or "").strip().splitlines()
            reason = detail[0][:300] if detail else type(exc).__name__
            return (
                f"could not get an Azure access token ({reason}); sign in with 'az login' "
                "or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
            )
        return (
            f"Key Vault at {vault_url} refused the sign-in ({describe_error(exc)}); is the vault "
            "in the tenant you signed in to? Try 'az login --tenant <tenant id>'"
        )
    if isinstance(exc, HttpResponseError):
        if exc.status_code == 403:
            return (
                f"Key Vault at {vault_url} denied access ({describe_error(exc)}); your identity "
                "needs the 'Key Vault Secrets Officer' role on the vault"
            )
        if exc.status_code == 404:
            return f"not found at {vault_url} ({describe_error(exc)}); check --vault-url"
        return f"Key Vault at {vault_url} failed ({describe_error(exc)}); try again later"
    if isinstance(exc, ServiceRequestError):
        return (
            f"cannot reach Key Vault at {vault_url} ({describe_error(exc)}); "
            "check --vault-url (does the vault exist?) and your network"
        )
    return f"Key Vault at {vault_url} did not answer ({describe_error(exc)}); try again later"


if __name__ == "__main__":
    sys.exit(main())
