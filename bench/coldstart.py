"""Cold start: a fresh interpreter imports function_app and serves its first request."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.systems import ROOT, TOKEN, child_env

# Runs in the child. The trigger gets a real func.HttpRequest, as from the Functions host:
# Entra's Test Connection query for a user that cannot exist.
CHILD = """
import json, time
start = time.perf_counter_ns()
import function_app
imported = time.perf_counter_ns()
import azure.functions as func
value = 'userName eq "5c0f7d0e-2b83-4c5e-9f0e-8e2c6f3b1a47"'
request = func.HttpRequest(
    method="GET", url="http://127.0.0.1:7071/scim/v2/Users", body=b"",
    headers={"Authorization": "Bearer " + %(token)r}, params={"filter": value},
    route_params={"path": "Users"})
response = function_app.scim(request)
served = time.perf_counter_ns()
print(json.dumps({"status": response.status_code, "import_ns": imported - start,
                  "first_request_ns": served - imported}))
"""


@dataclass(frozen=True)
class ColdStart:
    runs: int
    wall_ms: float
    """Median wall time from spawning the interpreter to its exit after the response."""
    best_ms: float
    import_ms: float
    first_request_ms: float
    status: int

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 2) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def measure(settings: Mapping[str, str], *, runs: int = 5) -> ColdStart:
    """Median of ``runs`` fresh processes with the given SCIM_ settings."""
    env = child_env({"SCIM_BEARER_TOKEN": TOKEN, **settings})
    code = CHILD % {"token": TOKEN}
    walls, imports, firsts, status = [], [], [], 0
    for _ in range(runs):
        start = time.perf_counter_ns()
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                              capture_output=True, timeout=120, check=False)
        walls.append((time.perf_counter_ns() - start) / 1e6)
        if done.returncode != 0:
            raise RuntimeError(f"cold start child failed: {done.stderr[-2000:].decode()}")
        report = json.loads(done.stdout.decode().strip().splitlines()[-1])
        imports.append(report["import_ns"] / 1e6)
        firsts.append(report["first_request_ns"] / 1e6)
        status = int(report["status"])
    return ColdStart(runs, statistics.median(walls), min(walls), statistics.median(imports),
                     statistics.median(firsts), status)
