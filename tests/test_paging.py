"""Paging costs the page, not the tenant: pages by position and cursor, exact kept counts,
streamed filters and bounded sorts, on both stores."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from bench.seed_rows import seed_user_rows
from scim_core import query
from scim_core.filter.parser import parse_filter
from scim_core.projection import Projection
from scim_core.query import Scope, Searcher, SearchParams
from scim_core.store import USER, IndexKey, MemoryStore, Meta, Record, Store
from scim_core.store.base import GROUP, TenantStore
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.feed import FEED_ROW
from tests.azurite import RequestLog, TableHarness
from tests.conftest import make_api
from tests.support import FunctionClient, assert_scim_error, use_api

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(600)

T = "default"
META = Meta("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "1")


def create_user(store: Store, resource_id: str, tenant: str = T) -> None:
    store.tenant(tenant).create(Record(USER, resource_id, {"userName": resource_id}, META),
                                [IndexKey("userName", resource_id, True)])


def listed_ids(view: TenantStore, size: int) -> Iterator[list[str]]:
    """The ids of each page of a listing by position, until a short page."""
    offset = 0
    while True:
        page = [r.id for r in view.window(USER, offset=offset, size=size).records]
        yield page
        if len(page) < size:
            return
        offset += size


def document_queries(entries: list[tuple[str, str]]) -> list[str]:
    return [target for method, target in entries if method == "GET" and "$filter=" in target]


# -- the cost of a page ----------------------------------------------------------------------


def test_a_page_costs_the_same_requests_at_300_and_3000_users(
        keyed_table_harness: TableHarness) -> None:
    """The page after the middle of a listing costs one feed read and one range query of
    the page's rows, at 300 users as at 3,000."""
    # on Azurite with keyed lookups (seeding 3,300 rows on stock Azurite costs a minute)
    table_harness = keyed_table_harness
    store, log = table_harness.store, table_harness.requests
    costs = {}
    for tenant, users in (("small", 300), ("large", 3000)):
        seed_user_rows(table_harness.client, tenant, tenant, 0, users, workers=1)
        create_user(store, "zz-last", tenant)  # a write: the tenant's feed row
        view = store.tenant(tenant)
        middle = (users + 1) // 2 // 50 * 50
        for offset in range(0, middle, 50):
            view.window(USER, offset=offset, size=50)
        log.clear()
        window = view.window(USER, offset=middle, size=50)
        assert window.total == users + 1 and len(window.records) == 50
        costs[tenant] = list(log.entries)
    for tenant, entries in costs.items():
        queries = document_queries(entries)
        assert len(entries) == 2, (tenant, entries)
        assert len(queries) == 1 and "$top=50" in queries[0], (tenant, entries)
        assert sum("(PartitionKey=" in target for _, target in entries) == 1, (tenant, entries)


def test_a_jump_reads_keys_before_the_page_never_their_documents(
        keyed_table_harness: TableHarness) -> None:
    """A page no earlier page of this process ended at reads the keys before it (RowKey
    only), then the page; a second jump further on reads the keys from where the first
    page ended."""
    table_harness = keyed_table_harness  # on Azurite with keyed lookups, for its 2,500 rows
    seed_user_rows(table_harness.client, T, "jump", 0, 2500, workers=1)
    create_user(table_harness.store, "zz-last")
    assert table_harness.store.tenant(T).count(USER) == 2501  # the feed row's counts, once
    log = RequestLog()
    fresh = table_harness.another_store(raw_response_hook=log)  # another process: no marks
    window = fresh.tenant(T).window(USER, offset=2200, size=30)
    expected = sorted(r.id for r in table_harness.store.tenant(T).scan(USER))[2200:2230]
    assert [r.id for r in window.records] == expected
    *skips, page = document_queries(log.entries)
    assert len(skips) == 3 and all("$select=RowKey" in q for q in skips)
    assert "$select" not in page and "$top=30" in page
    log.clear()
    fresh.tenant(T).window(USER, offset=2400, size=30)
    skip, page = document_queries(log.entries)  # keys from where the last page ended
    assert "$select=RowKey" in skip and "$top=170" in skip and "$top=30" in page


# -- exact counts ----------------------------------------------------------------------------


def test_counts_are_exact_after_creates_deletes_and_concurrent_writes(
        any_store: Store, request: pytest.FixtureRequest) -> None:
    """Threads on two store instances create and delete users and groups; the kept counts
    equal the resources stored, and move with every later write."""
    stores = [any_store]
    if isinstance(any_store, TableStore):
        harness: TableHarness = request.getfixturevalue("table_harness")
        stores.append(harness.another_store())
    failures: list[BaseException] = []

    def work(k: int) -> None:
        view = stores[k % len(stores)].tenant(T)
        try:
            for n in range(12):
                create_user(stores[k % len(stores)], f"u{k}-{n:02d}")
                if n % 3 == 0:
                    view.delete(USER, f"u{k}-{n:02d}")
            view.create(Record(GROUP, f"g{k}", {"displayName": f"g{k}"}, META),
                        [IndexKey("displayName", f"g{k}", True)])
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for store in stores:
        view = store.tenant(T)
        assert view.count(USER) == sum(1 for _ in view.scan(USER)) == 4 * 8
        assert view.count(GROUP) == 4
    any_store.tenant(T).delete(GROUP, "g0")
    create_user(any_store, "late")
    for store in stores:
        assert (store.tenant(T).count(USER), store.tenant(T).count(GROUP)) == (33, 3)


def test_a_feed_row_from_before_counts_is_counted_once_and_a_racing_write_counts_again(
        table_harness: TableHarness) -> None:
    """A feed row without counts gets them from a count of keys merged under If-Match: a
    write during the count makes it count again, and later writes move the counts without
    any count of keys."""
    store, log = table_harness.store, table_harness.requests
    for n in range(5):
        create_user(store, f"u{n}")
    partition = keys.partition_key(T)
    feed = table_harness.client.get_entity(partition, FEED_ROW)
    old = {k: v for k, v in feed.items()
           if k not in ("users", "groups", "rosterVersion", "rosterId")}
    table_harness.client.update_entity(old, mode=UpdateMode.REPLACE)
    other = table_harness.another_store()
    view = store.tenant(T)
    counting = view._count_keys
    raced: list[int] = []

    def racing(kind: Any) -> int:
        if not raced:
            raced.append(1)
            create_user(other, "racer")  # lands after the feed row was read
        return counting(kind)

    view._count_keys = racing  # type: ignore[method-assign]
    assert view.count(USER) == 6
    stored = table_harness.client.get_entity(partition, FEED_ROW)
    assert (stored["users"], stored["groups"]) == (6, 0)
    log.clear()
    create_user(other, "later")
    other.tenant(T).delete(USER, "u0")
    assert store.tenant(T).count(USER) == 6
    assert not any("RowKey" in target.split("$select=")[-1] for _, target in log.entries
                   if "$select=" in target)


# -- listings ------------------------------------------------------------------------------


def test_sequential_pages_give_every_user_exactly_once_while_users_come_and_go(
        any_store: Store) -> None:
    """Listing by startIndex while, between pages, an already listed user is deleted and
    a new one created: every user that exists throughout is listed exactly once."""
    for n in range(90):
        create_user(any_store, f"u{n:03d}")
    use_api(make_api(any_store))
    client = FunctionClient()
    seen: list[str] = []
    start = 1
    while True:
        page = client.get("/Users", params={"startIndex": str(start), "count": "10"}).json
        ids = [r["id"] for r in page["Resources"]]
        seen += ids
        assert page["totalResults"] == 90 and page["startIndex"] == start
        if len(ids) < 10:
            break
        any_store.tenant(T).delete(USER, ids[0])
        create_user(any_store, f"new{start:03d}")
        start += 10
    throughout = {f"u{n:03d}" for n in range(90)} - {seen[k] for k in range(0, 90, 10)}
    assert len(seen) == len(set(seen))
    assert throughout <= set(seen)


def test_pages_of_a_still_tenant_are_its_users_in_order(any_store: Store) -> None:
    """With nothing changing, pages by position (any order of requests) and cursor pages
    are exactly the slices of the id order, with the exact total."""
    for n in range(37):
        create_user(any_store, f"u{n:03d}")
    view = any_store.tenant(T)
    ids = [f"u{n:03d}" for n in range(37)]
    for offset in (30, 0, 7, 35, 37, 50, 10):
        window = view.window(USER, offset=offset, size=8)
        assert [r.id for r in window.records] == ids[offset:offset + 8]
        assert window.total == 37
    assert [i for page in listed_ids(view, 8) for i in page] == ids


def test_a_listing_of_users_and_groups_by_position_spans_both(any_store: Store) -> None:
    """Root /.search without a filter pages Users then Groups by position, with both
    counts in totalResults."""
    for n in range(5):
        create_user(any_store, f"u{n}")
    for n in range(3):
        any_store.tenant(T).create(Record(GROUP, f"g{n}", {"displayName": f"g{n}"}, META),
                                   [IndexKey("displayName", f"g{n}", True)])
    use_api(make_api(any_store))
    found = FunctionClient().post("/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "startIndex": 4, "count": 3}).json
    assert found["totalResults"] == 8
    assert [r["id"] for r in found["Resources"]] == ["u3", "u4", "g0"]


# -- filters stream, sorts are bounded -------------------------------------------------------


class Document(dict[str, Any]):
    """A document that a weak reference can watch."""


class Watched:
    """A tenant view that counts how many of the documents its scans gave are alive."""

    def __init__(self, view: TenantStore) -> None:
        self._view = view
        self.alive = 0
        self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)

    def _gone(self) -> None:
        self.alive -= 1

    def scan(self, kind: Any) -> Iterator[Record]:
        for record in self._view.scan(kind):
            document = Document(record.document)
            self.alive += 1
            self.most = max(self.most, self.alive)
            weakref.finalize(document, self._gone)
            yield Record(record.kind, record.id, document, record.meta, record.etag)
            del document, record


def test_an_unindexed_filter_holds_a_scan_page_and_the_result_page_not_the_tenant() -> None:
    """A filter no index answers, over 1,000 matching users, keeps at most a scan page and
    the result page of documents alive at once, and counts every match."""
    store = MemoryStore()
    for n in range(1000):
        store.tenant(T).create(Record(USER, f"u{n:04d}", {"userName": f"u{n:04d}",
                                                          "title": "Engineer"}, META),
                               [IndexKey("userName", f"u{n:04d}", True)])
    watched = Watched(store.tenant(T))
    searcher = Searcher(watched, make_api(store).registry)  # type: ignore[arg-type]
    rt = searcher.registry.resource_type("User")
    assert rt is not None
    result = searcher.search([Scope(rt, Projection())],
                             SearchParams(filter=parse_filter('title eq "Engineer"'),
                                          start_index=401, count=20), "https://h/scim/v2")
    assert result.total == 1000 and len(result.resources) == 20
    assert result.resources[0]["id"] == "u0400"
    assert 20 <= watched.most <= 100 + 20 + 2, watched.most


def test_sort_by_pages_in_order_and_is_refused_past_its_limit(
        memory_client: FunctionClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """sortBy orders the whole match set and pages it; past MAX_SORTED matches it is a
    400 tooMany naming the limit, not a request that holds the tenant."""
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    for name in names:
        memory_client.create_user(name)
    page = memory_client.get("/Users", params={"sortBy": "userName", "sortOrder": "descending",
                                               "startIndex": "2", "count": "2"}).json
    assert [r["userName"] for r in page["Resources"]] == ["delta", "charlie"]
    assert page["totalResults"] == 5
    monkeypatch.setattr(query, "MAX_SORTED", 4)
    refused = memory_client.get("/Users", params={"sortBy": "userName"})
    assert_scim_error(refused, 400, "tooMany")
    assert "at most 4 resources" in refused.json["detail"]
