"""The change feed (docs/events.md): the exact events every SCIM request emits, Entra's
shapes included, through function_app.py on both stores; positions, cursors and tenants'
feeds; and the late-commit proof on Table Storage (a writer that built its transaction
first but commits later gets the later position, and a reader's cursor does not miss it)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from azure.data.tables import TableClient, TableTransactionError

from scim_core import ScimApi
from scim_core.app import build_admin
from scim_core.config import Settings
from scim_core.events import Event, EventType
from scim_core.kinds import Kind
from scim_core.operations.tenants import TenantAdmin
from scim_core.projection import Projection
from scim_core.service import ResourceService
from scim_core.store import MemoryStore, Store
from scim_core.store.tables import TableStore
from scim_core.store.tables.feed import FEED_ROW, event_key
from tests.azurite import FAST_CLIENT_OPTIONS, TableHarness
from tests.conftest import make_api
from tests.kvfake import FakeKeyVault
from tests.support import (
    BASE,
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_OP,
    USER_SCHEMA,
    FunctionClient,
    Result,
    register_tenant,
    tenant_api,
    use_api,
)

pytestmark = pytest.mark.timeout(300)

TENANT = "default"
DOC = Path(__file__).parent.parent / "docs" / "events.md"
DOC_SECTION = "## What each request emits"
MANAGER = f"{ENTERPRISE}:manager"
MEMBERSHIP = frozenset({EventType.GROUP_MEMBERS_ADDED, EventType.GROUP_MEMBERS_REMOVED})
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
USERS = ("alice", "bob", "carol")
STALE = 'W/"0000000000000000"'
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


# -- the cases' vocabulary ----------------------------------------------------------------


@dataclass
class Run:
    """One case under way: the client, the store behind it, and the ids of its resources by
    the names the case gives them (alice, team, ...)."""

    client: FunctionClient
    store: Store
    ids: dict[str, str] = field(default_factory=dict)

    def fill(self, value: Any) -> Any:
        """``value`` with every ``{name}`` of a known resource replaced by its id."""
        if isinstance(value, str):
            return _PLACEHOLDER.sub(lambda m: self.ids.get(m[1], m[0]), value)
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        return value

    def admin(self) -> TenantAdmin:
        return build_admin(Settings(store="memory"), store=self.store)


@dataclass(frozen=True)
class Given:
    """Part of a case's setup, with how the docs table names it."""

    text: str
    run: Callable[[Run], None]


def user(name: str, **attributes: Any) -> Given:
    def create(run: Run) -> None:
        run.ids[name] = run.client.create_user(
            f"{name}@contoso.example", **{"displayName": name.title(), **attributes})["id"]

    shown = f" `{dumps(attributes)}`" if attributes else ""
    return Given(f"{name}{shown}", create)


def group(name: str, *members: str) -> Given:
    def create(run: Run) -> None:
        run.ids[name] = run.client.create_group(
            name.title(), members=[{"value": run.ids[m]} for m in members])["id"]

    return Given(name + (" {" + ", ".join(members) + "}" if members else ""), create)


def tenant_disabled() -> Given:
    def disable(run: Run) -> None:
        run.admin().disable(TENANT)

    return Given("tenant disabled", disable)


class Call(NamedTuple):
    """The request under test: one call of the Azure Function. ``{name}`` in the path or
    body stands for that resource's id; ``names`` is the resource a POST creates."""

    method: str
    path: str
    body: Any = None
    headers: Mapping[str, str] | None = None
    names: str | None = None

    @property
    def text(self) -> str:
        shown = self.body
        if isinstance(shown, dict):
            shown = shown.get("Operations", {k: v for k, v in shown.items() if k != "schemas"})
        text = f"`{self.method} {self.path}`" + (f" `{dumps(shown)}`" if shown else "")
        return text + "".join(f" {k} `{v}`" for k, v in (self.headers or {}).items())

    def run(self, run: Run) -> Result:
        result = run.client.request(self.method, run.fill(self.path), run.fill(self.body),
                                    headers=dict(self.headers or {}))
        if self.names is not None and result.status == 201:
            run.ids[self.names] = result.json["id"]
        return result


class Admin(NamedTuple):
    """The request under test: a ``TenantAdmin`` method on the tenant."""

    method: str

    @property
    def text(self) -> str:
        return f"`TenantAdmin.{self.method}`"

    def run(self, run: Run) -> None:
        getattr(run.admin(), self.method)(TENANT)


class Expect(NamedTuple):
    """One expected event: its type, resourceType, the resource it is about (a name of the
    case), the attributes it names and the members it names (names of the case)."""

    type: str
    resource_type: str
    resource: str = ""
    attributes: tuple[str, ...] = ()
    members: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        text = f"`{self.type}`" + (f" {self.resource}" if self.resource else "")
        text += f" [{', '.join(self.attributes)}]" if self.attributes else ""
        return text + (" {" + ", ".join(self.members) + "}" if self.members else "")


@dataclass(frozen=True)
class Case:
    name: str
    given: tuple[Given, ...]
    request: Call | Admin
    status: int | None
    events: tuple[Expect, ...]

    @property
    def row(self) -> tuple[str, str, str, str, str]:
        """The case as a row of the docs table."""
        return (self.name, ", ".join(g.text for g in self.given) or "", self.request.text,
                "" if self.status is None else str(self.status),
                "; ".join(e.text for e in self.events) or "none")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def user_body(name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": f"{name}@contoso.example", **attributes}


def group_body(name: str, *members: str, **attributes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name, **attributes}
    if members:
        body["members"] = [{"value": "{" + m + "}"} for m in members]
    return body


# -- the table: what each request emits (mirrored in docs/events.md) --------------------------
#
# docs/events.md, "What each request emits", is this table rendered (Case.row);
# test_docs_mirror_the_table fails when the two differ, so change both together.

ALICE, BOB, CAROL = "{alice}", "{bob}", "{carol}"
ADD_MEMBERS = {"op": "Add", "path": "members",
               "value": [{"$ref": None, "value": ALICE}, {"value": BOB}]}

CASES: tuple[Case, ...] = (
    # users: create, replace, update (every Entra PATCH shape), delete
    Case("POST user", (),
         Call("POST", "/Users", user_body("alice", externalId="a-1", active=True,
                                         displayName="Alice",
                                         emails=[{"value": "alice@contoso.example",
                                                  "type": "work", "primary": True}]),
              names="alice"),
         201, (Expect("user.created", "User", "alice"),)),
    Case("POST user with active false", (),
         Call("POST", "/Users", user_body("alice", active=False), names="alice"),
         201, (Expect("user.created", "User", "alice"),)),
    Case("PUT user changing attributes", (user("alice", title="Planner"),),
         Call("PUT", "/Users/{alice}", user_body("alice", displayName="Alice L.",
                                                 nickName="Al")),
         200, (Expect("user.updated", "User", "alice", ("displayName", "nickName", "title")),)),
    Case("PUT user with the same attributes", (user("alice", title="Planner"),),
         Call("PUT", "/Users/{alice}", user_body("alice", displayName="Alice",
                                                 title="Planner")),
         200, ()),
    Case("PATCH replace displayName (path)", (user("alice"),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "displayName", "value": "Alice L."})),
         200, (Expect("user.updated", "User", "alice", ("displayName",)),)),
    Case("PATCH path-less replace active \"False\" (Entra)", (user("alice"),),
         Call("PATCH", "/Users/{alice}", ops({"op": "replace", "value": {"active": "False"}})),
         200, (Expect("user.deactivated", "User", "alice"),)),
    Case("PATCH legacy replace active \"False\" (Entra)", (user("alice", active=True),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "active", "value": "False"})),
         200, (Expect("user.deactivated", "User", "alice"),)),
    Case("PATCH active false with other attributes", (user("alice"),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "replace", "value": {"active": False, "displayName": "Gone"}})),
         200, (Expect("user.deactivated", "User", "alice"),
               Expect("user.updated", "User", "alice", ("displayName",)))),
    Case("PATCH path-less replace of several attributes, active true after false",
         (user("alice", active=False),),
         Call("PATCH", "/Users/{alice}", ops({"op": "replace", "value": {
             "active": "True", "displayName": "Alice L.", "name.givenName": "Alice",
             f"{ENTERPRISE}:department": "Facilities"}})),
         200, (Expect("user.reactivated", "User", "alice"),
               Expect("user.updated", "User", "alice",
                      ("displayName", "name", f"{ENTERPRISE}:department")))),
    Case("PATCH that changes nothing", (user("alice"),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "displayName", "value": "Alice"})),
         200, ()),
    Case("PATCH active \"False\" of a deactivated user", (user("alice", active=False),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "active", "value": "False"})),
         200, ()),
    Case("PATCH active true of a user created without active", (user("alice"),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "active", "value": "True"})),
         200, (Expect("user.updated", "User", "alice", ("active",)),)),
    Case("PATCH enterprise manager (Entra)", (user("alice"), user("bob")),
         Call("PATCH", "/Users/{alice}", ops({"op": "Add", "path": MANAGER, "value": BOB})),
         200, (Expect("user.updated", "User", "alice", (MANAGER,)),)),
    Case("PATCH work email value path (Entra)", (user("alice"),),
         Call("PATCH", "/Users/{alice}", ops({"op": "Replace",
                                              "path": "emails[type eq \"work\"].value",
                                              "value": "alice.l@contoso.example"})),
         200, (Expect("user.updated", "User", "alice", ("emails",)),)),
    Case("DELETE user in 2 groups",
         (user("alice"), user("bob"), group("team", "alice", "bob"), group("staff", "alice")),
         Call("DELETE", "/Users/{alice}"),
         204, (Expect("user.deleted", "User", "alice"),
               Expect("group.members_removed", "Group", "team", members=("alice",)),
               Expect("group.members_removed", "Group", "staff", members=("alice",)))),
    Case("DELETE user in no group", (user("alice"),),
         Call("DELETE", "/Users/{alice}"),
         204, (Expect("user.deleted", "User", "alice"),)),
    # groups: create, member PATCH (Entra's shapes), rename, replace, delete
    Case("POST group with members", (user("alice"), user("bob")),
         Call("POST", "/Groups", group_body("Team", "alice", "bob"), names="team"),
         201, (Expect("group.created", "Group", "team"),
               Expect("group.members_added", "Group", "team", members=("alice", "bob")))),
    Case("POST group without members", (),
         Call("POST", "/Groups", group_body("Team", externalId="g-1"), names="team"),
         201, (Expect("group.created", "Group", "team"),)),
    Case("PATCH group add members (Entra)", (user("alice"), user("bob"), group("team")),
         Call("PATCH", "/Groups/{team}", ops(ADD_MEMBERS)),
         204, (Expect("group.members_added", "Group", "team", members=("alice", "bob")),)),
    Case("PATCH group path-less add members", (user("alice"), group("team")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "add", "value": {"members": [{"value": ALICE}]}})),
         204, (Expect("group.members_added", "Group", "team", members=("alice",)),)),
    Case("PATCH group re-add an existing member", (user("alice"), group("team", "alice")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Add", "path": "members", "value": [{"value": ALICE}]})),
         204, (Expect("group.members_added", "Group", "team", members=("alice",)),)),
    Case("PATCH group add a member who is no user", (group("team"),),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]})),
         204, ()),
    Case("PATCH group remove member, filter path (Entra)",
         (user("alice"), user("bob"), group("team", "alice", "bob")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "remove", "path": f'members[value eq "{ALICE}"]'})),
         204, (Expect("group.members_removed", "Group", "team", members=("alice",)),)),
    Case("PATCH group legacy member removal (Entra)",
         (user("alice"), user("bob"), group("team", "alice", "bob")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Remove", "path": "members", "value": [{"value": ALICE}]})),
         204, (Expect("group.members_removed", "Group", "team", members=("alice",)),)),
    Case("PATCH group remove a non-member", (user("alice"), user("carol"),
                                            group("team", "alice")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Remove", "path": "members", "value": [{"value": CAROL}]})),
         204, ()),
    Case("PATCH group remove a member and a non-member",
         (user("alice"), user("carol"), group("team", "alice")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Remove", "path": "members",
                   "value": [{"value": ALICE}, {"value": CAROL}]})),
         204, (Expect("group.members_removed", "Group", "team", members=("alice",)),)),
    Case("PATCH group remove all members (no value)",
         (user("alice"), user("bob"), group("team", "alice", "bob")),
         Call("PATCH", "/Groups/{team}", ops({"op": "Remove", "path": "members"})),
         204, (Expect("group.members_removed", "Group", "team", members=("alice", "bob")),)),
    Case("PATCH group remove and add in one request",
         (user("alice"), user("carol"), group("team", "alice")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Remove", "path": "members", "value": [{"value": ALICE}]},
                  {"op": "Add", "path": "members", "value": [{"value": CAROL}]})),
         204, (Expect("group.members_removed", "Group", "team", members=("alice",)),
               Expect("group.members_added", "Group", "team", members=("carol",)))),
    Case("PATCH group displayName (Entra)", (user("alice"), group("team", "alice")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Replace", "path": "displayName", "value": "Team 2"})),
         204, (Expect("group.updated", "Group", "team", ("displayName",)),)),
    Case("PATCH group path-less displayName and externalId", (group("team"),),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "replace", "value": {"displayName": "Team 2"}},
                  {"op": "replace", "value": {"externalId": "g-2"}})),
         204, (Expect("group.updated", "Group", "team", ("displayName", "externalId")),)),
    Case("PUT group replacing members",
         (user("alice"), user("bob"), user("carol"), group("team", "alice", "bob")),
         Call("PUT", "/Groups/{team}", group_body("Team", "bob", "carol")),
         200, (Expect("group.members_removed", "Group", "team", members=("alice",)),
               Expect("group.members_added", "Group", "team", members=("bob", "carol")))),
    Case("PUT group with the same name and members", (user("alice"), group("team", "alice")),
         Call("PUT", "/Groups/{team}", group_body("Team", "alice")),
         200, (Expect("group.members_added", "Group", "team", members=("alice",)),)),
    Case("PUT group renaming it and replacing members",
         (user("alice"), user("bob"), group("team", "alice")),
         Call("PUT", "/Groups/{team}", group_body("Team 2", "bob")),
         200, (Expect("group.updated", "Group", "team", ("displayName",)),
               Expect("group.members_removed", "Group", "team", members=("alice",)),
               Expect("group.members_added", "Group", "team", members=("bob",)))),
    Case("DELETE group", (user("alice"), user("bob"), group("team", "alice", "bob")),
         Call("DELETE", "/Groups/{team}"),
         204, (Expect("group.deleted", "Group", "team"),)),
    # failed requests write nothing, so they emit nothing
    Case("400: PATCH with a bad operation after a good one", (user("alice"),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "displayName", "value": "Alice L."},
                  {"op": "Replace", "path": "active", "value": "maybe"})),
         400, ()),
    Case("400: PATCH group with an unknown op", (user("alice"), group("team")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Add", "path": "members", "value": [{"value": ALICE}]},
                  {"op": "Explode", "path": "members"})),
         400, ()),
    Case("409: POST user with a taken userName", (user("alice"),),
         Call("POST", "/Users", user_body("alice")),
         409, ()),
    Case("409: PATCH group onto a taken displayName", (group("team"), group("staff")),
         Call("PATCH", "/Groups/{staff}",
              ops({"op": "Replace", "path": "displayName", "value": "Team"})),
         409, ()),
    Case("404: PATCH of an unknown user", (),
         Call("PATCH", "/Users/no-such-user",
              ops({"op": "Replace", "path": "displayName", "value": "X"})),
         404, ()),
    Case("404: DELETE of an unknown group", (),
         Call("DELETE", "/Groups/no-such-group"),
         404, ()),
    Case("412: PATCH user with a stale If-Match", (user("alice"),),
         Call("PATCH", "/Users/{alice}",
              ops({"op": "Replace", "path": "displayName", "value": "Alice L."}),
              headers={"If-Match": STALE}),
         412, ()),
    Case("412: PATCH group members with a stale If-Match", (user("alice"), group("team")),
         Call("PATCH", "/Groups/{team}",
              ops({"op": "Add", "path": "members", "value": [{"value": ALICE}]}),
              headers={"If-Match": STALE}),
         412, ()),
    Case("412: DELETE user with a stale If-Match", (user("alice"),),
         Call("DELETE", "/Users/{alice}", headers={"If-Match": STALE}),
         412, ()),
    # the tenant itself
    Case("disable the tenant", (), Admin("disable"), None,
         (Expect("tenant.disabled", ""),)),
    Case("enable it again", (tenant_disabled(),), Admin("enable"), None,
         (Expect("tenant.enabled", ""),)),
    Case("disable it twice", (tenant_disabled(),), Admin("disable"), None, ()),
    Case("enable an enabled tenant", (), Admin("enable"), None, ()),
)


# -- what a case checks -------------------------------------------------------------------


class Seen(NamedTuple):
    """A resource as GET shows it: its version, lastModified, ETag header, and the body
    without the relations (members, groups) that events leave out."""

    version: str
    last_modified: str
    etag: str
    resource: dict[str, Any]


def endpoint(name: str) -> str:
    return "/Users" if name in USERS else "/Groups"


def snapshot(run: Run) -> dict[str, Seen | None]:
    seen: dict[str, Seen | None] = {}
    for name, resource_id in run.ids.items():
        result = run.client.get(f"{endpoint(name)}/{resource_id}")
        if result.status == 404:
            seen[name] = None
            continue
        assert result.status == 200, result.body
        body = {k: v for k, v in result.json.items() if k not in ("members", "groups")}
        seen[name] = Seen(body["meta"]["version"], body["meta"]["lastModified"],
                          result.header("ETag"), body)
    return seen


def named(run: Run, events: Sequence[Event]) -> list[Expect]:
    """``events`` told in the case's names (an id the case does not know stays an id)."""
    names = {resource_id: name for name, resource_id in run.ids.items()}
    return [Expect(str(e.type), e.resource_type, names.get(e.resource_id, e.resource_id),
                   e.attributes, tuple(names.get(m, m) for m in e.members)) for e in events]


def in_commit_order(run: Run, expected: Sequence[Expect]) -> list[Expect]:
    """A change's own events first, then its membership events group by group in group id
    order (both stores write them so), each with its members in user id order."""
    def by_id(names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(names, key=lambda name: run.ids.get(name, name)))

    own = [e for e in expected if e.type not in MEMBERSHIP]
    membership = sorted((e._replace(members=by_id(e.members)) for e in expected
                         if e.type in MEMBERSHIP), key=lambda e: run.ids[e.resource])
    return own + membership


def check_event(run: Run, event: Event, expect: Expect, *, before: Mapping[str, Seen | None],
                after: Mapping[str, Seen | None], target_etag: str | None,
                target: str | None) -> None:
    """The columns of one event beyond its type, resource and names: version, time and
    resource agree with what GET shows before or after the request."""
    assert event.tenant == TENANT
    assert event.id == f"{TENANT}:{event.position}"
    assert ISO_UTC.fullmatch(event.time), event.time
    if event.type.startswith("tenant."):
        assert (event.resource_type, event.resource_id, event.version) == ("", "", "")
        assert event.resource is None
        registered = run.store.tenant_registry().get(TENANT)
        assert registered is not None and event.time == registered.changed
        return
    now, was = after.get(expect.resource), before.get(expect.resource)
    if now is not None:
        assert event.version == now.version == now.etag, (event, now)
        assert event.time == now.last_modified
        if target == expect.resource and target_etag:
            assert event.version == target_etag  # the ETag the request answered with
        shown = now
    else:
        assert was is not None, f"{expect.resource} was never there"
        assert event.version == was.version  # a deletion carries the last version
        assert event.time >= was.last_modified
        shown = was
    if event.type in MEMBERSHIP:
        assert event.resource is None
    else:
        assert event.resource == shown.resource


def run_case(client: FunctionClient, store: Store, case: Case) -> None:
    run = Run(client, store)
    for given in case.given:
        given.run(run)
    feed = store.tenant(TENANT)
    start = feed.position()
    before = snapshot(run)
    result = case.request.run(run)
    if case.status is not None:
        assert result is not None and result.status == case.status, (
            result.status if result else None, result.body[:300] if result else b"")
    after = snapshot(run)
    events = feed.events(after=start, limit=100)
    expected = in_commit_order(run, case.events)
    assert named(run, events) == expected
    assert feed.position() == start + len(expected)
    assert [e.position for e in events] == list(range(start + 1, start + len(events) + 1))
    target = next((n for n in run.ids if isinstance(case.request, Call)
                   and f"{{{n}}}" in case.request.path), None)
    if isinstance(case.request, Call) and case.request.names is not None:
        target = case.request.names
    etag = result.header("ETag") if result is not None else None
    for event, expect in zip(events, expected, strict=True):
        check_event(run, event, expect, before=before, after=after, target_etag=etag,
                    target=target)
    everything = feed.events(after=0, limit=1000)
    assert [e.position for e in everything] == list(range(1, feed.position() + 1))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_request_emits_exactly_its_events(client: FunctionClient, any_store: Store,
                                               case: Case) -> None:
    """Each request of the table, on each store, appends exactly the listed events in that
    order at the next positions, each with the version, time and resource GET shows."""
    run_case(client, any_store, case)


def doc_rows() -> list[tuple[str, ...]]:
    """The rows of the docs table "What each request emits", as written."""
    text = DOC.read_text(encoding="utf-8")
    assert DOC_SECTION in text, f"{DOC} has no section {DOC_SECTION!r}"
    section = text.split(DOC_SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    cells = [tuple(cell.strip() for cell in row.strip("|").split("|")) for row in rows]
    return [row for row in cells[2:]]  # after the header and its rule


def test_docs_mirror_the_table() -> None:
    """docs/events.md lists every case of the table, in order, with the same given state,
    request, status and events."""
    expected = [case.row for case in CASES]
    for row in expected:
        assert not any("|" in cell for cell in row), row
    assert doc_rows() == expected


# -- positions, cursors, tenants ----------------------------------------------------------


def feed_of(store: Store, tenant: str) -> list[Event]:
    return store.tenant(tenant).events(after=0, limit=1000)


def test_tenants_have_separate_gapless_feeds(any_store: Store,
                                             tenant_vault: FakeKeyVault) -> None:
    """Interleaved writes on two tenants' URLs give each tenant its own feed 1..n in the
    order of its own writes, with ids unique across both and no event of the other."""
    tenants = ("events-one", "events-two")
    clients = {t: FunctionClient(t, register_tenant(any_store, tenant_vault, t))
               for t in tenants}
    use_api(tenant_api(any_store, tenant_vault))
    one, two = clients[tenants[0]], clients[tenants[1]]
    owned: dict[str, set[str]] = {t: set() for t in tenants}
    alice = one.create_user("alice@contoso.example")["id"]
    owned[tenants[0]].add(alice)
    bob = two.create_user("bob@contoso.example")["id"]
    owned[tenants[1]].add(bob)
    team = one.create_group("Team", members=[{"value": alice}])["id"]
    owned[tenants[0]].add(team)
    assert two.patch_ops(f"/Users/{bob}", {"op": "replace", "value": {"active": False}}
                         ).status == 200
    assert one.patch_ops(f"/Users/{alice}", {"op": "Replace", "path": "title",
                                             "value": "Planner"}).status == 200
    assert two.delete(f"/Users/{bob}").status == 204
    assert one.delete(f"/Groups/{team}").status == 204
    types = {t: [str(e.type) for e in feed_of(any_store, t)] for t in tenants}
    assert types == {
        tenants[0]: ["user.created", "group.created", "group.members_added", "user.updated",
                     "group.deleted"],
        tenants[1]: ["user.created", "user.deactivated", "user.deleted"],
    }
    ids: list[str] = []
    for tenant in tenants:
        events = feed_of(any_store, tenant)
        assert [e.position for e in events] == list(range(1, len(events) + 1))
        assert any_store.tenant(tenant).position() == len(events)
        assert {e.tenant for e in events} == {tenant}
        assert {e.resource_id for e in events} <= owned[tenant]
        ids += [e.id for e in events]
    assert len(ids) == len(set(ids)) == 8
    assert feed_of(any_store, TENANT) == [] and any_store.tenant(TENANT).position() == 0


def test_a_cursor_resumes_exactly_after_what_it_read(client: FunctionClient,
                                                     any_store: Store) -> None:
    """Reading from any cursor, with any limit, gives the events after it in order: paging
    through the feed with a small limit reads every event once."""
    alice = client.create_user("alice@contoso.example")["id"]
    bob = client.create_user("bob@contoso.example")["id"]
    team = client.create_group("Team", members=[{"value": alice}, {"value": bob}])["id"]
    client.patch_ops(f"/Groups/{team}", {"op": "remove", "path": f'members[value eq "{bob}"]'})
    client.patch_ops(f"/Users/{alice}", {"op": "replace", "value": {"active": "False"}})
    client.delete(f"/Users/{alice}")
    feed = any_store.tenant(TENANT)
    everything = feed.events(after=0, limit=1000)
    assert len(everything) == feed.position() == 8
    for cursor in range(len(everything) + 1):
        assert feed.events(after=cursor, limit=1000) == everything[cursor:]
        assert feed.events(after=cursor, limit=3) == everything[cursor:cursor + 3]
    paged: list[Event] = []
    cursor = 0
    while page := feed.events(after=cursor, limit=2):
        paged += page
        cursor = page[-1].position
    assert paged == everything and len({e.id for e in paged}) == 8


# -- the late commit on Table Storage -----------------------------------------------------


class HeldClient(TableClient):
    """The real table client; it records every transaction it sends (RowKeys, and the
    index and status of a failure) and can run ``hold`` once just before sending the next
    one, after its caller has built it."""

    hold: Callable[[], object] | None
    sent: list[list[str]]
    failed: list[tuple[int, int | None]]

    def submit_transaction(self, operations: Iterable[Any],
                           **kwargs: Any) -> list[Mapping[str, Any]]:
        listed = list(operations)
        self.sent.append([str(op[1]["RowKey"]) for op in listed])
        hook, self.hold = self.hold, None
        if hook is not None:
            hook()
        try:
            result: list[Mapping[str, Any]] = super().submit_transaction(listed, **kwargs)
        except TableTransactionError as error:
            self.failed.append((error.index, error.status_code))
            raise
        return result


def held_store(harness: TableHarness) -> tuple[TableStore, HeldClient]:
    """A second "process" on the harness's table: its own TableStore (own cached heads) on
    a HeldClient."""
    client = HeldClient.from_connection_string(
        harness.azurite.connection_string, table_name=harness.client.table_name,
        **FAST_CLIENT_OPTIONS)
    assert isinstance(client, HeldClient)
    client.hold, client.sent, client.failed = None, [], []
    store = TableStore(client)
    harness.extra.append(store)
    return store, client


def create_user(api: ScimApi, user_name: str) -> str:
    """POST /Users through the service of ``api`` (the events are the service's drafts)."""
    service: ResourceService = api.service(TENANT)
    users = service.registry.by_endpoint("users")
    assert users is not None
    created = service.create(users, {"schemas": [USER_SCHEMA], "userName": user_name},
                             base_url=BASE, projection=Projection())
    assert created.resource is not None
    return str(created.resource["id"])


def user_created_at(store: Store, position: int) -> str:
    (event,) = store.tenant(TENANT).events(after=position - 1, limit=1)
    assert event.position == position and event.type is EventType.USER_CREATED
    return event.resource_id


def test_a_stale_cached_head_is_retried_inside_the_store(table_harness: TableHarness) -> None:
    """Two warm stores on one table: after A moves the feed, B's write from its stale
    cached head is refused on the feed row (412), resubmitted by the store unseen, and
    lands at A's position + 1, where a reader resuming after A finds it."""
    store_a = table_harness.store
    store_b, client_b = held_store(table_harness)
    api_a, api_b = make_api(store_a), make_api(store_b)
    create_user(api_a, "warm-a@contoso.example")
    assert store_b.tenant(TENANT).position() == 1  # B's head is cached at 1 now
    first_a = create_user(api_a, "first@contoso.example")
    reader = table_harness.another_store().tenant(TENANT)
    (seen,) = reader.events(after=1, limit=10)
    cursor = seen.position
    assert (cursor, seen.resource_id) == (2, first_a)
    client_b.sent.clear()
    late_b = create_user(api_b, "late@contoso.example")
    assert client_b.failed == [(client_b.sent[0].index(FEED_ROW), 412)]
    assert event_key(2) in client_b.sent[0] and event_key(3) in client_b.sent[1]
    assert [(e.position, e.resource_id) for e in reader.events(after=cursor, limit=10)
            ] == [(3, late_b)]
    assert store_b.tenant(TENANT).get(Kind.USER, late_b) is not None


def test_a_transaction_built_first_but_committed_later_gets_the_later_position(
        table_harness: TableHarness) -> None:
    """B builds its transaction (positions from its head) before A writes; A commits, a
    reader reads up to A, then B's transaction goes out: B is placed after A, and the
    reader's cursor, taken before B committed, finds it."""
    store_a = table_harness.store
    store_b, client_b = held_store(table_harness)
    api_a, api_b = make_api(store_a), make_api(store_b)
    create_user(api_a, "warm-a@contoso.example")
    create_user(api_b, "warm-b@contoso.example")
    create_user(api_a, "warm-a2@contoso.example")  # both caches warm, B's now behind
    assert store_b.tenant(TENANT).position() == 3  # B reads it: both current
    reader = table_harness.another_store().tenant(TENANT)
    observed: dict[str, Any] = {}

    def a_commits_and_reader_reads() -> None:
        observed["a"] = create_user(api_a, "early@contoso.example")
        observed["read"] = reader.events(after=3, limit=10)

    client_b.sent.clear()
    client_b.hold = a_commits_and_reader_reads
    late_b = create_user(api_b, "late@contoso.example")
    built_first = client_b.sent[0]
    assert event_key(4) in built_first  # B's first build took position 4 ...
    assert [(e.position, e.resource_id) for e in observed["read"]] == [(4, observed["a"])]
    cursor = observed["read"][-1].position  # ... but A committed at 4 first
    assert client_b.failed == [(built_first.index(FEED_ROW), 412)]
    assert event_key(5) in client_b.sent[1] and len(client_b.sent) == 2
    assert [(e.position, e.resource_id) for e in reader.events(after=cursor, limit=10)
            ] == [(5, late_b)]
    assert user_created_at(store_a, 5) == late_b
    assert reader.position() == 5


WRITERS = 8
WRITES = 25


def concurrent_writes(stores: Sequence[Store], follower: Store) -> None:
    """8 threads x 25 creates on one tenant, writer i through ``stores[i % len(stores)]``,
    while a reader on ``follower`` follows the feed with its cursor; then the checks."""
    apis = [make_api(store) for store in stores]
    feed = follower.tenant(TENANT)
    written: list[list[str]] = [[] for _ in range(WRITERS)]
    failures: list[BaseException] = []
    done = threading.Event()
    followed: list[Event] = []

    def write(writer: int) -> None:
        try:
            for n in range(WRITES):
                written[writer].append(create_user(apis[writer % len(apis)],
                                                   f"w{writer}-{n}@contoso.example"))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def follow() -> None:
        cursor = 0
        try:
            while len(followed) < WRITERS * WRITES and not failures:
                page = feed.events(after=cursor, limit=50)
                if not page:
                    if done.is_set() and feed.position() == cursor:
                        return
                    time.sleep(0.005)
                    continue
                assert page[0].position == cursor + 1
                followed.extend(page)
                cursor = page[-1].position
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    reader = threading.Thread(target=follow)
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    done.set()
    reader.join(timeout=60)
    assert not failures, failures[0]
    total = WRITERS * WRITES
    events = feed_of(stores[0], TENANT)
    assert [e.position for e in events] == list(range(1, total + 1))
    assert all(store.tenant(TENANT).position() == total for store in stores)
    position_of = {e.resource_id: e.position for e in events}
    assert len(position_of) == total
    assert sorted(position_of) == sorted(i for ids in written for i in ids)
    for ids in written:
        positions = [position_of[i] for i in ids]
        assert positions == sorted(positions), "a writer's events out of its own order"
    assert [(e.position, e.resource_id) for e in followed] == [
        (e.position, e.resource_id) for e in events]


def test_concurrent_writers_on_two_table_stores_get_positions_1_to_n(
        table_harness: TableHarness) -> None:
    """8 threads x 25 creates on one tenant through two TableStores, while a reader follows
    the feed: positions are exactly 1..200, every write's event is there once, in each
    writer's own order, and the reader's cursor saw every one of them."""
    concurrent_writes([table_harness.store, table_harness.another_store()],
                      table_harness.another_store())


def test_writers_of_one_process_take_turns_for_the_feed_row(
        table_harness: TableHarness) -> None:
    """8 threads x 25 creates on one tenant through ONE TableStore never lose the feed row
    to each other: every create is sent exactly once (none resubmitted; creates queued
    together share a transaction and its one feed row), and the positions are 1..200 (the
    same checks as with two stores)."""
    sizes = table_harness.client.batch_sizes
    sizes.clear()
    concurrent_writes([table_harness.store], table_harness.store)
    per_create = 3  # the document, its userName index row, its event
    assert sum(size - 1 for size in sizes) == per_create * WRITERS * WRITES


def test_concurrent_writers_on_the_memory_store_get_positions_1_to_n() -> None:
    """The same 8 x 25 concurrent creates on one MemoryStore: positions 1..200, each write's
    event once, in each writer's order, all seen by a following reader."""
    store = MemoryStore()
    concurrent_writes([store], store)


# -- changes beyond one Table Storage transaction -------------------------------------------

BIG = 40
"""More members than one Table Storage transaction adds (31), so the store splits it."""


def test_a_member_change_beyond_one_transaction_names_each_member_once(
        client: FunctionClient, any_store: Store) -> None:
    """Adding 40 members in one PATCH, then removing them, emits membership events at
    consecutive positions that together name each member exactly once, each carrying the
    group's version after the request (memory: one event each way; tables: one per
    transaction)."""
    users = [client.create_user(f"u{i}@contoso.example")["id"] for i in range(BIG)]
    team = client.create_group("Team")["id"]
    feed = any_store.tenant(TENANT)
    for op, kind in (("Add", EventType.GROUP_MEMBERS_ADDED),
                     ("Remove", EventType.GROUP_MEMBERS_REMOVED)):
        start = feed.position()
        result = client.patch_ops(f"/Groups/{team}", {
            "op": op, "path": "members", "value": [{"value": u} for u in users]})
        assert result.status == 204, result.body
        events = feed.events(after=start, limit=100)
        assert {e.type for e in events} == {kind}
        assert {e.resource_id for e in events} == {team}
        assert {e.version for e in events} == {result.header("ETag")}
        named_ = [m for e in events for m in e.members]
        assert sorted(named_) == sorted(users)
        assert [e.position for e in events] == list(range(start + 1, feed.position() + 1))
        if isinstance(any_store, TableStore) and kind is EventType.GROUP_MEMBERS_ADDED:
            assert len(events) > 1  # the change did span transactions


def test_deleting_a_big_group_names_no_one_twice_and_ends_with_its_deletion(
        client: FunctionClient, any_store: Store) -> None:
    """DELETE of a group of 120 members ends with one group.deleted (the group as it
    was); any membership events before it (Table Storage's earlier transactions) name
    only its members, each once."""
    users = [client.create_user(f"u{i}@contoso.example")["id"] for i in range(120)]
    team = client.create_group("Team")["id"]
    for at in range(0, len(users), 30):
        client.patch_ops(f"/Groups/{team}", {"op": "Add", "path": "members", "value": [
            {"value": u} for u in users[at:at + 30]]})
    was = client.get(f"/Groups/{team}").json
    start = any_store.tenant(TENANT).position()
    assert client.delete(f"/Groups/{team}").status == 204
    *removals, last = any_store.tenant(TENANT).events(after=start, limit=100)
    assert (last.type, last.resource_id, last.version) == (
        EventType.GROUP_DELETED, team, was["meta"]["version"])
    assert last.resource == {k: v for k, v in was.items() if k != "members"}
    assert {e.type for e in removals} <= {EventType.GROUP_MEMBERS_REMOVED}
    named_ = [m for e in removals for m in e.members]
    assert len(named_) == len(set(named_)) and set(named_) <= set(users)


def test_deleting_a_user_in_many_groups_names_each_group_once(
        client: FunctionClient, any_store: Store) -> None:
    """DELETE of a user in 60 groups emits one user.deleted and, for each group, one
    group.members_removed naming only the user, with the group's new version and time
    (on Table Storage the groups beyond its last transaction's come before user.deleted)."""
    alice = client.create_user("alice@contoso.example")["id"]
    groups = [client.create_group(f"G{i}", members=[{"value": alice}])["id"]
              for i in range(60)]
    start = any_store.tenant(TENANT).position()
    assert client.delete(f"/Users/{alice}").status == 204
    events = any_store.tenant(TENANT).events(after=start, limit=100)
    assert [e.resource_id for e in events if e.type is EventType.USER_DELETED] == [alice]
    removals = {e.resource_id: e for e in events if e.type in MEMBERSHIP}
    assert len(events) == 61 and sorted(removals) == sorted(groups)
    # Table Storage's earlier transactions (groups beyond the last one) commit first
    first = events[0].type
    assert first is (EventType.GROUP_MEMBERS_REMOVED if isinstance(any_store, TableStore)
                     else EventType.USER_DELETED)
    for group_id, event in removals.items():
        assert (event.type, event.members) == (EventType.GROUP_MEMBERS_REMOVED, (alice,))
        meta = client.get(f"/Groups/{group_id}").json["meta"]
        assert (event.version, event.time) == (meta["version"], meta["lastModified"])


def test_a_resource_too_large_for_its_event_row_is_left_out_of_the_event(
        table_store: TableStore) -> None:
    """A user whose document all but fills Table Storage's 1 MiB entity limit is stored (201)
    and its user.created event names it without the resource, instead of the write failing."""
    use_api(make_api(table_store))
    client = FunctionClient()

    def created(length: int) -> dict[str, Any] | None:
        # every string attribute is limited to 65,536 characters: spread the length
        pieces = ["x" * (length // 10 + (1 if n < length % 10 else 0)) for n in range(10)]
        name = dict(zip(("formatted", "familyName", "givenName", "middleName",
                         "honorificPrefix", "honorificSuffix"), pieces[:6], strict=True))
        body = {**user_body(f"big{length}", title=pieces[6], nickName=pieces[7],
                            displayName=pieces[8], userType=pieces[9]), "name": name}
        result = client.post("/Users", body)
        assert result.status in (201, 413), result.body[:300]
        return dict(result.json) if result.status == 201 else None

    low, high = 400_000, 600_000  # stored: fits / does not fit
    assert created(low) is not None and created(high) is None
    largest: dict[str, Any] = {}
    while high - low > 1:
        middle = (low + high) // 2
        found = created(middle)
        if found is None:
            high = middle
        else:
            low, largest = middle, found
    event = feed_of(table_store, "default")[-1]
    assert event.type == "user.created" and event.resource_id == largest["id"]
    assert event.resource is None and event.version == largest["meta"]["version"]
