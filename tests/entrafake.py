"""A local stand-in for Entra ID's OpenID metadata and signing keys, over HTTPS on
127.0.0.1 with a trustme CA, and tokens signed with its own RSA keys."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "api://scim-manage-test"


class FakeEntra:
    """Serves ``/<tenant>/v2.0/.well-known/openid-configuration`` and ``/keys``; ``sign``
    issues tokens with a published key (or an unpublished one, to test refreshes)."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.counts: Counter[str] = Counter()
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                fake.counts[self.path] += 1
                body: dict[str, Any]
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": fake.issuer, "jwks_uri": fake.base + "/keys"}
                elif self.path == "/keys":
                    body = {"keys": [fake.jwk(kid) for kid in fake.published]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = f"{self.base}/tenant-guid/v2.0"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEntra:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(
            self.keys[kid].public_key()))
        return {**found, "kid": kid, "use": "sig", "alg": "RS256"}

    def sign(self, kid: str, *, roles: list[str] | None = None, audience: str = AUDIENCE,
             issuer: str | None = None, lifetime: float = 3600, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": issuer or self.issuer, "aud": audience, "iat": now, "nbf": now,
                   "exp": now + int(lifetime), "oid": "backend-identity",
                   "roles": roles if roles is not None else ["Manage.All"], **claims}
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": kid})
