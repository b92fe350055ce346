"""Setup links and the sessions they open: 256 random bits each, kept only as SHA-256
hashes in side rows beside the API keys; a link opens one session, once."""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from scim_core.manage.keys import digest
from scim_core.manage.rows import RowExists, SideRows
from scim_core.tenants.model import check_tenant_id

log = logging.getLogger("scim_core.setup")

LINKS_PARTITION = "$setuplinks"
USED_PARTITION = "$setupused"
"""One row per link used: inserted, so two visits racing cannot both open a session."""
SESSIONS_PARTITION = "$setupsessions"
LINK_PREFIX = "ssl_"
DEFAULT_LINK_SECONDS = 24 * 3600
MAX_LINK_SECONDS = 7 * 24 * 3600
_LINK = re.compile(r"ssl_([a-z2-7]{16})_([A-Za-z0-9_-]{43})")
_SESSION = re.compile(r"[A-Za-z0-9_-]{43}")
_ID = re.compile(r"[a-z2-7]{16}")


class LinkRefused(Exception):
    """A link that opens no session; ``reason`` is one of unknown, expired, used, revoked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidLinkRequest(ValueError):
    """A link that cannot be created as asked."""


@dataclass(frozen=True)
class SetupLink:
    """A link's metadata (never its value)."""

    id: str
    tenant: str
    created: str
    expires: str
    used: str | None = None
    revoked: str | None = None

    def document(self) -> dict[str, object]:
        return {"id": self.id, "tenant": self.tenant, "created": self.created,
                "expires": self.expires, "used": self.used, "revoked": self.revoked}


@dataclass(frozen=True)
class SetupSession:
    """A session a link opened: its tenant, expiry (epoch seconds) and CSRF token."""

    tenant: str
    link: str
    expires: float
    csrf: str


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class SetupLinks:
    """Create, revoke and exchange setup links; check the sessions they open."""

    def __init__(self, rows: SideRows, *, clock: Callable[[], float] = time.time) -> None:
        self._rows = rows
        self._clock = clock

    def create(self, tenant: str, *, seconds: float = DEFAULT_LINK_SECONDS
               ) -> tuple[SetupLink, str]:
        """A new link for ``tenant`` valid ``seconds`` (at most 7 days), and its value,
        shown once."""
        check_tenant_id(tenant)
        if not 60 <= seconds <= MAX_LINK_SECONDS:
            raise InvalidLinkRequest(f"a setup link lasts 60 seconds to {MAX_LINK_SECONDS} "
                                     "seconds (7 days)")
        link_id = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:16]
        value = f"{LINK_PREFIX}{link_id}_{secrets.token_urlsafe(32)}"
        now = self._clock()
        link = SetupLink(link_id, tenant, _stamp(now), _stamp(now + seconds))
        self._rows.insert(LINKS_PARTITION, link_id, {
            "hash": digest(value), "tenant": tenant, "created": link.created,
            "expires": link.expires, "revoked": ""})
        log.info("Setup link %s created for tenant %s (expires %s)", link_id, tenant,
                 link.expires)
        return link, value

    def get(self, link_id: str) -> SetupLink | None:
        if not _ID.fullmatch(link_id):
            return None
        row = self._rows.get(LINKS_PARTITION, link_id)
        return None if row is None else self._link(link_id, row)

    def list(self, tenant: str) -> list[SetupLink]:
        """The tenant's links, revoked, used and expired ones included."""
        return [self._link(k, row) for k, row in self._rows.scan(LINKS_PARTITION)
                if row.get("tenant") == tenant]

    def revoke(self, link_id: str, *, tenant: str | None = None) -> SetupLink | None:
        """Revoke a link (kept, marked revoked) and end the session it opened; None when
        there is no such link (of ``tenant``, when given)."""
        row = self._rows.get(LINKS_PARTITION, link_id) if _ID.fullmatch(link_id) else None
        if row is None or (tenant is not None and row.get("tenant") != tenant):
            return None
        if not row.get("revoked"):
            row["revoked"] = _stamp(self._clock())
            self._rows.replace(LINKS_PARTITION, link_id, row)
            log.info("Setup link %s of tenant %s revoked", link_id, row.get("tenant"))
        for key, session in self._rows.scan(SESSIONS_PARTITION):
            if session.get("link") == link_id:
                self._rows.delete(SESSIONS_PARTITION, key)
        return self._link(link_id, row)

    def exchange(self, presented: str, seconds: float) -> tuple[SetupSession, str]:
        """Open a session of ``seconds`` with a link, once; the session and its cookie
        value. Raises ``LinkRefused``."""
        match = _LINK.fullmatch(presented)
        if match is None:
            raise LinkRefused("unknown")
        link_id = match.group(1)
        row = self._rows.get(LINKS_PARTITION, link_id)
        if row is None or not hmac.compare_digest(str(row.get("hash", "")),
                                                  digest(presented)):
            raise LinkRefused("unknown")
        now = self._clock()
        if row.get("revoked"):
            raise LinkRefused("revoked")
        if now >= _epoch(str(row["expires"])):
            raise LinkRefused("expired")
        try:
            self._rows.insert(USED_PARTITION, link_id, {"used": _stamp(now)})
        except RowExists:
            raise LinkRefused("used") from None
        value = secrets.token_urlsafe(32)
        session = SetupSession(str(row["tenant"]), link_id, now + seconds,
                               secrets.token_urlsafe(32))
        self._rows.insert(SESSIONS_PARTITION, digest(value), {
            "tenant": session.tenant, "link": link_id, "expires": session.expires,
            "csrf": session.csrf})
        log.info("Setup link %s of tenant %s used: a session until %s", link_id,
                 session.tenant, _stamp(session.expires))
        self._prune(now)
        return session, value

    def session(self, presented: str) -> SetupSession | None:
        """The live session of a cookie value, or None."""
        if not _SESSION.fullmatch(presented):
            return None
        row = self._rows.get(SESSIONS_PARTITION, digest(presented))
        if row is None:
            return None
        expires = float(row.get("expires", 0))
        if self._clock() >= expires:
            return None
        return SetupSession(str(row["tenant"]), str(row["link"]), expires, str(row["csrf"]))

    def end(self, presented: str) -> None:
        """End a session (sign out)."""
        if _SESSION.fullmatch(presented):
            self._rows.delete(SESSIONS_PARTITION, digest(presented))

    def _prune(self, now: float) -> None:
        """Remove ended sessions (links are opened rarely, so a scan here is cheap)."""
        for key, row in self._rows.scan(SESSIONS_PARTITION):
            if now >= float(row.get("expires", 0)):
                self._rows.delete(SESSIONS_PARTITION, key)

    def _link(self, link_id: str, row: dict[str, object]) -> SetupLink:
        used = self._rows.get(USED_PARTITION, link_id)
        return SetupLink(link_id, str(row.get("tenant", "")), str(row.get("created", "")),
                         str(row.get("expires", "")),
                         None if used is None else str(used.get("used") or ""),
                         str(row.get("revoked") or "") or None)
