"""Storage requests, and round trips (requests one after another), per SCIM request on Table
Storage (issue 26), and the unique index rows' copies of a user's document."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient, TableEntity, UpdateMode

from bench.delay_proxy import DelayProxy, rounds
from scim_core import Settings
from scim_core.app import build_admin
from scim_core.store import GROUP, USER, IndexKey, Member, MemberChange, Meta, Record, TenantGone
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.entities import CHUNK_UNITS
from scim_core.store.tables.sdk_batches import install_batch_codec
from scim_core.store.tables.store import TableTenantStore
from tests.azurite import FAST_CLIENT_OPTIONS, Azurite, TableHarness, unique_table_name
from tests.conftest import make_api
from tests.support import FunctionClient, use_api

pytestmark = pytest.mark.usefixtures("clean_api")

T = "default"
RTT_MS = 60
"""Long enough that requests sent at once overlap on a loaded machine (counts, not times)."""
META = Meta("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z", 'W/"1"')


@pytest.fixture
def clean_api() -> Iterator[None]:
    yield
    use_api(None)


@pytest.fixture
def proxied(azurite: Azurite) -> Iterator[tuple[DelayProxy, TableStore]]:
    """A TableStore that reaches Azurite through a delay proxy, which logs every request."""
    with DelayProxy(azurite.port) as proxy:
        client = TableClient.from_connection_string(
            proxy.connection_string(azurite.connection_string), table_name=unique_table_name(),
            **FAST_CLIENT_OPTIONS)
        install_batch_codec()
        store = TableStore(client)
        try:
            yield proxy, store
        finally:
            proxy.set_rtt(0)
            client.delete_table()
            store.close()


def cost(proxy: DelayProxy, call: Any) -> tuple[int, int]:
    """(storage requests, round trips) of ``call``, which must succeed."""
    time.sleep(0.05)  # nothing of the previous call still in flight
    start = time.perf_counter()
    result = call()
    end = time.perf_counter()
    assert getattr(result, "status", 200) < 300, getattr(result, "body", result)
    exchanges = proxy.since(start, end)
    return len(exchanges), rounds(exchanges)


def replace_display(value: str) -> dict[str, Any]:
    return {"op": "replace", "path": "displayName", "value": value}


def test_each_request_makes_its_minimum_of_storage_round_trips(
        proxied: tuple[DelayProxy, TableStore]) -> None:
    """At 60 ms RTT: a userName eq hit is 1 request; a user PATCH 2 (the read and the
    batch, no second read); GET of a user or a group reads the document and the relations
    at once (2 requests, 1 round trip); DELETE reads both at once, then 1 batch."""
    proxy, store = proxied
    use_api(make_api(store))
    client = FunctionClient()
    users = [client.create_user(f"rt{n}@contoso.example")["id"] for n in range(3)]
    group = client.create_group("Round trips")["id"]
    assert client.patch_ops(f"/Groups/{group}", {"op": "add", "path": "members", "value": [
        {"value": u} for u in users]}).status == 204
    time.sleep(2.5)  # a delete trusts a listing made with its read once the row is 2 s old
    proxy.set_rtt(RTT_MS)
    found = cost(proxy, lambda: client.get(
        "/Users", params={"filter": 'userName eq "rt0@contoso.example"'}))
    patched = cost(proxy, lambda: client.patch_ops(f"/Users/{users[1]}",
                                                   replace_display("Patched")))
    got_user = cost(proxy, lambda: client.get(f"/Users/{users[0]}"))
    got_group = cost(proxy, lambda: client.get(f"/Groups/{group}"))
    deleted = cost(proxy, lambda: client.delete(f"/Users/{users[2]}"))
    assert (found, patched, got_user, got_group, deleted) == (
        (1, 1), (2, 2), (2, 1), (2, 1), (3, 2))
    proxy.set_rtt(0)
    shown = client.get(f"/Users/{users[1]}").json
    assert shown["displayName"] == "Patched" and shown["groups"][0]["value"] == group
    assert [m["value"] for m in client.get(f"/Groups/{group}").json["members"]] == sorted(
        users[:2])


def test_a_delete_of_a_just_changed_user_lists_its_groups_after_reading_it(
        proxied: tuple[DelayProxy, TableStore]) -> None:
    """A user written within the last second may have gained a group after a listing sent
    with its read: the delete lists again after the read (3 round trips) and leaves no
    membership behind."""
    proxy, store = proxied
    use_api(make_api(store))
    client = FunctionClient()
    user = client.create_user("fresh@contoso.example")["id"]
    group = client.create_group("Fresh")["id"]
    client.patch_ops(f"/Groups/{group}", {"op": "add", "path": "members",
                                          "value": [{"value": user}]})
    proxy.set_rtt(RTT_MS)
    assert cost(proxy, lambda: client.delete(f"/Users/{user}")) == (4, 3)
    proxy.set_rtt(0)
    assert client.get(f"/Groups/{group}").json.get("members", []) == []


class ListedFirst(TableTenantStore):
    """A tenant whose delete's listing of a user's groups is served first, then ``race``
    runs (a competing write), then the user's row is read: an order the two reads, sent at
    once, can take."""

    def __init__(self, store: TableStore, race: Callable[[], object]) -> None:
        super().__init__(store, T)
        self.race: Callable[[], object] | None = race
        self.listed = threading.Event()

    def _group_ids(self, user_id: str) -> list[str]:
        found = super()._group_ids(user_id)
        race, self.race = self.race, None
        if race is not None:
            race()
            self.listed.set()
        return found

    def _read(self, row_key: str, select: list[str] | None = None,
              **options: Any) -> TableEntity | None:
        if row_key.startswith("user:"):
            assert self.listed.wait(10)
        return super()._read(row_key, select, **options)


def test_a_membership_added_between_the_listing_and_the_read_is_removed_too(
        table_harness: TableHarness) -> None:
    """A member add that lands after the delete's listing of the user's groups and before
    its read of the user (so the If-Match holds) made the row new: the delete lists again
    and removes that membership as well; none outlives the user."""
    view = table_harness.store.tenant(T)
    view.create(user("u1", "erin"), [name_key("erin")])
    view.create(Record(GROUP, "g", {"displayName": "late"}, META),
                [IndexKey("displayName", "late", True)])
    time.sleep(2.5)  # the user's row is old: only the racing add makes it new
    racing = ListedFirst(table_harness.store, lambda: view.change_members(
        "g", last_modified="t", version="v", members=MemberChange(add=(Member("u1"),))))
    racing.delete(USER, "u1")
    assert racing.race is None
    assert list(view.members("g")) == [] and view.groups_of("u1") == []


# -- the copies in unique index rows -------------------------------------------------------

def user(resource_id: str, user_name: str, **more: Any) -> Record:
    return Record(USER, resource_id, {"userName": user_name, **more}, META)


def name_key(user_name: str) -> IndexKey:
    return IndexKey("userName", user_name, True)


def index_row(harness: TableHarness, user_name: str) -> dict[str, Any]:
    return dict(harness.client.get_entity(keys.partition_key(T),
                                          keys.unique_index_key(USER, "userName", user_name)))


def reads(harness: TableHarness, user_name: str) -> tuple[list[dict[str, Any]], int]:
    """The documents a userName lookup finds, and the storage requests it made."""
    harness.requests.clear()
    found = harness.store.tenant(T).lookup(USER, name_key(user_name))
    return [r.document for r in found], harness.requests.count


def test_a_lookup_never_answers_from_a_stale_copy(table_harness: TableHarness) -> None:
    """After a PATCH the lookup answers the new document and meta (1 read); a rename frees
    the old value's row and the new one is found; a delete removes the row."""
    view = table_harness.store.tenant(T)
    view.create(user("u1", "alice"), [name_key("alice")])
    assert reads(table_harness, "alice") == ([{"userName": "alice"}], 1)
    stored = view.get(USER, "u1")
    assert stored is not None
    moved = Meta(META.created, "2026-12-02T00:00:00Z", 'W/"2"')
    view.update(USER, "u1", meta=moved, expected_etag=stored.etag, read=stored,
                document={"userName": "alice", "displayName": "Alice"},
                indexes=[name_key("alice")])
    assert reads(table_harness, "alice") == ([{"userName": "alice", "displayName": "Alice"}], 1)
    assert [r.meta for r in view.lookup(USER, name_key("alice"))] == [moved]
    renamed = view.get(USER, "u1")
    assert renamed is not None
    view.update(USER, "u1", meta=META, expected_etag=renamed.etag, read=renamed,
                document={"userName": "alicia"}, indexes=[name_key("alicia")])
    assert reads(table_harness, "alice") == ([], 1)
    assert reads(table_harness, "alicia") == ([{"userName": "alicia"}], 1)
    view.create(user("u2", "alice"), [name_key("alice")])  # the old value is free again
    view.delete(USER, "u1")
    assert reads(table_harness, "alicia") == ([], 1)
    assert reads(table_harness, "alice") == ([{"userName": "alice"}], 1)


def test_an_index_row_without_a_copy_still_finds_the_user(table_harness: TableHarness) -> None:
    """A unique index row written before copies (id and value only) is read as a pointer:
    the lookup reads the document too (2 reads) and answers it; the next write of the user
    puts a copy in it."""
    view = table_harness.store.tenant(T)
    view.create(user("u1", "bob", title="Engineer"), [name_key("bob")])
    row = index_row(table_harness, "bob")
    old = {k: row[k] for k in ("PartitionKey", "RowKey", "id", "name", "value")}
    table_harness.client.upsert_entity(old, mode=UpdateMode.REPLACE)
    assert reads(table_harness, "bob") == ([{"userName": "bob", "title": "Engineer"}], 2)
    stored = view.get(USER, "u1")
    assert stored is not None
    view.update(USER, "u1", meta=META, expected_etag=stored.etag, read=stored,
                document={"userName": "bob", "title": "Lead"}, indexes=[name_key("bob")])
    assert reads(table_harness, "bob") == ([{"userName": "bob", "title": "Lead"}], 1)


def test_a_document_too_large_to_copy_is_pointed_to_and_its_old_copy_dropped(
        table_harness: TableHarness) -> None:
    """A document of more than one chunk is not copied (the lookup reads it: 2 reads); a
    user who grows past that has the copy removed from its row in the same write, and one
    who shrinks gets it back."""
    view = table_harness.store.tenant(T)
    view.create(user("u1", "carol"), [name_key("carol")])
    large = {"userName": "carol", "title": "x" * (CHUNK_UNITS + 10)}
    stored = view.get(USER, "u1")
    assert stored is not None
    view.update(USER, "u1", meta=META, expected_etag=stored.etag, read=stored,
                document=large, indexes=[name_key("carol")])
    assert "doc_0" not in index_row(table_harness, "carol")
    assert reads(table_harness, "carol") == ([large], 2)
    grown = view.get(USER, "u1")
    assert grown is not None
    view.update(USER, "u1", meta=META, expected_etag=grown.etag, document={"userName": "carol"},
                indexes=None)  # a write that keeps the index rows: their copies too
    assert reads(table_harness, "carol") == ([{"userName": "carol"}], 1)


def test_a_copy_is_fenced_by_its_tenants_epoch(table_harness: TableHarness) -> None:
    """A view of a deleted tenant, whose id a new tenant took, gets TenantGone from a lookup
    that finds the new tenant's copy, never the new tenant's user."""
    admin = build_admin(Settings(store="memory"), store=table_harness.store)
    first, _ = admin.create("First", tenant_id="reused")
    old = table_harness.store.tenant("reused", first.epoch)
    old.create(user("u1", "dave"), [name_key("dave")])
    assert [r.id for r in old.lookup(USER, name_key("dave"))] == ["u1"]
    admin.delete("reused")
    second, _ = admin.create("Second", tenant_id="reused")
    new = table_harness.store.tenant("reused", second.epoch)
    new.create(user("u2", "dave"), [name_key("dave")])
    with pytest.raises(TenantGone):
        old.lookup(USER, name_key("dave"))
    assert [r.id for r in new.lookup(USER, name_key("dave"))] == ["u2"]
