"""Concurrent clients over keep-alive ``http.client`` connections, one thread each."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, urlencode

from bench.runner import Caller, Job, Sample, Timed


class HttpCaller:
    """One keep-alive HTTP/1.1 connection to a SCIM root such as ``/scim/v2`` on 127.0.0.1."""

    def __init__(self, port: int, root: str, token: str, *, timeout: float = 120.0) -> None:
        self.port = port
        self.root = root.rstrip("/")
        self.timeout = timeout
        self._auth = f"Bearer {token}"
        self._conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        conn.connect()
        return conn

    def __call__(self, method: str, path: str, query: Mapping[str, str] | None = None,
                 body: bytes | None = None) -> tuple[int, bytes]:
        url = self.root + path
        if query:
            url += "?" + urlencode(query, quote_via=quote)
        headers = {"Authorization": self._auth}
        if body is not None:
            headers["Content-Type"] = "application/scim+json"
        for attempt in (1, 2):
            try:
                self._conn.request(method, url, body=body, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                # A server may close an idle keep-alive connection; reconnect once.
                self._conn.close()
                if attempt == 2:
                    raise
                self._conn = self._connect()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


def run_concurrent(make_caller: Callable[[], Caller], jobs: Iterable[Job], *, clients: int,
                   budget_s: float | None = None, min_jobs: int = 5) -> Sample:
    """Jobs pulled by ``clients`` threads, each on its own caller (connection).

    Connections are opened before the clock starts; the round's wall time runs from the
    moment every client is ready until the last one finishes. Once ``budget_s`` has
    passed (and ``min_jobs`` jobs have started) no new job is taken.
    """
    source = iter(jobs)
    lock = threading.Lock()
    errors: list[str] = []
    started = [0]
    clock = [0, 0]  # start, deadline: set the moment every client is ready

    def go() -> None:
        clock[0] = time.perf_counter_ns()
        clock[1] = clock[0] + int((budget_s or 0) * 1e9)

    ready = threading.Barrier(clients + 1, action=go)

    def next_job() -> Job | None:
        with lock:
            if budget_s is not None and started[0] >= min_jobs and \
                    time.perf_counter_ns() > clock[1]:
                return None
            job = next(source, None)
            started[0] += job is not None
            return job

    callers = [make_caller() for _ in range(clients)]
    timers = [Timed(caller) for caller in callers]

    def client(caller: Caller, timed: Timed) -> None:
        ready.wait()
        try:
            while (job := next_job()) is not None:
                try:
                    job(timed)
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:300])
        finally:
            close = getattr(caller, "close", None)
            if close is not None:
                close()

    threads = [threading.Thread(target=client, args=pair, daemon=True)
               for pair in zip(callers, timers, strict=True)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter_ns() - clock[0]
    return Sample([x for t in timers for x in t.latencies], wall,
                  sum(t.cpu_ns for t in timers), len(errors), errors[0] if errors else None)
