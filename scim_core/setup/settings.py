"""Settings of the setup page (``SCIM_SETUP_*``), from the app settings (environment)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ACCENT = "#0f6cbd"
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp|svg\+xml));base64,([A-Za-z0-9+/=]+)")
MAX_LOGO_BYTES = 256 * 1024


@dataclass(frozen=True)
class SetupSettings:
    """What the vendor sets: name, logo (a ``data:`` URL, served by the app), accent colour,
    whether the page may switch provisioning on and off, and the limits."""

    vendor_name: str = "SCIM provisioning"
    logo: tuple[str, bytes] | None = None
    """The logo's media type and bytes (``SCIM_SETUP_LOGO_URL``, a base64 ``data:`` URL)."""
    accent: str = DEFAULT_ACCENT
    allow_toggle: bool = False
    session_seconds: float = 3600.0
    exchange_per_minute: float = 30.0
    tokens_per_minute: float = 6.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SetupSettings:
        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                return default
            return value if value > 0 else default

        name = " ".join(env.get("SCIM_SETUP_VENDOR_NAME", "").split())[:80]
        accent = env.get("SCIM_SETUP_ACCENT_COLOR", "").strip()
        return cls(vendor_name=name or cls.vendor_name,
                   logo=logo_from_data_url(env.get("SCIM_SETUP_LOGO_URL", "").strip()),
                   accent=accent if _COLOUR.fullmatch(accent) else DEFAULT_ACCENT,
                   allow_toggle=env.get("SCIM_SETUP_ALLOW_TOGGLE", "").strip().lower()
                   in ("1", "true", "yes"),
                   session_seconds=number("SCIM_SETUP_SESSION_SECONDS", 3600.0),
                   exchange_per_minute=number("SCIM_SETUP_EXCHANGES_PER_MINUTE", 30.0),
                   tokens_per_minute=number("SCIM_SETUP_TOKENS_PER_MINUTE", 6.0))


def logo_from_data_url(value: str) -> tuple[str, bytes] | None:
    """The media type and bytes of a base64 image ``data:`` URL; None for anything else
    (a logo on another host would break the page's no-third-party rule)."""
    match = _DATA_URL.fullmatch(value)
    if match is None:
        return None
    try:
        raw = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None
    return (match.group(1), raw) if 0 < len(raw) <= MAX_LOGO_BYTES else None
