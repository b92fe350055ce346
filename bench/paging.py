"""Suite 8, paging: what one page of an unfiltered listing costs as the tenant grows, on Table
Storage (Azurite with keyed lookups and RowKey ranges, bench/azurite_ranges.js).

1. The middle page (``count`` 100) of a listing by startIndex, after the page before it, at
   ``paging_small`` and ``paging_large`` users: time and storage requests.
2. Peak RSS of a fresh process serving one 100-user page at the middle of each tenant (a
   jump: it reads the keys before the page), measured in a subprocess.
3. A full Okta-style listing (startIndex pages of 100) of the large tenant: time per page
   over the listing, first tenth against last tenth.

Users are seeded straight into the table with the store's own entity builders
(bench/seed_rows.py); one write through the API then makes the tenant's feed row, and the
first listing counts the seeded users once.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from bench.azurite import Azurite
from bench.environment import Environment, log
from bench.report import PagingResult, PagingSize, Results
from bench.seed_rows import seed_user_rows
from bench.systems import ROOT, Target, child_env, ours_in_process

PAGE = 100
PADDING = 400
"""Characters of ``title`` per seeded user: documents of about 0.6 KB."""


def _get_page(target: Target, start: int) -> tuple[float, int, int]:
    """One GET /Users page: its time (ms), its storage requests and its resources."""
    call = target.make_caller()
    assert target.storage_calls is not None
    calls = target.storage_calls()
    began = time.perf_counter()
    status, body = call("GET", "/Users", {"startIndex": str(start), "count": str(PAGE)}, None)
    took = (time.perf_counter() - began) * 1e3
    if status != 200:
        raise RuntimeError(f"GET /Users?startIndex={start} answered {status}: {body[:200]!r}")
    return took, target.storage_calls() - calls, len(json.loads(body)["Resources"])


def _prepare(connection: str, table: str, users: int, tag: str) -> Target:
    """A tenant of ``users`` users (plus the one written through the API), counted."""
    from azure.data.tables import TableClient

    began = time.monotonic()
    with TableClient.from_connection_string(connection, table) as client:
        seed_user_rows(client, "default", tag, 0, users, padding=PADDING)
    target = ours_in_process("tables", connection=connection, table=table)
    call = target.make_caller()
    status, _ = call("POST", "/Users", None, json.dumps(
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
         "userName": f"{tag}.written@contoso.example"}).encode())
    assert status == 201, status
    _get_page(target, 1)  # the first listing counts the seeded users, once
    log(f"paging: seeded {users:,} users in {time.monotonic() - began:.1f} s")
    return target


_RSS_SCRIPT = """
import json, sys
from scim_core import Request, Settings, build_api
from scim_core.auth import StaticTokenSource

def high_water_kib():
    # VmHWM is this process's own peak; getrusage's ru_maxrss keeps the parent's from
    # before exec, which here is the bench holding a seeded tenant's ids.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

connection, table, start, token = sys.argv[1:5]
settings = Settings(store="tables", tables_connection=connection, table_name=table,
                    bearer_token=token)
api = build_api(settings, tokens=StaticTokenSource(token))
before = high_water_kib()
response = api.handle(Request("GET", "/Users", "http://127.0.0.1/scim/v2",
                              {"startIndex": start, "count": "100"},
                              {"Authorization": "Bearer " + token}, b""))
assert response.status == 200, response.body[:300]
found = len(json.loads(response.body)["Resources"])
print(json.dumps({"before_kib": before, "peak_kib": high_water_kib(), "resources": found}))
"""


def peak_rss_mib(connection: str, table: str, start: int) -> float:
    """Peak RSS (MiB) of a new process that imports the app and serves one page."""
    from bench.systems import TOKEN

    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, connection, table, str(start),
                           TOKEN], env=child_env({}), cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the RSS probe failed: {done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["resources"] == PAGE, answer
    return float(answer["peak_kib"]) / 1024


def measure(connection: str, small: int, large: int, rounds: int) -> PagingResult:
    result = PagingResult()
    targets: dict[int, tuple[Target, str]] = {}
    for users in (small, large):
        table = f"benchpaging{users}t{int(time.time())}"
        targets[users] = (_prepare(connection, table, users, f"p{users}"), table)
    middles = {users: (users // 2) // PAGE * PAGE + 1 for users in targets}
    for users, (target, _) in targets.items():
        for start in range(1, middles[users] - PAGE, PAGE):  # the listing up to the middle
            _get_page(target, start)
    times: dict[int, list[float]] = {users: [] for users in targets}
    calls: dict[int, set[int]] = {users: set() for users in targets}
    sizes = list(targets)
    for r in range(rounds):  # the sizes take turns, so that the machine's noise hits both
        for users in sizes[r % 2:] + sizes[:r % 2]:
            target = targets[users][0]
            _get_page(target, middles[users] - PAGE)
            took, used, found = _get_page(target, middles[users])
            assert found == PAGE
            times[users].append(took)
            calls[users].add(used)
    for users, (_, table) in targets.items():
        rss = peak_rss_mib(connection, table, middles[users])
        median = statistics.median(times[users])
        result.sizes.append(PagingSize(users, median, statistics.mean(calls[users]), rss))
        log(f"paging: {users:,} users: middle page {median:.1f} ms, "
            f"{sorted(calls[users])} storage requests, peak RSS {rss:.1f} MiB")
    target = targets[large][0]
    per_page: list[float] = []
    began = time.monotonic()
    start = 1
    while True:
        took, _, found = _get_page(target, start)
        per_page.append(took)
        if found < PAGE:
            break
        start += PAGE
    result.listing_s = time.monotonic() - began
    result.listing_users, result.listing_pages = large + 1, len(per_page)
    tenth = max(1, len(per_page) // 10)
    result.first_tenth_ms = statistics.median(per_page[:tenth])
    result.last_tenth_ms = statistics.median(per_page[-tenth - 1:-1] or per_page[-1:])
    for target, _ in targets.values():
        target.close()
    return result


def run(env: Environment, results: Results) -> None:
    """The paging suite, on its own Azurite (keyed lookups and ranges), deleted after."""
    if not env.with_tables:
        log("paging: needs Table Storage (Azurite); skipped")
        return
    s = env.scale
    with Azurite(keyed_ranges=True) as azurite:
        results.paging = measure(azurite.connection_string, s.paging_small, s.paging_large,
                                 s.paging_rounds)
