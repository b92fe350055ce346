"""The management API's read cost and long-poll bound (``python -m bench.manage``): a
management read against the same reader-library call over one store on Azurite, with the
Table Storage requests each makes on a warm process, and the threads event long-polls hold.

Not part of ``make bench``'s suites yet: it prints its own table.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from bench.azurite import Azurite
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


def main() -> int:
    from scim_core import Request, Settings, build_api
    from scim_core.manage import ManageApi
    from scim_core.manage.directory import Directory
    from scim_core.manage.keys import ApiKeys
    from scim_core.manage.rows import side_rows
    from scim_core.store.secrets import local_secrets

    with Azurite() as azurite:
        settings = Settings(store="tables", bearer_token=TOKEN,
                            tables_connection=azurite.connection_string, table_name="bench")
        counter = CallCounter()
        store = _counting_table_store(settings, counter)
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
        request = Request("GET", f"/tenants/default/users/{user_id}", "http://b/manage/v1", {},
                          {"Authorization": f"Bearer {key}"})
        rows = [("reader get_user", *_median_ms(lambda: reader.get_user(user_id), counter)),
                ("GET /manage/v1/…/users/{id}", *_median_ms(lambda: manage.handle(request),
                                                           counter))]
        print(f"{'call':34} {'median ms':>10} {'storage calls':>14}")
        for name, ms, calls in rows:
            print(f"{name:34} {ms:10.2f} {calls:14.2f}")

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
        print(f"32 long-polls at once: at most {now[1]} waited together "
              f"(bound {directory.max_waiters}); the others answered at once")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
