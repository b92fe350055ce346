"""Helpers shared by the reliability suites: SCIM error checks, store snapshots, store
invariants through the public Store protocol, and figures for docs/reliability.md.

Figures: every suite counts what it tried (inputs, requests, invariants, faults) in
``FIGURES``; with ``SCIM_FIGURES_DIR`` set, ``write_figures`` leaves them as JSON files there,
which is how the numbers in docs/reliability.md were collected.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from scim_core.schema import Registry
from scim_core.store import GROUP, USER, Store
from tests.support import ERROR_SCHEMA, Result

REGISTRY = Registry.default()

FIGURES: Counter[str] = Counter()


def count(name: str, amount: int = 1) -> None:
    FIGURES[name] += amount


def write_figures(suite: str, extra: dict[str, Any] | None = None) -> None:
    """Write the counters whose names start with ``suite`` (and ``extra``) when asked to."""
    target = os.environ.get("SCIM_FIGURES_DIR")
    if not target:
        return
    figures: dict[str, Any] = {k: v for k, v in sorted(FIGURES.items()) if k.startswith(suite)}
    figures.update(extra or {})
    path = Path(target)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{suite}.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def assert_scim_error(result: Result, *, allowed: tuple[int, ...] | None = None) -> None:
    """Any answer but a 5xx (unless listed in ``allowed``); an error answer (>= 400)
    carries a SCIM Error body whose ``status`` is the HTTP status as a string."""
    assert result.status < 500 or result.status in (allowed or ()), (result.status,
                                                                     result.body[:500])
    if allowed is not None:
        assert result.status in allowed, (result.status, result.body[:500])
    if result.status < 400:
        return
    content_type = result.header("Content-Type") or ""
    assert content_type.startswith("application/scim+json"), (result.status, content_type)
    body = result.json
    assert isinstance(body, dict), result.body[:500]
    assert body.get("schemas") == [ERROR_SCHEMA], body
    assert body.get("status") == str(result.status), body


def snapshot(client: Any) -> dict[str, list[Any]]:
    """Every user and group (with members and meta.version) as the API shows them, sorted
    by id, so that two snapshots are equal exactly when nothing was stored or changed."""
    found: dict[str, list[Any]] = {}
    for endpoint in ("/Users", "/Groups"):
        result = client.get(endpoint, params={"count": "1000"})
        assert result.status == 200, (endpoint, result.status, result.body[:300])
        resources = result.json["Resources"]
        assert result.json["totalResults"] == len(resources), "snapshot needs one page"
        found[endpoint] = sorted(resources, key=lambda r: r["id"])
    return found


def check_store_invariants(store: Store, tenant: str = "default") -> int:
    """Check, through the public Store protocol only, what must hold after any workload;
    returns how many individual checks were made.

    - userNames (users) and displayNames (groups) are unique once case-folded;
    - each such name finds exactly its resource by an index lookup;
    - every member of a group is an existing user, and the user lists that group
      (``groups_of``), and ``is_member`` agrees; every group a user lists has it as member.
    """
    from scim_core.store import IndexKey

    checks = 0
    users = {r.id: r for r in store.tenant(tenant).scan(USER)}
    groups = {r.id: r for r in store.tenant(tenant).scan(GROUP)}
    for kind, records, attr in ((USER, users, "userName"), (GROUP, groups, "displayName")):
        names: dict[str, str] = {}
        for record in records.values():
            name = record.document.get(attr)
            assert isinstance(name, str), (kind, record.id, record.document)
            key = name.casefold()
            assert key not in names, f"{kind} {attr} {name!r} held by {names[key]} and {record.id}"
            names[key] = record.id
            found = [r.id for r in store.tenant(tenant).lookup(kind, IndexKey(attr, key, True))]
            assert found == [record.id], (kind, name, found, record.id)
            checks += 2
    memberships: set[tuple[str, str]] = set()
    for group_id in groups:
        for member in store.tenant(tenant).members(group_id):
            assert member.value in users, f"group {group_id} holds missing user {member.value}"
            assert store.tenant(tenant).is_member(group_id, member.value)
            memberships.add((group_id, member.value))
            checks += 2
    for user_id in users:
        for group_id in store.tenant(tenant).groups_of(user_id):
            assert group_id in groups, f"user {user_id} lists missing group {group_id}"
            assert (group_id, user_id) in memberships, (group_id, user_id)
            checks += 2
    listed = {(g, u) for u in users for g in store.tenant(tenant).groups_of(u)}
    assert listed == memberships, memberships ^ listed
    return checks + 1


def check_table_rows(table: Any, tenant: str = "default") -> int:
    """Check the raw rows of a TableStore's table (layout: scim_core/store/tables/keys.py);
    returns how many individual checks were made.

    - every row is a document, a unique (``ux:``) or non-unique (``ix:``) index row, or a
      ``member:``/``memberOf:`` membership row;
    - each document's ``indexRows`` are exactly the rows its document calls for, and each
      of them exists and names the document's id and value;
    - every index row belongs to an existing document that lists it (no orphans);
    - userNames and group displayNames are unique once case-folded;
    - every ``member:g:u`` has its ``memberOf:u:g`` and the reverse, and both the group and
      the user exist (no rows left behind by deletes);
    - the change feed's event rows run without a gap from the ``feed`` row's floor to its
      position.
    """
    from scim_core.resources import index_keys
    from scim_core.store.tables import keys
    from scim_core.store.tables.entities import stored_document, stored_index_rows

    partition = keys.partition_key(tenant)
    rows = {e["RowKey"]: e for e in table.query_entities(
        "PartitionKey eq @p", parameters={"p": partition})}
    documents = {k: e for k, e in rows.items() if k.startswith(("user:", "group:"))}
    index_rows = {k: e for k, e in rows.items() if k.startswith(("ux:", "ix:"))}
    forward = {k: e for k, e in rows.items() if k.startswith("member:")}
    reverse = {k: e for k, e in rows.items() if k.startswith("memberOf:")}
    events = {k: e for k, e in rows.items() if k.startswith("event:")}
    feed = rows.get("feed")
    unknown = (set(rows) - set(documents) - set(index_rows) - set(forward) - set(reverse)
               - set(events) - {"feed"})
    assert not unknown, sorted(unknown)[:5]
    positions = sorted(int(e["position"]) for e in events.values())
    if feed is None:
        assert not positions, "event rows without a feed row"
    else:
        floor, last = int(feed.get("floor") or 0), int(feed["position"])
        assert positions == list(range(floor + 1, last + 1)), (floor, last, positions[:5])
    checks = 2
    owners: dict[str, str] = {}
    names: dict[tuple[str, str], str] = {}
    for row_key, entity in documents.items():
        kind = USER if row_key.startswith("user:") else GROUP
        resource_id = entity["id"]
        assert row_key == keys.document_key(kind, resource_id), row_key
        document = stored_document(entity)
        expected = {}
        rt = REGISTRY.resource_type(kind)
        assert rt is not None
        for key in index_keys(REGISTRY, rt, document):
            if key.unique:
                expected[keys.unique_index_key(kind, key.name, key.value)] = key
            else:
                expected[keys.index_key(kind, key.name, key.value, resource_id)] = key
        listed = stored_index_rows(entity)
        assert set(listed) == set(expected), (row_key, listed, sorted(expected))
        for index_row, key in expected.items():
            stored = index_rows.get(index_row)
            assert stored is not None, f"{row_key}: index row {index_row} is missing"
            assert stored["id"] == resource_id, (index_row, stored["id"], resource_id)
            assert stored["value"] == key.value, (index_row, stored["value"], key.value)
            owners[index_row] = row_key
            checks += 3
        unique_attr = "userName" if kind == USER else "displayName"
        folded = document[unique_attr].casefold()
        assert (kind, folded) not in names, f"{kind} {folded!r} held by two resources"
        names[(kind, folded)] = resource_id
        checks += 2
    orphans = set(index_rows) - set(owners)
    assert not orphans, f"index rows without a document: {sorted(orphans)[:5]}"
    checks += len(index_rows)
    for row_key, entity in forward.items():
        group_id, user_id = entity["groupId"], entity["userId"]
        assert row_key == keys.member_key(group_id, user_id), row_key
        assert keys.member_of_key(user_id, group_id) in reverse, f"{row_key} has no reverse"
        assert keys.document_key(GROUP, group_id) in documents, f"{row_key}: group is gone"
        assert keys.document_key(USER, user_id) in documents, f"{row_key}: user is gone"
        checks += 4
    for row_key, entity in reverse.items():
        user_id, group_id = entity["userId"], entity["groupId"]
        assert row_key == keys.member_of_key(user_id, group_id), row_key
        assert keys.member_key(group_id, user_id) in forward, f"{row_key} has no forward row"
        checks += 2
    return checks
