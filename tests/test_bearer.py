"""The Authorization header check and the static token source."""

from __future__ import annotations

import pytest

from scim_core.auth import StaticTokenSource, authenticate, bearer_token, constant_time_in
from scim_core.errors import Unauthorized

TOKEN = "Abc-123_xyz.~+/="


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} "])
def test_bearer_scheme_is_case_insensitive(header: str) -> None:
    """The Bearer scheme name matches in any case (RFC 7235); the token is kept exactly."""
    assert bearer_token(header) == TOKEN


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}",
                                    f"Token {TOKEN}", "Bearer a b", "Bearer \x00abc",
                                    "Bearer " + "a" * 5000])
def test_malformed_credentials_yield_no_token(header: str | None) -> None:
    """Missing, empty, non-Bearer, multi-part, control-character and oversized credentials
    are not tokens."""
    assert bearer_token(header) is None


def test_authenticate_accepts_only_the_configured_token() -> None:
    """authenticate passes the exact token and raises 401 for a near miss."""
    source = StaticTokenSource(TOKEN)
    authenticate(f"Bearer {TOKEN}", source)
    with pytest.raises(Unauthorized) as caught:
        authenticate(f"Bearer {TOKEN[:-1]}", source)
    assert TOKEN[:-1] not in caught.value.detail
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_constant_time_in_checks_every_candidate() -> None:
    """A token matches when it equals any accepted candidate, and only then."""
    assert constant_time_in("b", ["a", "b"])
    assert not constant_time_in("c", ["a", "b"])
    assert not constant_time_in("", ["a"])


def test_static_source_repr_hides_the_token() -> None:
    """The static token source never shows its token in repr."""
    assert TOKEN not in repr(StaticTokenSource(TOKEN))


def test_static_source_refuses_an_empty_token() -> None:
    """An empty static token is a configuration error, never 'accept everything'."""
    with pytest.raises(ValueError):
        StaticTokenSource("")
