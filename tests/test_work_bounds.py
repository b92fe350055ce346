"""Bounded work per request: filter and PATCH evaluation stops at a fixed budget with a 400
naming the limit, filters hold at most 100 comparisons, and member adds naming unknown ids
cost storage requests per transaction, not per id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scim_core.filter import budget as budget_module
from scim_core.filter import evaluate
from scim_core.filter.budget import MAX_WORK, WorkBudget
from scim_core.filter.parser import DEFAULT_MAX_TERMS
from scim_core.store import Member, MemberChange, MemoryStore, Meta, Record, UnknownMembers
from scim_core.store.base import GROUP
from scim_core.store.tables.batches import FEED_RESERVE, MAX_BATCH
from tests.azurite import TableHarness
from tests.conftest import make_api
from tests.support import FunctionClient, Result, use_api

pytestmark = pytest.mark.timeout(120)

ELEMENTS = 5_000
"""A multi-valued attribute as large as the issue's hostile PATCH used."""


def _big_user(client: FunctionClient, name: str = "big@contoso.example",
              elements: int = ELEMENTS) -> dict[str, Any]:
    emails = [{"value": f"u{i}@contoso.example", "type": f"t{i}"} for i in range(elements)]
    return client.create_user(name, emails=emails)


def _any_of(attribute: str, terms: int) -> str:
    return " or ".join(f'{attribute} eq "nope{i}"' for i in range(terms))


def assert_refused(result: Result, scim_type: str) -> None:
    assert result.status == 400, result.body[:300]
    assert result.json["scimType"] == scim_type, result.json


class Spend:
    """Counts every unit charged to any budget, and the most one budget used."""

    def __init__(self) -> None:
        self.units = 0
        self.most = 0


@pytest.fixture
def spend(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spend]:
    """WorkBudget.spend, recorded."""
    seen = Spend()
    original = WorkBudget.spend

    def recording(self: WorkBudget, units: int) -> None:
        seen.units += units
        seen.most = max(seen.most, self.used + units)
        original(self, units)

    monkeypatch.setattr(budget_module.WorkBudget, "spend", recording)
    yield seen


@pytest.fixture
def element_tests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a value-path filter was evaluated against one element."""
    calls = [0]
    original = evaluate._element_evaluate

    def counting(*args: Any) -> bool:
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(evaluate, "_element_evaluate", counting)
    return calls


# -- PATCH ---------------------------------------------------------------------------------


def test_hostile_value_filters_are_refused_before_any_element_is_tested(
        memory_client: FunctionClient, element_tests: list[int]) -> None:
    """5 operations with 100-term value filters over 5,000 emails (the issue's 22.5 s
    PATCH, at the term limit) are a 400 tooMany naming the limit, the user unchanged, and
    not one element was tested."""
    user = _big_user(memory_client)
    path = f"emails[{_any_of('type', DEFAULT_MAX_TERMS)}]"
    result = memory_client.patch_ops(f"/Users/{user['id']}",
                                     *[{"op": "remove", "path": path}] * 5)
    assert_refused(result, "tooMany")
    detail = result.json["detail"]
    assert "max work per request" in detail and str(MAX_WORK) in detail
    assert element_tests[0] == 0
    after = memory_client.get(f"/Users/{user['id']}").json
    assert after["meta"]["version"] == user["meta"]["version"]
    assert len(after["emails"]) == ELEMENTS


def test_many_cheap_operations_over_a_large_attribute_add_up_to_the_limit(
        memory_client: FunctionClient) -> None:
    """Each operation is charged the elements it walks: 10 adds to a 5,000-element
    attribute pass, 30 (a 5 KB body) are a 400 tooMany and change nothing."""
    user = _big_user(memory_client)
    url = f"/Users/{user['id']}"

    def adds(count: int) -> list[dict[str, Any]]:
        return [{"op": "add", "path": "emails", "value": [{"value": f"n{i}@contoso.example"}]}
                for i in range(count)]

    assert memory_client.patch_ops(url, *adds(10)).status == 200
    before = memory_client.get(url).json
    refused = memory_client.patch_ops(url, *adds(30))
    assert_refused(refused, "tooMany")
    assert str(MAX_WORK) in refused.json["detail"]
    assert memory_client.get(url).json == before


def test_member_filters_are_charged_per_member_and_term(memory_client: FunctionClient,
                                                        element_tests: list[int]) -> None:
    """A member filter other than value eq is tested against every member: 2,000 members
    × 60 terms is refused (tooMany) before any member is tested; 2,000 × 40 passes."""
    ids = [memory_client.create_user(f"m{i}@contoso.example")["id"] for i in range(2_000)]
    group = memory_client.create_group(
        "Staff", members=[{"value": i} for i in ids])["id"]
    refused = memory_client.patch_ops(
        f"/Groups/{group}", {"op": "remove", "path": f"members[{_any_of('display', 60)}]"})
    assert_refused(refused, "tooMany")
    assert element_tests[0] == 0
    passed = memory_client.patch_ops(
        f"/Groups/{group}", {"op": "remove", "path": f"members[{_any_of('display', 40)}]"})
    assert passed.status == 204
    assert len(memory_client.get(f"/Groups/{group}").json["members"]) == 2_000


# -- filter terms ----------------------------------------------------------------------------


def test_a_filter_of_more_than_100_comparisons_is_an_invalid_filter(
        memory_client: FunctionClient) -> None:
    """A GET filter or a PATCH path filter of 101 comparisons is a 400 invalidFilter
    naming the limit; 100 are accepted."""
    user = memory_client.create_user("one@contoso.example",
                                     emails=[{"value": "one@contoso.example", "type": "work"}])
    ok = memory_client.get("/Users", params={"filter": _any_of("userName", DEFAULT_MAX_TERMS)})
    assert ok.status == 200 and ok.json["totalResults"] == 0
    too_many = _any_of("userName", DEFAULT_MAX_TERMS + 1)
    refused = memory_client.get("/Users", params={"filter": too_many})
    assert_refused(refused, "invalidFilter")
    assert "max filter terms" in refused.json["detail"]
    assert str(DEFAULT_MAX_TERMS) in refused.json["detail"]
    url = f"/Users/{user['id']}"
    assert memory_client.patch_ops(url, {"op": "remove", "path": f"emails[{_any_of('type', 100)}]"}
                                   ).status == 200
    path_refused = memory_client.patch_ops(
        url, {"op": "remove", "path": f"emails[{_any_of('type', 101)}]"})
    assert_refused(path_refused, "invalidFilter")
    assert "max filter terms" in path_refused.json["detail"]


# -- GET filters -----------------------------------------------------------------------------


def test_an_unindexed_filter_over_large_attributes_stops_at_the_limit(
        memory_client: FunctionClient, spend: Spend) -> None:
    """A scan whose value filter meets 5,000 emails per user at 20 terms is a 400
    tooMany naming the limit, and the work done stops at the limit."""
    for n in range(3):
        _big_user(memory_client, f"big{n}@contoso.example")
    flt = f"emails[{_any_of('type', 20)}]"
    result = memory_client.get("/Users", params={"filter": flt})
    assert_refused(result, "tooMany")
    assert str(MAX_WORK) in result.json["detail"]
    assert spend.most <= MAX_WORK + ELEMENTS * 20


def test_a_scan_of_many_resources_with_many_terms_stops_at_the_limit(
        memory_client: FunctionClient, spend: Spend) -> None:
    """1,100 users against a 100-term filter (110,000 term tests) is a 400 tooMany; the
    same users against a 10-term filter are answered."""
    for n in range(1_100):
        memory_client.create_user(f"user{n}@contoso.example", title="staff")
    refused = memory_client.get("/Users", params={"filter": _any_of("title", 100)})
    assert_refused(refused, "tooMany")
    assert spend.most == MAX_WORK + 1
    answered = memory_client.get("/Users", params={"filter": _any_of("title", 9)
                                                   + ' or title eq "staff"'})
    assert answered.status == 200 and answered.json["totalResults"] == 1_100


def test_entra_shaped_requests_spend_a_tiny_part_of_the_budget(
        memory_client: FunctionClient, spend: Spend) -> None:
    """Entra's match, membership check, user PATCH of work email and flagged member
    remove spend under 0.1% of the budget each."""
    users = [memory_client.create_user(f"e{i}@contoso.example",
                                       emails=[{"value": f"e{i}@contoso.example",
                                                "type": "work", "primary": True}])["id"]
             for i in range(10)]
    group = memory_client.create_group("Team", members=[{"value": u} for u in users])["id"]
    requests = [
        lambda: memory_client.get("/Users", params={"filter": 'userName eq "e1@contoso.example"'}),
        lambda: memory_client.get("/Users", params={
            "filter": 'emails[type eq "work"].value eq "e2@contoso.example"'}),
        lambda: memory_client.get("/Groups", params={
            "filter": f'id eq "{group}" and members[value eq "{users[0]}"]',
            "excludedAttributes": "members"}),
        lambda: memory_client.patch_ops(f"/Users/{users[3]}", {
            "op": "replace", "path": 'emails[type eq "work"].value',
            "value": "new@contoso.example"}, {"op": "replace", "path": "active", "value": "False"}),
        lambda: memory_client.patch_ops(f"/Groups/{group}", {
            "op": "remove", "path": f'members[value eq "{users[4]}"]'}),
    ]
    for request in requests:
        spend.most = 0
        assert request().status in (200, 204)
        assert spend.most < MAX_WORK // 1000


# -- unknown member ids ------------------------------------------------------------------------

UNKNOWN = 2_000
ADDS_PER_BATCH = (MAX_BATCH - FEED_RESERVE - 1) // 3


def _unknown_ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def test_unknown_member_ids_cost_requests_per_transaction_not_per_id(
        table_harness: TableHarness) -> None:
    """On Table Storage, adding 2,000 unknown ids (65 transactions' worth) costs at most
    a dozen storage requests and writes nothing; 40 known ids among them are added with
    their transactions plus a dozen requests, not one request per unknown id."""
    use_api(make_api(table_harness.store))
    client, log = FunctionClient(), table_harness.requests
    known = [client.create_user(f"k{i}@contoso.example")["id"] for i in range(40)]
    group = client.create_group("Staff")
    url = f"/Groups/{group['id']}"

    log.clear()
    table_harness.client.batch_sizes.clear()
    unknown = client.patch_ops(url, {"op": "add", "path": "members",
                                     "value": [{"value": i} for i in _unknown_ids(UNKNOWN)]})
    assert unknown.status == 204
    assert log.count <= 12 and table_harness.client.batch_sizes == [], log.count
    assert client.get(url).json.get("members", []) == []

    log.clear()
    table_harness.client.batch_sizes.clear()
    mixed = [*_unknown_ids(UNKNOWN // 2), *known, *_unknown_ids(UNKNOWN // 2)]
    assert client.patch_ops(url, {"op": "add", "path": "members",
                                  "value": [{"value": i} for i in mixed]}).status == 204
    transactions = len(table_harness.client.batch_sizes)
    assert transactions == -(-len(known) // ADDS_PER_BATCH)
    assert log.count <= transactions + 24, (log.count, transactions)
    assert sorted(m["value"] for m in client.get(url).json["members"]) == sorted(known)


def test_unknown_member_ids_are_skipped_alike_on_both_stores(client: FunctionClient) -> None:
    """Adding 2,000 unknown ids with 3 known ones (PATCH and POST) adds exactly the known
    ones, on either store."""
    known = [client.create_user(f"s{i}@contoso.example")["id"] for i in range(3)]
    listed = [{"value": i} for i in [*_unknown_ids(UNKNOWN), *known]]
    group = client.create_group("Patched")["id"]
    assert client.patch_ops(f"/Groups/{group}",
                            {"op": "add", "path": "members", "value": listed}).status == 204
    created = client.create_group("Posted", members=listed)
    for group_id in (group, created["id"]):
        members = client.get(f"/Groups/{group_id}").json["members"]
        assert sorted(m["value"] for m in members) == sorted(known)


def test_the_memory_store_names_every_unknown_id_at_once() -> None:
    """The memory store, like Table Storage, reports all unknown ids of a change in one
    UnknownMembers, so the service resubmits once."""
    store = MemoryStore().tenant("t")
    store.create(Record(GROUP, "g", {"displayName": "g"}, Meta("a", "a", "v")), [])
    ids = _unknown_ids(50)
    with pytest.raises(UnknownMembers) as raised:
        store.change_members("g", last_modified="b", version="w",
                             members=MemberChange(add=tuple(Member(i) for i in ids)))
    assert set(raised.value.ids) == set(ids)


def test_existence_checks_walk_ranges_and_skip_the_gaps(table_harness: TableHarness) -> None:
    """``TableStore.present`` finds exactly the stored keys among 1,200 (half missing,
    interleaved with 2,500 rows) in at most the slices plus one request per 1,000 rows,
    and 41 missing keys spread over the rows in at most 41 requests (never more than point
    reads would cost)."""
    store, log = table_harness.store, table_harness.requests
    partition = "walk"
    rows = [f"user:{n:05d}" for n in range(0, 5_000, 2)]
    with store.session():  # creates the table
        for at in range(0, len(rows), 100):
            store.table.submit_transaction([("upsert", {"PartitionKey": partition, "RowKey": key})
                                            for key in rows[at:at + 100]])
    wanted = [f"user:{n:05d}" for n in range(1_000, 2_200)]
    log.clear()
    assert store.present(partition, wanted) == set(wanted) & set(rows)
    assert log.count <= 8 + len(rows) // 1_000 + 1
    spread = [f"user:{n:05d}" for n in range(1, 5_000, 124)]
    log.clear()
    assert store.present(partition, [*spread, rows[0], rows[-1]]) == {rows[0], rows[-1]}
    assert log.count <= len(spread) + 2
