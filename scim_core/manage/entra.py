"""Microsoft Entra ID access tokens as management credentials: RS256 JWTs checked against
the configured tenant's OpenID metadata and signing keys (fetched over HTTPS, cached,
refreshed on an unknown ``kid``), issuer, audience, expiry, and app roles as scopes."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

from scim_core.manage.keys import MANAGE, READ, Principal
from scim_core.manage.problems import Problem
from scim_core.manage.settings import DEFAULT_ROLES, ManageSettings

log = logging.getLogger("scim_core.manage")

KEYS_SECONDS = 24 * 3600.0
"""Signing keys are re-read at least daily; an unknown ``kid`` re-reads them sooner."""
REFRESH_SECONDS = 60.0
"""At most one re-read per minute, so tokens with made-up ``kid``s cannot flood Entra."""
LEEWAY_SECONDS = 60
NO_SCOPE = "none"


class EntraTokens:
    """Checks bearer JWTs issued by ``settings.entra_issuer`` for
    ``settings.entra_audience``. ``ssl_context`` verifies the metadata host (tests: a
    local CA); ``roles`` maps app roles to scopes (``manage`` holds ``read``)."""

    def __init__(self, settings: ManageSettings, *, ssl_context: ssl.SSLContext | None = None,
                 roles: dict[str, str] | None = None, clock: Callable[[], float] = time.time,
                 timeout: float = 10.0) -> None:
        if not settings.metadata_url.lower().startswith("https://"):
            raise ValueError("SCIM_MANAGE_ENTRA_METADATA_URL (or the issuer) must be https://")
        self._settings = settings
        self._context = ssl_context or ssl.create_default_context()
        self._roles = roles or dict(DEFAULT_ROLES)
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._read_at: float | None = None
        self._forced_at: float | None = None

    def _get(self, url: str) -> Any:
        if not url.lower().startswith("https://"):
            raise ValueError(f"not an https URL: {url[:100]}")
        with urllib.request.urlopen(url, timeout=self._timeout,
                                    context=self._context) as response:
            return json.loads(response.read(1_000_000))

    def _refresh(self, *, forced: bool) -> None:
        now = self._clock()
        with self._lock:
            last = self._forced_at if forced else self._read_at
            if last is not None and now - last < (REFRESH_SECONDS if forced else KEYS_SECONDS):
                return
            if forced:
                self._forced_at = now
            try:
                metadata = self._get(self._settings.metadata_url)
                found = self._get(str(metadata["jwks_uri"]))
            except Exception as failure:
                log.warning("Entra ID signing keys could not be read: %s",
                            type(failure).__name__)
                if self._keys:
                    return  # keep serving with the keys already known
                raise Problem(503, "unavailable", "Entra ID signing keys could not be read; "
                              "try again later.", headers={"Retry-After": "30"}) from None
            keys = {}
            for entry in found.get("keys", []):
                if entry.get("kty") == "RSA" and entry.get("kid") and entry.get("use",
                                                                                 "sig") == "sig":
                    keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256").key
            self._keys = keys
            self._read_at = now

    def _key(self, kid: str) -> Any:
        self._refresh(forced=False)
        if kid not in self._keys:
            self._refresh(forced=True)
        return self._keys.get(kid)

    def check(self, token: str) -> Principal | None:
        """The principal of a valid token (scope ``none`` without a known app role), or
        None for anything that is not a valid token of this issuer and audience."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            return None
        key = self._key(header["kid"])
        if key is None:
            return None
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"],
                                audience=self._settings.entra_audience,
                                issuer=self._settings.entra_issuer, leeway=LEEWAY_SECONDS,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError:
            return None
        granted = {self._roles.get(str(role)) for role in claims.get("roles") or []
                   if isinstance(role, str)}
        scope = MANAGE if MANAGE in granted else READ if READ in granted else NO_SCOPE
        who = str(claims.get("oid") or claims.get("azp") or claims.get("appid")
                  or claims.get("sub") or "unknown")
        return Principal("entra:" + who[:100], scope, None)
