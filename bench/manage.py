"""The management API's read cost and long-poll bound (the ``manage`` suite of
``make bench``, or ``python -m bench.manage``): a management read against the same
reader-library call over one store on Azurite, with the Table Storage requests each makes on
a warm process, and the threads event long-polls hold."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.azurite import Azurite
from bench.environment import Environment, log
from bench.systems import TOKEN, CallCounter, _counting_table_store

ROUNDS = 300


def _median_ms(call: Callable[[], object], counter: CallCounter) -> tuple[float, float]:
    for _ in range(20):
        call()  # warm: caches, connections
    before = counter.value
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, (counter.value - before) / ROUNDS


def measure(connection: str) -> dict[str, Any]:
    """The figures over the Azurite of ``connection``: median ms and storage requests of a
    read by user id through the reader and through the management API, and how many of 32
    long-polls at once waited together against their bound."""
    from scim_core import Request, Settings, build_api
    from scim_core.manage import ManageApi
    from scim_core.manage.directory import Directory
    from scim_core.manage.keys import ApiKeys
    from scim_core.manage.rows import side_rows
    from scim_core.store.secrets import local_secrets

    settings = Settings(store="tables", bearer_token=TOKEN, tables_connection=connection,
                        table_name=f"benchmanage{uuid.uuid4().hex[:8]}")
    counter = CallCounter()
    store = _counting_table_store(settings, counter)
    try:
        secrets = local_secrets(store)
        scim = build_api(settings, store=store, secrets=secrets)
        manage = ManageApi(store, secrets, settings)
        _, key = ApiKeys(side_rows(store)).create("read")
        made = scim.handle(Request(
            "POST", "/Users", "http://b/scim/v2", {},
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"},
            b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@b"}'))
        user_id = made.document()["id"]
        assert manage.directory is not None
        reader = manage.directory.tenant("default")
        request = Request("GET", f"/tenants/default/users/{user_id}", "http://b/manage/v1",
                          {}, {"Authorization": f"Bearer {key}"})
        reader_ms, reader_calls = _median_ms(lambda: reader.get_user(user_id), counter)
        manage_ms, manage_calls = _median_ms(lambda: manage.handle(request), counter)

        lock = threading.Lock()
        now = [0, 0]  # sleeping now, most at once

        def sleep(seconds: float) -> None:
            with lock:
                now[0] += 1
                now[1] = max(now[1], now[0])
            time.sleep(seconds)
            with lock:
                now[0] -= 1

        directory = Directory(store.table, max_waiters=4, sleep=sleep)
        position = reader.position()
        threads = [threading.Thread(target=directory.events,
                                    args=("default", position, 10, 1.0)) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        store.table.delete_table()
    finally:
        store.close()
    return {"reader_get_user": {"median_ms": round(reader_ms, 2), "storage": reader_calls},
            "manage_get_user": {"median_ms": round(manage_ms, 2), "storage": manage_calls},
            "long_polls": 32, "long_poll_most_waiting": now[1],
            "long_poll_bound": directory.max_waiters}


def run(env: Environment, results: Any) -> None:
    """The ``manage`` suite (Table Storage only): figures go to the log and the JSON's meta."""
    if not env.with_tables:
        return
    figures = measure(env.connection)
    log(f"manage: {figures}")
    results.meta["manage"] = figures


def main() -> int:
    with Azurite() as azurite:
        figures = measure(azurite.connection_string)
    print(f"{'call':34} {'median ms':>10} {'storage calls':>14}")
    for name, row in (("reader get_user", figures["reader_get_user"]),
                      ("GET /manage/v1/…/users/{id}", figures["manage_get_user"])):
        print(f"{name:34} {row['median_ms']:10.2f} {row['storage']:14.2f}")
    print(f"32 long-polls at once: at most {figures['long_poll_most_waiting']} waited "
          f"together (bound {figures['long_poll_bound']}); the others answered at once")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
