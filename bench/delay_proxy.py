"""A TCP proxy on 127.0.0.1 that adds a set delay to each HTTP message in each direction
(Azure's round trip, which Azurite on loopback hides), and logs every request it forwards."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType


@dataclass
class Exchange:
    """One forwarded storage request: when its first bytes reached the proxy and when its
    response's first bytes were passed on (``perf_counter`` seconds; 0.0 until then)."""

    sent: float
    answered: float = 0.0


def rounds(exchanges: list[Exchange]) -> int:
    """How many storage requests ran one after another: the number of groups left when
    overlapping request intervals are merged (two requests in flight at once are one)."""
    count, end = 0, -1.0
    for x in sorted(exchanges, key=lambda x: x.sent):
        finish = x.answered or x.sent
        if x.sent >= end:
            count += 1
            end = finish
        else:
            end = max(end, finish)
    return count


class _Connection:
    """One client connection and its upstream one. HTTP/1.1 without pipelining: bytes
    from the client after a response has begun start a new request, and bytes from the
    server after a request start its response; each of those first bytes waits."""

    def __init__(self, proxy: DelayProxy, client: socket.socket, upstream: socket.socket
                 ) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream = upstream
        self._lock = threading.Lock()
        self._awaiting: Exchange | None = None  # a request sent, its response not begun
        self._done = 0
        for args in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while chunk := source.recv(65536):
                delay = 0.0
                with self._lock:
                    if upward and self._awaiting is None:
                        self._awaiting = self._proxy.record()
                        delay = self._proxy.up_s
                    elif not upward and self._awaiting is not None:
                        exchange, self._awaiting = self._awaiting, None
                        delay = self._proxy.down_s
                        exchange.answered = time.perf_counter() + delay
                if delay:
                    time.sleep(delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            with self._lock:
                self._done += 1
                last = self._done == 2
            if last:
                self._client.close()
                self._upstream.close()


class DelayProxy:
    """``with DelayProxy(upstream_port) as proxy:`` forwards 127.0.0.1:``proxy.port`` to
    127.0.0.1:``upstream_port``; ``set_rtt(ms)`` splits a round trip over both directions."""

    def __init__(self, upstream_port: int, *, up_s: float = 0.0, down_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.up_s = up_s
        self.down_s = down_s
        self._lock = threading.Lock()
        self._log: list[Exchange] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._closed = False
        self.connections = 0
        """Client connections accepted so far."""
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def set_rtt(self, ms: float) -> None:
        self.up_s = self.down_s = ms / 2000

    def record(self) -> Exchange:
        exchange = Exchange(time.perf_counter())
        with self._lock:
            self._log.append(exchange)
        return exchange

    @property
    def count(self) -> int:
        """Storage requests forwarded so far."""
        with self._lock:
            return len(self._log)

    def since(self, start: float, end: float | None = None) -> list[Exchange]:
        """The requests whose first bytes arrived in ``[start, end]``."""
        with self._lock:
            return [x for x in self._log if x.sent >= start and (end is None or x.sent <= end)]

    def clear(self) -> None:
        with self._lock:
            self._log.clear()

    def connection_string(self, connection: str) -> str:
        """An Azurite connection string with its table endpoint's port replaced by ours."""
        return connection.replace(f"127.0.0.1:{self.upstream_port}/", f"127.0.0.1:{self.port}/")

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            self.connections += 1
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _Connection(self, client, upstream)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):  # shutdown wakes the accept() in _accept
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
