"""Settings of the management API, from the app settings (environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ROLES = {"Manage.All": "manage", "Read.All": "read"}


@dataclass(frozen=True)
class ManageSettings:
    """``SCIM_MANAGE_*``: Entra ID tokens are accepted when issuer and audience are set."""

    entra_issuer: str = ""
    entra_audience: str = ""
    entra_metadata_url: str = ""
    """Defaults to ``<issuer>/.well-known/openid-configuration``."""
    key_cache_seconds: float = 30.0
    max_body_bytes: int = 64 * 1024
    max_waiters: int = 8
    page_limit: int = 200

    @property
    def entra_enabled(self) -> bool:
        return bool(self.entra_issuer and self.entra_audience)

    @property
    def metadata_url(self) -> str:
        return self.entra_metadata_url or (
            self.entra_issuer.rstrip("/") + "/.well-known/openid-configuration")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ManageSettings:
        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                return default

        return cls(entra_issuer=env.get("SCIM_MANAGE_ENTRA_ISSUER", "").strip(),
                   entra_audience=env.get("SCIM_MANAGE_ENTRA_AUDIENCE", "").strip(),
                   entra_metadata_url=env.get("SCIM_MANAGE_ENTRA_METADATA_URL", "").strip(),
                   key_cache_seconds=number("SCIM_MANAGE_KEY_CACHE_SECONDS", 30.0),
                   max_waiters=max(1, int(number("SCIM_MANAGE_MAX_WAITERS", 8))))
