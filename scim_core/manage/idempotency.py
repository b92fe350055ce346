"""``Idempotency-Key`` on POST: a retry within 24 hours gets the first answer again.

The first answer may hold a token shown once, so it is kept encrypted (AES-GCM) under a key
derived (HKDF-SHA256) from the Idempotency-Key itself, which the row does not hold: the row
is keyed by a hash of the credential's id and the Idempotency-Key. The stored row alone
opens nothing; the caller who retries with the same credential and key does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from scim_core.http import Request, Response
from scim_core.manage.problems import Problem
from scim_core.manage.rows import RowExists, SideRows

PARTITION = "$idempotency"
KEEP_SECONDS = 24 * 3600
PENDING_SECONDS = 150.0
"""A request that left its row pending this long died (the host stops a function at two
minutes): its key may be used again."""
MAX_KEY_LENGTH = 255
_INFO = b"scim-manage idempotency v1"


def _secret(principal: str, key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=principal.encode(),
                info=_INFO).derive(key.encode())


def _row_key(principal: str, key: str) -> str:
    return hashlib.sha256(f"{principal}\0{key}".encode()).hexdigest()


def fingerprint(request: Request) -> str:
    """What makes two requests the same one: method, path and body."""
    digest = hashlib.sha256()
    for part in (request.method.upper().encode(), request.path.encode(), request.body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _seal(principal: str, key: str, response: Response) -> str:
    plain = json.dumps({"status": response.status, "headers": dict(response.headers),
                        "body": base64.b64encode(response.body).decode()}).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(_secret(principal, key)).encrypt(nonce, plain, _row_key(principal,
                                                                               key).encode())
    return base64.b64encode(nonce + sealed).decode()


def _open(principal: str, key: str, sealed: str) -> Response:
    raw = base64.b64decode(sealed)
    plain = AESGCM(_secret(principal, key)).decrypt(raw[:12], raw[12:],
                                                    _row_key(principal, key).encode())
    found = json.loads(plain)
    headers = {**found["headers"], "Idempotent-Replayed": "true"}
    return Response(int(found["status"]), headers, base64.b64decode(found["body"]))


@dataclass(frozen=True)
class IdempotencyTrim:
    """One retention run over the kept first answers: rows removed, and whether every
    expired one went (False: the budget ran out first; the next run goes on)."""

    removed: int
    complete: bool


class Idempotency:
    """First answers of POSTs by (credential, Idempotency-Key), in ``rows``."""

    def __init__(self, rows: SideRows, *, clock: Callable[[], float] = time.time) -> None:
        self._rows = rows
        self._clock = clock

    def run(self, principal: str, key: str, request: Request,
            action: Callable[[], Response]) -> Response:
        """``action``'s answer, or the first answer to this key within 24 hours. A key sent
        with another request is refused (422); one whose first request is under way too
        (409). A server error is not kept: a retry runs again."""
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise Problem(400, "invalid-request",
                          f"Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable characters.")
        row_key = _row_key(principal, key)
        mark = fingerprint(request)
        for _ in range(3):
            now = self._clock()
            row = self._rows.get(PARTITION, row_key)
            if row is not None and (float(row["expires"]) <= now or (
                    row.get("state") == "pending"
                    and now - float(row["started"]) > PENDING_SECONDS)):
                self._rows.delete(PARTITION, row_key)
                row = None
            if row is not None:
                if row.get("fingerprint") != mark:
                    raise Problem(422, "idempotency-key-reused",
                                  "This Idempotency-Key was sent with another request; use a "
                                  "new key for a new request.")
                if row.get("state") != "done":
                    raise Problem(409, "idempotency-in-progress",
                                  "The first request with this Idempotency-Key is still under "
                                  "way; retry shortly.", headers={"Retry-After": "2"})
                return _open(principal, key, str(row["answer"]))
            try:
                self._rows.insert(PARTITION, row_key, {
                    "state": "pending", "fingerprint": mark, "started": now,
                    "expires": now + KEEP_SECONDS})
            except RowExists:
                continue
            break
        else:
            raise Problem(409, "idempotency-in-progress", "Retry shortly.",
                          headers={"Retry-After": "2"})
        try:
            response = action()
        except BaseException:
            self._rows.delete(PARTITION, row_key)
            raise
        if response.status >= 500:
            self._rows.delete(PARTITION, row_key)
            return response
        self._rows.replace(PARTITION, row_key, {
            "state": "done", "fingerprint": mark, "started": now,
            "expires": now + KEEP_SECONDS, "answer": _seal(principal, key, response)})
        return response

    def trim(self, *, budget_seconds: float, step: int = 1000,
             clock: Callable[[], float] = time.monotonic) -> IdempotencyTrim:
        """Delete the rows past their 24 hours (a request that died pending expires too):
        at most ``step`` keys read per query, deleted 100 a batch; no step starts after
        ``budget_seconds``. Storage failures are raised (``StoreError``)."""
        began = clock()
        now = self._clock()
        removed = 0
        while clock() - began < budget_seconds:
            keys = self._rows.below(PARTITION, "expires", now, most=step)
            self._rows.delete_many(PARTITION, keys)
            removed += len(keys)
            if len(keys) < step:
                return IdempotencyTrim(removed, True)
        return IdempotencyTrim(removed, False)
