"""Azurite's table service for a benchmark run: a free loopback port, a temp location."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
AZURITE_TABLE = NODE_MODULES / ".bin" / "azurite-table"
KEYED_LOOKUPS = ROOT / "scripts" / "azurite_keyed_lookups.js"
KEYED_RANGES = ROOT / "bench" / "azurite_ranges.js"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def keyed_command() -> list[str]:
    """Azurite's table service with ``KEYED_LOOKUPS`` preloaded."""
    return ["node", "--require", str(KEYED_LOOKUPS), str(AZURITE_TABLE.resolve())]


def azurite_environment() -> dict[str, str]:
    """This process's environment plus where the keyed-lookup preload finds LokiJS."""
    return {**os.environ, "AZURITE_NODE_MODULES": str(NODE_MODULES)}


def installed() -> bool:
    return AZURITE_TABLE.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Azurite:
    """``with Azurite() as azurite: azurite.connection_string``; stopped by its PID.

    ``in_memory`` keeps the tables in memory only (``--inMemoryPersistence``), so Azurite
    does not write its whole database to disk every few seconds while being measured.
    ``keyed_lookups`` preloads ``azurite_keyed_lookups.js``, which makes Azurite find an
    entity by its RowKey index instead of scanning its partition (docs/performance.md).
    """

    def __init__(self, *, in_memory: bool = True, keyed_lookups: bool = False,
                 keyed_ranges: bool = False, timeout: float = 30.0) -> None:
        self.in_memory = in_memory
        self.keyed_lookups = keyed_lookups or keyed_ranges
        self.keyed_ranges = keyed_ranges
        self.timeout = timeout
        self.port = 0
        self.location = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    def start(self) -> Azurite:
        if not installed():
            raise RuntimeError(f"{AZURITE_TABLE} is missing; run `npm ci` (or `make setup`).")
        self.location = tempfile.mkdtemp(prefix="bench-azurite-")
        for _ in range(3):
            self.port = _free_port()
            argv = keyed_command() if self.keyed_lookups else [str(AZURITE_TABLE)]
            if self.keyed_ranges:  # bench/azurite_ranges.js: ranges from the RowKey index
                argv[1:1] = ["--require", str(KEYED_RANGES)]
            argv += ["--tableHost", "127.0.0.1", "--tablePort",
                    str(self.port), "--silent", "--skipApiVersionCheck", "--disableTelemetry"]
            # Azurite refuses --location together with --inMemoryPersistence; it then runs
            # in the temp directory, so nothing it might write lands in the repository.
            argv += ["--inMemoryPersistence"] if self.in_memory else ["--location",
                                                                      self.location]
            self.process = subprocess.Popen(argv, cwd=self.location, env=azurite_environment(),
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL,
                                            stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if _listening(self.port):
                    return self
                time.sleep(0.1)
            self._stop_process()
        self.stop()
        raise RuntimeError("Azurite did not start on a loopback port.")

    def _stop_process(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        self._stop_process()
        if self.location:
            shutil.rmtree(self.location, ignore_errors=True)
            self.location = ""

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
