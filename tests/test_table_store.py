"""The Table Storage store on Azurite: keys, sizes, scale, request counts and faults."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.core.rest import HttpRequest
from hypothesis import given
from hypothesis import strategies as st

from scim_core.config import Settings, SettingsError
from scim_core.store import (
    GROUP,
    USER,
    IndexKey,
    Member,
    MemberChange,
    Meta,
    NotStored,
    Record,
    StorageUnavailable,
    Store,
    TooLarge,
)
from scim_core.store.tables import TableStore, keys, table_store
from scim_core.store.tables.batches import MAX_BATCH, add_units
from scim_core.store.tables.client import (
    REQUESTS_ENVIRONMENT,
    endpoint_scheme,
    table_client,
    uses_environment_settings,
)
from scim_core.store.tables.entities import (
    MAX_STRING_UNITS,
    document_entity,
    index_entity,
    split_chunks,
)
from tests.azurite import (
    FAST_CLIENT_OPTIONS,
    Azurite,
    Fault,
    FaultProxy,
    RacingTableStore,
    RequestLog,
    TableHarness,
    unique_table_name,
)
from tests.conftest import make_api
from tests.kvfake import FakeCredential, forbid_ambient_credentials
from tests.support import FunctionClient, use_api

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(300)

T = "default"


def decoded(component: str) -> str:
    """The value an unhashed key component encodes."""
    return unquote(component, encoding="utf-8", errors="surrogatepass")
META = Meta("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "1")
FORBIDDEN = set("/\\#?") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}
BIG_GROUP = int(os.environ.get("SCIM_BIG_GROUP_MEMBERS", "3000"))

HOSTILE = [
    "'", '"', "''", "' or 1 eq 1", "x' or RowKey ne 'x", "') or true or ('", "/", "\\", "#",
    "?", "%", "%2F", "%h", "a:b", "a;b", "user:x", "@low", " ", "a b", "\x00", "\x01\x1f",
    "\x7f\x85\x9f", "é漢😀", "\ud800", "\u2028\ufeff", "a\u2029b", "x" * 1000, "ü" * 600,
    "😀" * 300, "x" * 999 + "y", "",
]


def units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def user(resource_id: str, user_name: str, external_id: str | None = None) -> Record:
    document: dict[str, Any] = {"userName": user_name}
    if external_id is not None:
        document["externalId"] = external_id
    return Record(USER, resource_id, document, META)


def user_keys(user_name: str, external_id: str | None = None) -> list[IndexKey]:
    found = [IndexKey("userName", user_name, True)]
    if external_id is not None:
        found.append(IndexKey("externalId", external_id, False))
    return found


def add_user(store: Store, resource_id: str, user_name: str, external_id: str | None = None,
             tenant: str = T) -> Record:
    return store.tenant(tenant).create(user(resource_id, user_name, external_id),
                        user_keys(user_name, external_id))


def stored_users(store: Store, user_ids: list[str], tenant: str = T) -> None:
    """Members must be stored users: create the ones that are not yet."""
    view = store.tenant(tenant)
    for user_id in sorted(u for u in set(user_ids) if view.get(USER, u) is None):
        add_user(store, user_id, f"user {user_id}", tenant=tenant)


def add_group(store: Store, resource_id: str, name: str, members: list[str] | None = None,
              tenant: str = T) -> Record:
    """A group with ``members``, whose users are created first where missing."""
    stored_users(store, members or [], tenant)
    return store.tenant(tenant).create(Record(GROUP, resource_id, {"displayName": name}, META),
                        [IndexKey("displayName", name, True)],
                        [Member(m) for m in members or []])


def rows(harness: TableHarness) -> list[str]:
    """Every directory row: all but the change feed's (which outlives what it reports)."""
    return [entity["RowKey"] for entity in harness.client.list_entities(select=["RowKey"])
            if entity["RowKey"] != "feed" and not entity["RowKey"].startswith("event:")]


def rows_besides_users(harness: TableHarness) -> list[str]:
    """Every row but users' documents and index rows."""
    return [r for r in rows(harness) if not r.startswith(("user:", "ux:user:", "ix:user:"))]


def counted(log: RequestLog, call: Callable[[], Any]) -> int:
    log.clear()
    call()
    return log.count


def consistent(store: Store, group_id: str, users: list[str]) -> list[str]:
    """The members of a group, after checking every user's reverse rows agree with them."""
    members = [m.value for m in store.tenant(T).members(group_id)]
    for user_id in users:
        assert (group_id in store.tenant(T).groups_of(user_id)) == (user_id in members), user_id
    return members


# -- keys ----------------------------------------------------------------------------------

@given(st.text())
def test_encoded_components_are_valid_key_text_and_decode_back(value: str) -> None:
    """Any string encodes to key text without forbidden characters or ':' within budget."""
    encoded = keys.encode_component(value)
    assert not FORBIDDEN & set(encoded) and ":" not in encoded and "'" not in encoded
    assert units(encoded) <= keys.COMPONENT_BUDGET
    if keys.HASH_MARK not in encoded:
        assert decoded(encoded) == value


ESCAPED = frozenset("%/\\#?:'\u2028\u2029") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}


@given(st.text(st.characters(exclude_characters=ESCAPED, exclude_categories=["Cs"]),
               max_size=60))
def test_ordinary_characters_are_kept_as_they_are(value: str) -> None:
    """A value without characters that need escaping is its own encoding (ids stay readable)."""
    assert keys.encode_component(value) == value


@given(st.text())
def test_utf16_units_count_code_units(value: str) -> None:
    """The size rules count UTF-16 code units: astral characters count twice."""
    assert keys.utf16_units(value) == units(value)


@given(st.text(), st.text())
def test_distinct_values_never_share_an_encoding(first: str, second: str) -> None:
    """Two different strings never encode to the same component."""
    if first != second:
        assert keys.encode_component(first) != keys.encode_component(second)


def test_long_values_are_hashed_with_a_readable_prefix() -> None:
    """A value beyond the budget becomes a readable prefix, %h and its SHA-256."""
    value = "ab/" * 200
    encoded = keys.encode_component(value)
    assert encoded.startswith("ab%2Fab") and keys.HASH_MARK in encoded
    assert encoded.endswith(keys.digest(value)) and keys.HASH_MARK in encoded
    assert keys.encode_component(value + "x") != encoded
    assert units(keys.index_key(USER, "x" * 500, "y" * 500, "z" * 500)) <= 512


def test_chunks_respect_the_string_limit_and_surrogate_pairs() -> None:
    """Document chunks hold at most the given UTF-16 units and never split a pair."""
    text = "a" + "😀" * 40_000
    chunks = split_chunks(text, 32_001)
    assert "".join(chunks) == text and all(units(c) <= 32_001 for c in chunks)
    assert all(not ("\ud800" <= c[-1] <= "\udbff") for c in chunks)


# -- hostile values ------------------------------------------------------------------------

def test_hostile_values_round_trip_everywhere(table_store: TableStore,
                                              table_harness: TableHarness) -> None:
    """Hostile strings work as ids, unique and non-unique values, member ids and displays."""
    for value in HOSTILE:
        created = add_user(table_store, value, value, value)
        assert table_store.tenant(T).get(USER, value) == created
    add_group(table_store, "g", "group", [])
    table_store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                       members=MemberChange(add=tuple(Member(v, v) for v in HOSTILE)))
    for value in HOSTILE:
        got = table_store.tenant(T).get(USER, value)
        assert got is not None and got.document == {"userName": value, "externalId": value}
        unique = table_store.tenant(T).lookup(USER, IndexKey("userName", value, True))
        other = table_store.tenant(T).lookup(USER, IndexKey("externalId", value, False))
        assert [r.id for r in unique] == [value] == [r.id for r in other]
        assert table_store.tenant(T).is_member("g", value)
        assert table_store.tenant(T).groups_of(value) == ["g"]
    assert ({m.value: m.display for m in table_store.tenant(T).members("g")}
            == {v: v for v in HOSTILE})
    assert {r.id for r in table_store.tenant(T).scan(USER)} == set(HOSTILE)
    for value in HOSTILE:
        table_store.tenant(T).delete(USER, value)
    table_store.tenant(T).delete(GROUP, "g")
    assert rows(table_harness) == []


def test_no_value_changes_the_meaning_of_a_lookup(table_store: TableStore) -> None:
    """Injection-shaped and prefix-sharing values find only their own exact holder."""
    for n, value in enumerate(["a", "a:b", "a%3Ab", "a;", "ab", "a'", "A"]):
        add_user(table_store, f"u{n}", f"name{n}", value)
    for probe in ["' or 1 eq 1", "a' or RowKey ne '", "*", "%", "", "a:", "a%", "a%3A"]:
        assert table_store.tenant(T).lookup(USER, IndexKey("externalId", probe, False)) == []
        assert table_store.tenant(T).lookup(USER, IndexKey("userName", probe, True)) == []
    for n, value in enumerate(["a", "a:b", "a%3Ab", "a;", "ab", "a'", "A"]):
        found = table_store.tenant(T).lookup(USER, IndexKey("externalId", value, False))
        assert [r.id for r in found] == [f"u{n}"]


def test_hostile_tenants_are_isolated_partitions(table_store: TableStore) -> None:
    """Tenants named with quotes, slashes, separators or 600 characters stay apart."""
    tenants = ["'", "a/b", "t:1", "t", "%", "😀", "x" * 600, "x" * 600 + "y"]
    for n, tenant in enumerate(tenants):
        add_user(table_store, "u", "same", f"ext{n}", tenant=tenant)
    for n, tenant in enumerate(tenants):
        found = table_store.tenant(tenant).lookup(USER, IndexKey("userName", "same", True))
        assert [r.document["externalId"] for r in found] == [f"ext{n}"]
        assert [r.id for r in table_store.tenant(tenant).scan(USER)] == ["u"]


# -- sizes ---------------------------------------------------------------------------------

def test_large_documents_are_split_across_properties_and_round_trip(
        table_store: TableStore, table_harness: TableHarness) -> None:
    """Documents far beyond one 64 KiB property are chunked and read back exactly."""
    documents: dict[str, dict[str, Any]] = {
        "ascii": {"blob": "x" * 480_000, "n": 1},
        "wide": {"blob": "漢字😀" * 90_000, "odd": "\ud800\x00\u2028"},
    }
    for resource_id, document in documents.items():
        table_store.tenant(T).create(Record(USER, resource_id, document, META), [])
        got = table_store.tenant(T).get(USER, resource_id)
        assert got is not None and got.document == document
        raw = table_harness.client.get_entity(keys.partition_key(T),
                                              keys.document_key(USER, resource_id))
        chunks = [raw[f"doc_{i}"] for i in range(raw["docChunks"])]
        assert len(chunks) > 10 and all(units(c) <= MAX_STRING_UNITS for c in chunks)


def test_an_oversized_document_is_refused_before_anything_is_written(
        table_store: TableStore, table_harness: TableHarness) -> None:
    """A document beyond the 1 MiB entity limit raises TooLarge and writes nothing."""
    huge = {"blob": "x" * 530_000}
    assert table_store.tenant(T).get(USER, "u1") is None
    with pytest.raises(TooLarge):
        table_store.tenant(T).create(Record(USER, "u1", huge, META), user_keys("alice"))
    assert table_store.tenant(T).get(USER, "u1") is None
    assert rows(table_harness) == []
    created = add_user(table_store, "u1", "alice")
    with pytest.raises(TooLarge):
        table_store.tenant(T).update(USER, "u1", meta=META, expected_etag=None, document=huge,
                           indexes=user_keys("bob"))
    assert table_store.tenant(T).get(USER, "u1") == created
    assert table_store.tenant(T).lookup(USER, IndexKey("userName", "bob", True)) == []
    with pytest.raises(TooLarge):
        table_store.tenant(T).create(user("u2", "x"),
                                     [IndexKey(f"k{n}", "v", True) for n in range(50)])
    assert table_store.tenant(T).get(USER, "u2") is None


# -- membership at scale -------------------------------------------------------------------

def test_member_lists_over_100_go_in_batches_of_at_most_100(
        keyed_table_harness: TableHarness) -> None:
    """Creating, changing and deleting a 250-member group never sends a batch over 100."""
    # on Azurite with keyed lookups: its ~1,000 rows in one partition take a minute on stock
    table_harness, table_store = keyed_table_harness, keyed_table_harness.store
    members = [f"u{n:04d}" for n in range(250)]
    newcomers = tuple(Member(f"v{n:04d}") for n in range(120))
    stored_users(table_store, members + [m.value for m in newcomers])
    sizes = table_harness.client.batch_sizes
    sizes.clear()
    add_group(table_store, "g", "big", members)
    # document + index + 31 adds (user check and two rows each), then 31 adds led by the
    # group-exists guard; each batch also carries the feed row and its members_added event,
    # within the four operations kept for the feed
    assert sizes == [97, 96, 96, 96, 96, 96, 96, 96, 9]
    assert consistent(table_store, "g", members) == members
    sizes.clear()
    before = table_store.tenant(T).position()
    table_store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                       members=MemberChange(remove_all=True, add=newcomers))
    guards = len(sizes) - 1
    feed_rows, events = len(sizes), table_store.tenant(T).position() - before
    assert max(sizes) <= MAX_BATCH and sum(sizes) == (1 + 2 * 250 + 3 * 120 + guards
                                                      + feed_rows + events)
    assert consistent(table_store, "g", members) == [m.value for m in newcomers]
    sizes.clear()
    table_store.tenant(T).delete(GROUP, "g")
    # the batches before the last carry a members_removed event; the last deletes the group,
    # which implies its remaining memberships are gone, and meets the feed row (the fence of a
    # tenant delete), whose counts it moves
    assert max(sizes) <= MAX_BATCH and sum(sizes) == 3 + 2 * 120 + 2 * (len(sizes) - 1)
    assert rows_besides_users(table_harness) == []


@pytest.mark.slow
def test_a_large_group_works_and_member_operations_cost_the_same_as_in_a_small_one(
        keyed_table_harness: TableHarness) -> None:
    """A BIG_GROUP-member group whose members were added through the store lists, checks
    and changes members with constant requests (on Azurite with keyed lookups, which
    answers as stock Azurite does but finds rows by key instead of scanning the partition
    for every operation of the build)."""
    check_large_group(keyed_table_harness, BIG_GROUP)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a hang guard: on 2 busy cores, listing 100,000 rows takes minutes
def test_a_100000_member_group_works_with_constant_member_costs(
        keyed_table_harness: TableHarness) -> None:
    """A 100,000-member group (on Azurite with keyed lookups) behaves as a small one."""
    check_large_group(keyed_table_harness, 100_000, through_store=False)


def check_large_group(harness: TableHarness, size: int, *, through_store: bool = True) -> None:
    """Builds a ``size``-member group in ≤ 100-operation batches; reads, membership checks,
    member adds and removes then cost the requests they cost in a 2-member group, and the
    member list pages by 1,000. ``through_store=False`` writes the membership rows as the
    store writes them (``seed_memberships``), without users behind them: each add through
    the store also writes the user's row, a third more operations."""
    store, log = harness.store, harness.requests
    add_user(store, "newcomer", "newcomer")
    ids = [f"{n:08d}-member" for n in range(size)]
    add_group(store, "small", "small", ["x1", "x2", "x3"])
    store.tenant(T).update(GROUP, "small", meta=META, expected_etag=None,
                 members=MemberChange(remove=("x3",)))
    small = {
        "get": counted(log, lambda: store.tenant(T).get(GROUP, "small")),
        "is_member": counted(log, lambda: store.tenant(T).is_member("small", "x1")),
        "add": counted(log, lambda: store.tenant(T).update(
            GROUP, "small", meta=META, expected_etag=None,
            members=MemberChange(add=(Member("x3"),)))),
        "remove": counted(log, lambda: store.tenant(T).update(
            GROUP, "small", meta=META, expected_etag=None,
            members=MemberChange(remove=("x3",)))),
    }
    started = time.monotonic()
    if through_store:
        seed_users(harness, 0, size, "{:08d}-member", indexed=False)
        store.tenant(T).create(Record(GROUP, "big", {"displayName": "big"}, META),
                               [IndexKey("displayName", "big", True)],
                               [Member(i) for i in ids[:1000]])
        # 33 adds fill one batch (3 operations each, and the group's meta)
        for start in range(1000, size, 33):
            chunk = tuple(Member(i) for i in ids[start:start + 33])
            store.tenant(T).update(GROUP, "big", meta=META, expected_etag=None,
                         members=MemberChange(add=chunk))
    else:
        add_group(store, "big", "big")
        seed_memberships(harness, "big", ids)
    built = time.monotonic() - started
    assert max(harness.client.batch_sizes) <= MAX_BATCH
    big = {
        "get": counted(log, lambda: store.tenant(T).get(GROUP, "big")),
        "is_member": counted(log, lambda: store.tenant(T).is_member("big", ids[-1])),
        "add": counted(log, lambda: store.tenant(T).update(
            GROUP, "big", meta=META, expected_etag=None,
            members=MemberChange(add=(Member("newcomer"),)))),
        "remove": counted(log, lambda: store.tenant(T).update(
            GROUP, "big", meta=META, expected_etag=None,
            members=MemberChange(remove=("newcomer",)))),
    }
    assert big == small == {"get": 1, "is_member": 1, "add": 2, "remove": 2}
    log.clear()
    listed = [m.value for m in store.tenant(T).members("big")]
    assert listed == ids and size / 1000 <= log.count <= size // 1000 + 1
    assert store.tenant(T).is_member("big", ids[0]) and not store.tenant(T).is_member("big", "no")
    assert store.tenant(T).groups_of(ids[size // 2]) == ["big"]
    print(f"\n{size} members written in {built:.1f}s")


SEEDED_ID = re.compile(rb"\d{8}-member")
TRANSACTION_HEADERS = frozenset({"x-ms-version", "dataserviceversion", "maxdataserviceversion",
                                 "content-type", "accept"})


def _swapped(swap: dict[bytes, bytes], found: re.Match[bytes]) -> bytes:
    return swap[found.group()]


def seed_memberships(harness: TableHarness, group_id: str, ids: list[str]) -> None:
    """The membership rows of ``ids`` ("{n:08d}-member") in ``group_id`` as the store writes
    them (``add_units``' two upserts per member), 50 members per transaction. The SDK encodes
    and sends the first transaction; each later one is that request with its 50 ids swapped
    for the next 50 (ids of one length: every part keeps its size), sent through the same
    client's pipeline and checked part by part, so Azurite, not the SDK's per-operation
    encoding, sets the pace."""
    per_batch = MAX_BATCH // 2

    def operations(chunk: list[str]) -> list[Any]:
        return [step.operation() for unit in add_units(keys.partition_key(T), group_id,
                                                       map(Member, chunk))
                for step in unit if step.verb == "upsert"]

    sent: list[Any] = []
    first = ids[:per_batch]
    harness.client.submit_transaction(operations(first),
                                      raw_request_hook=lambda r: sent.append(r.http_request))
    request = sent[-1]
    template: bytes = request.content
    assert set(SEEDED_ID.findall(template)) == {i.encode() for i in first}
    headers = {k: v for k, v in request.headers.items() if k.lower() in TRANSACTION_HEADERS}
    for at in range(per_batch, len(ids), per_batch):
        chunk = ids[at:at + per_batch]
        if len(chunk) < per_batch:
            harness.client.submit_transaction(operations(chunk))
            continue
        swap = {old.encode(): new.encode() for old, new in zip(first, chunk, strict=True)}
        body = SEEDED_ID.sub(functools.partial(_swapped, swap), template)
        response = harness.client._client.send_request(
            HttpRequest("POST", request.url, headers=headers, content=body), stream=True)
        answer = response.read()
        assert response.status_code == 202, answer[:500]
        assert answer.count(b"HTTP/1.1 204 ") == 2 * per_batch, answer[:500]


# -- request counts (docs/architecture.md, "What other requests cost") ----------------------

def seed_users(harness: TableHarness, start: int, count: int,
               id_format: str = "{:08d}-user", *, indexed: bool = True) -> list[str]:
    """Users ``user{n}`` written as the store writes them (document and, when ``indexed``,
    index rows), up to 99 operations per batch; their ids."""
    partition = keys.partition_key(T)
    operations: list[tuple[str, dict[str, Any]]] = []
    user_ids = [id_format.format(n) for n in range(start, start + count)]
    for n, resource_id in enumerate(user_ids, start):
        index = {keys.unique_index_key(USER, "userName", f"user{n}"):
                 IndexKey("userName", f"user{n}", True),
                 keys.index_key(USER, "externalId", f"ext{n}", resource_id):
                 IndexKey("externalId", f"ext{n}", False)} if indexed else {}
        operations.append(("upsert", document_entity(
            partition, keys.document_key(USER, resource_id), kind=USER, resource_id=resource_id,
            document={"userName": f"user{n}"}, meta=META, index_rows=list(index))))
        operations += [("upsert", index_entity(partition, row, key=key, resource_id=resource_id))
                       for row, key in index.items()]
    with contextlib.suppress(ResourceExistsError):
        harness.client.create_table()
    for at in range(0, len(operations), 99):
        harness.client.submit_transaction(operations[at:at + 99])
    return user_ids


def test_lookups_cost_the_same_requests_with_50_or_2000_users(
        keyed_table_harness: TableHarness) -> None:
    """A userName lookup costs 1 point read (its index row's copy) and an externalId one 2,
    at 50 and 2,000 users; an index row written without a copy (seeded raw, as before
    copies) costs 2; scan() streams them page by page."""
    # on Azurite with keyed lookups (seeding 6,000 rows on stock Azurite costs over a minute)
    table_harness, table_store = keyed_table_harness, keyed_table_harness.store
    log = table_harness.requests
    for n in range(50):
        add_user(table_store, f"{n:08d}-user", f"user{n}", f"ext{n}")

    def costs() -> list[int]:
        view = table_store.tenant(T)
        return [counted(log, lambda: view.lookup(USER, IndexKey("userName", "user7", True))),
                counted(log, lambda: view.lookup(USER, IndexKey("externalId", "ext7", False))),
                counted(log, lambda: view.lookup(USER, IndexKey("userName", "none", True)))]

    at_50 = costs()
    seed_users(table_harness, 50, 1950)
    at_2000 = costs()
    assert at_50 == at_2000 == [1, 2, 1]
    found = table_store.tenant(T).lookup(USER, IndexKey("externalId", "ext1999", False))
    assert [r.document["userName"] for r in found] == ["user1999"]
    log.clear()
    table_store.tenant(T).lookup(USER, IndexKey("userName", "user1500", True))
    assert log.point_reads() == 2
    log.clear()
    scanned = table_store.tenant(T).scan(USER)
    first = next(scanned)
    assert first.id == "00000000-user" and log.count == 1
    # a scan streams 100 documents per request, so it never holds more than those
    assert 1 + sum(1 for _ in scanned) == 2000 and log.count in (20, 21)


def test_a_member_add_is_one_batch_and_one_read_for_1_or_30_members(
        table_store: TableStore, table_harness: TableHarness) -> None:
    """Adding 1 or 30 members costs one transaction (which checks the users) and one read
    of the group, and reads no user; 60 members add two range queries of the users (in two
    slices of the sorted keys), then two batches."""
    log = table_harness.requests
    users = seed_users(table_harness, 0, 60, "u{:03d}")
    add_group(table_store, "g", "staff")
    table_store.tenant(T).position()  # the process has seen the tenant's feed row

    def add(members: list[str]) -> list[int]:
        log.clear()
        table_store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                           members=MemberChange(add=tuple(Member(m) for m in members)))
        return [log.count, log.point_reads()]

    assert add(users[:1]) == [2, 1]
    assert add(users[:30]) == [2, 1]
    assert add(users) == [2 + 2 + 1, 1]
    assert consistent(table_store, "g", users) == users


def test_an_entra_member_patch_is_one_transaction_without_reading_the_group(
        table_harness: TableHarness) -> None:
    """Entra's member PATCH (answered 204) is 1 storage request for 1 or 10 members, add
    or remove: one transaction, which checks the group and the users; an If-Match adds a
    read of the group, asking for attributes a read before and after; the ETag is the
    group's new version."""
    use_api(make_api(table_harness.store))
    client, log = FunctionClient(), table_harness.requests
    users = [client.create_user(f"member{n}@contoso.example")["id"] for n in range(11)]
    group = client.create_group("Staff")["id"]

    def patch(*ops: dict[str, Any], **kw: Any) -> tuple[int, int, str]:
        log.clear()
        result = client.patch_ops(f"/Groups/{group}", *ops, **kw)
        return result.status, log.count, result.header("ETag") or ""

    def add(members: list[str], **kw: Any) -> tuple[int, int, str]:
        return patch({"op": "add", "path": "members",
                      "value": [{"value": m} for m in members]}, **kw)

    one, ten = add(users[:1]), add(users[1:])
    removed = patch({"op": "remove", "path": f'members[value eq "{users[0]}"]'})
    matched = add(users[:1], headers={"If-Match": removed[2]})
    shown = add(users[:1], params={"attributes": "displayName"})
    assert [r[:2] for r in (one, ten, removed, matched, shown)] == [
        (204, 1), (204, 1), (204, 1), (204, 2), (200, 3)]
    current = client.get(f"/Groups/{group}")
    assert current.header("ETag") == shown[2] != matched[2] != removed[2] != ten[2] != one[2]
    assert current.json["meta"]["version"] == shown[2]
    assert sorted(m["value"] for m in current.json["members"]) == sorted(users)


def test_group_get_reads_a_single_row_only(
        table_store: TableStore, table_harness: TableHarness) -> None:
    """get() of a 300-member group is one point read, whatever its members."""
    log = table_harness.requests
    add_group(table_store, "g", "staff", seed_users(table_harness, 1000, 300, "m{:04d}"))
    log.clear()
    group = table_store.tenant(T).get(GROUP, "g")
    assert group is not None and group.document == {"displayName": "staff"}
    assert log.count == log.point_reads() == 1 and "RowKey='group:g'" in log.entries[0][1]


# -- races ---------------------------------------------------------------------------------

def test_member_edits_do_not_contend_with_other_writes_to_the_group(
        table_harness: TableHarness) -> None:
    """A member add succeeds while the group row changes every time the store reads it."""
    store = RacingTableStore(table_harness)
    add_user(store, "u1", "alice")
    add_group(store, "g", "staff")
    store.touch_group_on_read = True
    updated = store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                           members=MemberChange(add=(Member("u1"),)))
    assert updated.document == {"displayName": "staff"}
    assert store.tenant(T).is_member("g", "u1")


def test_a_member_added_while_its_user_is_deleted_is_removed_by_the_delete(
        table_harness: TableHarness) -> None:
    """A membership written after a user's delete listed its groups moved the user's etag,
    so the delete lists again and removes it too."""
    store = RacingTableStore(table_harness)
    add_user(store, "u1", "alice")
    add_group(store, "g", "staff", ["u1"])
    add_group(store, "h", "other")
    store.after_listing_groups = lambda: table_harness.store.tenant(T).update(
        GROUP, "h", meta=META, expected_etag=None, members=MemberChange(add=(Member("u1"),)))
    store.tenant(T).delete(USER, "u1")
    assert store.after_listing_groups is None
    assert store.tenant(T).groups_of("u1") == [] and list(store.tenant(T).members("h")) == []
    assert sorted(rows(table_harness)) == sorted([
        keys.document_key(GROUP, "g"), keys.document_key(GROUP, "h"),
        keys.unique_index_key(GROUP, "displayName", "staff"),
        keys.unique_index_key(GROUP, "displayName", "other")])


def test_a_group_deleted_during_a_large_member_change_keeps_no_membership_row(
        table_harness: TableHarness) -> None:
    """A group deleted mid-way through a 150-member add leaves none of its member rows."""
    store = RacingTableStore(table_harness)
    seed_users(table_harness, 0, 150, "u{:03d}")
    add_group(store, "g", "staff")
    store.after_first_batch = lambda: table_harness.store.tenant(T).delete(GROUP, "g")
    with pytest.raises(NotStored):
        store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                     members=MemberChange(add=tuple(Member(f"u{n:03d}") for n in range(150))))
    assert store.after_first_batch is None
    assert rows_besides_users(table_harness) == []


def test_a_user_deleted_during_a_large_member_change_is_left_out(
        table_harness: TableHarness) -> None:
    """A user deleted after a 150-member add has checked its users is left out of the
    later batch it was in; every other member lands and no row of it is left."""
    store = RacingTableStore(table_harness)
    users = seed_users(table_harness, 0, 150, "u{:03d}")
    add_group(store, "g", "staff")
    store.after_first_batch = lambda: table_harness.store.tenant(T).delete(USER, users[-1])
    store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                 members=MemberChange(add=tuple(Member(u) for u in users)))
    assert store.after_first_batch is None
    assert consistent(store, "g", users) == users[:-1]
    assert not [r for r in rows(table_harness) if "u149" in r]


# -- faults --------------------------------------------------------------------------------

def every_call(store: Store) -> dict[str, Callable[[], Any]]:
    change = MemberChange(add=(Member("u9"),))
    return {
        "create": lambda: add_user(store, "u2", "bob"),
        "get": lambda: store.tenant(T).get(USER, "u1"),
        "update": lambda: store.tenant(T).update(USER, "u1", meta=META, expected_etag=None,
                                       document={"userName": "x"}, indexes=user_keys("x")),
        "members update": lambda: store.tenant(T).update(GROUP, "g1", meta=META,
                                               expected_etag=None, members=change),
        "delete": lambda: store.tenant(T).delete(USER, "u1"),
        "lookup": lambda: store.tenant(T).lookup(USER, IndexKey("userName", "alice", True)),
        "scan": lambda: list(store.tenant(T).scan(USER)),
        "page": lambda: store.tenant(T).page(USER, cursor=None, size=10),
        "members": lambda: list(store.tenant(T).members("g1")),
        "is_member": lambda: store.tenant(T).is_member("g1", "u1"),
        "groups_of": lambda: store.tenant(T).groups_of("u1"),
    }


def test_storage_down_gives_503_for_every_call_and_no_partial_state(
        table_store: TableStore, table_harness: TableHarness, azurite: Azurite) -> None:
    """With Azurite stopped every call gives 503; restarted, data is intact and unchanged."""
    add_user(table_store, "u1", "alice", "ext-1")
    add_group(table_store, "g1", "staff", ["u1"])
    alice = table_store.tenant(T).get(USER, "u1")
    before = sorted(rows(table_harness))
    azurite.stop()
    try:
        started = time.monotonic()
        for name, call in every_call(table_store).items():
            with pytest.raises(StorageUnavailable) as raised:
                call()
            assert raised.value.retry_after >= 1, name
        assert time.monotonic() - started < 20
    finally:
        azurite.start()
    assert sorted(rows(table_harness)) == before
    assert table_store.tenant(T).get(USER, "u1") == alice
    assert [m.value for m in table_store.tenant(T).members("g1")] == ["u1"]
    assert table_store.tenant(T).get(USER, "u2") is None


@pytest.mark.parametrize(("fault", "retry_after"), [
    (Fault.busy("7"), 7),
    (Fault(500, "OperationTimedOut"), 5),
    (Fault(429, "TooManyRequests", {"x-ms-retry-after-ms": "1500"}), 2),
])
def test_throttling_gives_503_with_storages_retry_after(
        table_harness: TableHarness, fault_proxy: FaultProxy, fault: Fault,
        retry_after: int) -> None:
    """Storage throttling or server faults become StorageUnavailable carrying Retry-After."""
    add_user(table_harness.store, "u1", "alice")
    add_group(table_harness.store, "g1", "staff", ["u1"])
    store = table_harness.another_store(connection_string=fault_proxy.connection_string)
    store.tenant(T).get(USER, "u1")
    fault_proxy.rule = lambda method, target, number: fault
    for name, call in every_call(store).items():
        with pytest.raises(StorageUnavailable) as raised:
            call()
        assert raised.value.retry_after == retry_after, name
    assert fault_proxy.faults() >= len(every_call(store))


def test_production_retries_wait_briefly_then_hand_retry_after_to_the_client(
        table_harness: TableHarness, fault_proxy: FaultProxy) -> None:
    """The factory's client retries a 503 once after <= 2 s, then passes on its Retry-After."""
    add_user(table_harness.store, "u1", "alice")
    settings = Settings(tables_connection=fault_proxy.connection_string,
                        table_name=table_harness.client.table_name)
    store = table_store(settings)
    table_harness.extra.append(store)
    store.tenant(T).get(USER, "u1")
    fault_proxy.rule = lambda method, target, number: Fault.busy("30")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as raised:
        store.tenant(T).get(USER, "u1")
    assert raised.value.retry_after == 30 and fault_proxy.faults() == 2
    assert time.monotonic() - started < 5
    first = len(fault_proxy.requests)
    fault_proxy.rule = lambda method, target, number: (Fault.busy("1") if number == first
                                                       else None)
    assert store.tenant(T).get(USER, "u1") is not None


def fail_batch(proxy: FaultProxy, which: int) -> None:
    """Answer the ``which``-th (0-based) batch from now with 503."""
    seen = [0]

    def rule(method: str, target: str, number: int) -> Fault | None:
        if target.startswith("$batch"):
            seen[0] += 1
            if seen[0] - 1 == which:
                return Fault.busy("3")
        return None

    proxy.rule = rule


def test_an_interrupted_create_leaves_a_consistent_group_that_a_retry_completes(
        keyed_table_harness: TableHarness, keyed_fault_proxy: FaultProxy) -> None:
    """A create failing in its second batch leaves consistent members; a retry completes it."""
    # on Azurite with keyed lookups, for its 300 users and their memberships
    table_harness, fault_proxy = keyed_table_harness, keyed_fault_proxy
    store = table_harness.another_store(connection_string=fault_proxy.connection_string)
    members = seed_users(table_harness, 0, 300, "u{:03d}")
    fail_batch(fault_proxy, 1)
    with pytest.raises(StorageUnavailable):
        add_group(store, "g", "staff", members)
    assert store.tenant(T).get(GROUP, "g") is not None
    assert consistent(store, "g", members) == members[:31]  # the first batch's
    store.tenant(T).update(GROUP, "g", meta=META, expected_etag=None,
                 members=MemberChange(add=tuple(Member(m) for m in members)))
    assert consistent(store, "g", members) == members


def test_an_interrupted_delete_leaves_the_resource_whole_and_a_retry_finishes_it(
        keyed_table_harness: TableHarness, keyed_fault_proxy: FaultProxy) -> None:
    """A delete failing in its first or last batch leaves the group whole; a retry ends it."""
    # on Azurite with keyed lookups, for its 300 users and their memberships
    table_harness, fault_proxy = keyed_table_harness, keyed_fault_proxy
    store = table_harness.another_store(connection_string=fault_proxy.connection_string)
    members = seed_users(table_harness, 0, 300, "u{:03d}")
    add_group(store, "g", "staff", members)
    fail_batch(fault_proxy, 0)
    with pytest.raises(StorageUnavailable):
        store.tenant(T).delete(GROUP, "g")
    assert consistent(store, "g", members) == members
    fail_batch(fault_proxy, 6)
    with pytest.raises(StorageUnavailable):
        store.tenant(T).delete(GROUP, "g")
    assert store.tenant(T).get(GROUP, "g") is not None
    staff = store.tenant(T).lookup(GROUP, IndexKey("displayName", "staff", True))
    assert [r.id for r in staff] == ["g"]
    assert consistent(store, "g", members) == members[-47:]  # the last batch's
    fault_proxy.rule = lambda method, target, number: None
    store.tenant(T).delete(GROUP, "g")
    assert rows_besides_users(table_harness) == []


def test_a_table_deleted_underneath_gives_503_and_is_created_again(
        table_store: TableStore, table_harness: TableHarness) -> None:
    """A vanished table gives 503 (not 'not found'), and the next call creates it again."""
    add_user(table_store, "u1", "alice")
    table_harness.client.delete_table()
    with pytest.raises(StorageUnavailable):
        table_store.tenant(T).get(USER, "u1")
    assert table_store.tenant(T).get(USER, "u1") is None
    add_user(table_store, "u1", "alice")


# -- factory -------------------------------------------------------------------------------

def test_the_factory_builds_a_store_that_creates_its_table_once(azurite: Azurite) -> None:
    """table_store() from a connection string works and creates the table on first use only."""
    log = RequestLog()
    settings = Settings(tables_connection=azurite.connection_string,
                        table_name=unique_table_name())
    store = table_store(settings, raw_response_hook=log, **FAST_CLIENT_OPTIONS)
    try:
        assert log.count == 0
        add_user(store, "u1", "alice")
        assert store.tenant(T).get(USER, "u1") is not None
        assert store.tenant(T).get(USER, "u2") is None
        assert [target for method, target in log.entries if method == "POST"
                and target.startswith("Tables")] == ["Tables"]
    finally:
        table_client(settings, credential=None, **FAST_CLIENT_OPTIONS).delete_table()
        store.close()


def test_the_factory_accepts_use_development_storage_without_calling_out() -> None:
    """UseDevelopmentStorage=true means Azurite's well-known account on 127.0.0.1:10002."""
    client = table_client(Settings(tables_connection="UseDevelopmentStorage=true;"),
                          credential=None)
    assert client.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    assert client.account_name == "devstoreaccount1" and client.table_name == "scim"


def test_the_factory_uses_the_given_credential_and_never_builds_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """By endpoint the client uses the credential it is given; given none it raises a
    settings error and builds none itself."""
    forbid_ambient_credentials(monkeypatch)
    settings = Settings(tables_endpoint="https://acct.table.core.windows.net")
    given_credential = FakeCredential()
    client = table_client(settings, credential=given_credential)
    assert client.credential is given_credential
    with pytest.raises(SettingsError, match="SCIM_TABLES_ENDPOINT"):
        table_client(settings, credential=None)
    assert given_credential.calls == 0


@pytest.mark.parametrize("settings", [
    Settings(),
    Settings(tables_connection="UseDevelopmentStorage=true", table_name="no-dashes"),
    Settings(tables_connection="UseDevelopmentStorage=true", table_name="1abc"),
])
def test_the_factory_refuses_unusable_settings(settings: Settings) -> None:
    """No connection and no endpoint, or an invalid table name, is a settings error."""
    with pytest.raises(SettingsError):
        table_store(settings)


def test_a_transaction_starts_no_thread(table_harness: TableHarness,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch runs its per-part SDK policies on the calling thread, not on new threads."""
    import threading

    table_harness.store.tenant(T).create(user("u0", "warm"), user_keys("warm"))
    started: list[str] = []
    start = threading.Thread.start

    def counting(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting)
    operations = [("upsert", {"PartitionKey": "p", "RowKey": f"r{i}", "n": i}) for i in range(30)]
    table_harness.client.submit_transaction(operations)
    assert started == []
    assert len(list(table_harness.client.query_entities("PartitionKey eq 'p'"))) == 30


@pytest.mark.parametrize(("environ", "scheme", "expected"), [
    ({}, "https", False),
    ({"PATH": "/usr/bin", "HOME": "/root", "NO_PROXY": "localhost"}, "https", False),
    ({"HTTPS_PROXY": ""}, "https", False),
    ({"HTTPS_PROXY": "http://proxy:3128"}, "https", True),
    ({"http_proxy": "http://proxy:3128"}, "http", True),
    ({"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem"}, "https", True),
    ({"CURL_CA_BUNDLE": "/etc/ssl/corp.pem"}, "https", True),
    ({"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem", "CURL_CA_BUNDLE": "/x"}, "http", False),
    ({"NETRC": "/home/app/.netrc"}, "http", True),
])
def test_the_http_session_reads_the_environment_only_when_it_has_settings(
        environ: dict[str, str], scheme: str, expected: bool) -> None:
    """Proxy and netrc variables switch environment lookups on, a CA bundle only for an
    https endpoint; nothing else does."""
    assert uses_environment_settings(environ, scheme=scheme) is expected


@pytest.mark.parametrize(("settings", "scheme"), [
    (Settings(tables_connection="UseDevelopmentStorage=true"), "http"),
    (Settings(tables_connection="DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k"),
     "http"),
    (Settings(tables_connection="AccountName=a;AccountKey=k;EndpointSuffix=core.windows.net"),
     "https"),
    (Settings(tables_connection="DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;"
                                "TableEndpoint=https://a.table.example/"), "https"),
    (Settings(tables_connection="AccountName=a;AccountKey=k;"
                                "TableEndpoint=http://127.0.0.1:10002/a;"), "http"),
    (Settings(tables_endpoint="https://a.table.core.windows.net"), "https"),
    (Settings(tables_endpoint="http://127.0.0.1:10002/a"), "http"),
])
def test_the_endpoint_scheme_is_read_from_the_settings(settings: Settings,
                                                       scheme: str) -> None:
    """The table endpoint's scheme comes from TableEndpoint, then DefaultEndpointsProtocol,
    then https; Azurite's development storage is http."""
    assert endpoint_scheme(settings) == scheme


def test_without_environment_settings_no_call_looks_for_netrc(
        azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no proxy or netrc settings, storage calls skip requests' per-call netrc lookup,
    even with a CA bundle set, which the http endpoint of Azurite never uses."""
    import requests.sessions

    for name in list(os.environ):
        if name.lower() in REQUESTS_ENVIRONMENT:
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/corporate-ca.pem")
    looked: list[str] = []
    monkeypatch.setattr(requests.sessions, "get_netrc_auth",
                        lambda url, *args: looked.append(url))
    settings = Settings(tables_connection=azurite.connection_string,
                        table_name=unique_table_name())
    store = table_store(settings, **FAST_CLIENT_OPTIONS)
    try:
        add_user(store, "u1", "alice")
        assert store.tenant(T).get(USER, "u1") is not None
        assert looked == []
    finally:
        table_client(settings, credential=None, **FAST_CLIENT_OPTIONS).delete_table()
        store.close()


def test_a_cursor_page_takes_total_results_from_the_kept_counts(
        table_harness: TableHarness) -> None:
    """A cursor page's totalResults is the feed row's count (one point read), not a count
    of rows; only the first listing of a feed row from before counts reads keys, once."""
    use_api(make_api(table_harness.store))
    client, log = FunctionClient(), table_harness.requests
    for n in range(5):
        client.create_user(f"c{n}@contoso.example")
    log.clear()
    assert client.get("/Users", params={"cursor": "", "count": "2"}).json["totalResults"] == 5
    first = [target for method, target in log.entries if method == "GET"]
    assert sum("$select=RowKey" in q for q in first) == 2, first  # users and groups, once
    log.clear()
    page = client.get("/Users", params={"cursor": "", "count": "2"}).json
    assert page["totalResults"] == 5 and len(page["Resources"]) == 2
    queries = [target for method, target in log.entries if method == "GET"]
    assert len(queries) == 2 and log.point_reads() == 1, queries
    assert not any("$select=RowKey" in q for q in queries)
