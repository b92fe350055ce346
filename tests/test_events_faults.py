"""The change feed under concurrency and faults (issue item 6): 8 Entra-like writers over 2
tenants, through a dev host with several worker processes, while Azurite is stopped and
restarted twice (gracefully, then killed hard) and a follower per tenant reads the feed.
Afterwards each tenant's feed, folded from position 1, reproduces exactly the users, groups
and memberships in the table, its positions run 1..n without a gap, and each follower saw
every position once.

A SIGKILL makes Azurite roll back to its last save (about every 5 s), losing writes it had
acknowledged, which Azure Table Storage never does. A change and its events roll back
together, so the final table and the final feed still agree; but a follower may have read
events that then vanished, and their positions are reused. So the hard kill comes right
after a marker write per tenant is saved, and the follower's events must equal the final
feed's except, for reads made before the kill, after the marker.

Below: a check that the fold notices what it must, and two writes that renew a resource's
version without an event (expected to fail until that is fixed; the main test compares
those versions loosely for that reason).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from bench.azurite import AZURITE_TABLE
from scim_core import Settings
from scim_core.app import build_admin
from scim_core.events import Event
from scim_core.store import MemoryStore, Store
from scim_core.store.tables import TableStore
from scim_core.store.tables.sdk_batches import install_batch_codec
from scim_reader import CursorExpired, DirectoryReader, ReaderError
from scim_reader import Event as ReaderEvent
from tests.azurite import FAST_CLIENT_OPTIONS, Azurite, free_port, unique_table_name
from tests.conftest import make_api
from tests.feed_fold import differences, directory_of, fold
from tests.reliability import check_store_invariants, check_table_rows, count, write_figures
from tests.support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_OP,
    TOKEN,
    USER_SCHEMA,
    FunctionClient,
    HttpClient,
    use_api,
)

SUITE = "events_faults"
ROOT = Path(__file__).resolve().parent.parent
TENANT_TWO = "tenant-two"
TENANTS = ("default", TENANT_TWO)
WRITERS_PER_TENANT = 4
WORKER_PROCESSES = 4
PHASE_WRITES = int(os.environ.get("SCIM_EVENTS_FAULTS_PHASE_WRITES", "300"))
"""Writes answered in each phase: before the graceful restart, between it and the hard kill,
and after it."""
PHASE_TIMEOUT = 60.0
OUTAGE_SECONDS = 2.0
USERS_PER_WRITER = 16
GROUPS_PER_WRITER = 3
SEED = int(os.environ.get("SCIM_EVENTS_FAULTS_SEED") or time.time())
BUSY_RETRIES = 10
RETRY_GRACE_SECONDS = 30.0
"""How long a writer keeps retrying its last request once the run is over."""
DATABASE = "__azurite_db_table__.json"

pytestmark = pytest.mark.timeout(240)


class KillableAzurite(Azurite):
    """Azurite that can also be killed hard (SIGKILL: it loses what it had not saved)."""

    def kill(self) -> None:
        process, self._process = self._process, None
        assert process is not None and process.poll() is None, "Azurite is not running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def wait_saved(self, needles: list[str], timeout: float = 20.0) -> None:
        """Wait until Azurite's data file holds every one of ``needles`` and is whole."""
        database = self.location / DATABASE
        deadline = time.monotonic() + timeout
        while True:
            text = database.read_text(errors="replace") if database.exists() else ""
            if all(needle in text for needle in needles):
                with contextlib.suppress(ValueError):
                    json.loads(text)
                    return
            assert time.monotonic() < deadline, f"Azurite did not save {needles}"
            time.sleep(0.05)


# -- the deployment: Azurite, the second tenant, the dev host ------------------------------


@dataclass
class Deployment:
    azurite: KillableAzurite
    table: str
    port: int
    tokens: dict[str, str]
    host: subprocess.Popen[bytes]

    def client(self, tenant: str) -> HttpClient:
        return HttpClient(self.port, None if tenant == "default" else tenant,
                          self.tokens[tenant])

    def base_url(self, tenant: str) -> str:
        root = "/scim/v2" if tenant == "default" else f"/tenants/{tenant}/scim/v2"
        return f"http://127.0.0.1:{self.port}{root}"

    def table_client(self) -> TableClient:
        return TableClient.from_connection_string(self.azurite.connection_string,
                                                  table_name=self.table, **FAST_CLIENT_OPTIONS)

    def stop_host(self) -> None:
        """SIGTERM, on which the host stops its workers; SIGKILL to its group if it hangs."""
        if self.host.poll() is None:
            self.host.terminate()
            try:
                self.host.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.host.pid, signal.SIGKILL)
                self.host.wait(timeout=10)


def _create_tenant(azurite: Azurite, table: str) -> str:
    """Register TENANT_TWO with TenantAdmin; its token goes to the table's local secrets,
    where the dev host reads it. Returns the token."""
    store = TableStore(TableClient.from_connection_string(azurite.connection_string,
                                                          table_name=table))
    settings = Settings(store="tables", tables_connection=azurite.connection_string,
                        table_name=table)
    try:
        with build_admin(settings, store=store) as admin:
            _, token = admin.create("Tenant Two", tenant_id=TENANT_TWO)
    finally:
        store.close()
    return token


def _start_host(azurite: Azurite, table: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SCIM_STORE": "tables", "SCIM_TABLES_CONNECTION":
           azurite.connection_string, "SCIM_TABLE_NAME": table, "SCIM_BEARER_TOKEN": TOKEN,
           "FUNCTIONS_WORKER_PROCESS_COUNT": str(WORKER_PROCESSES)}
    for name in ("SCIM_TABLES_ENDPOINT", "SCIM_KEYVAULT_URL", "SCIM_EVENTS_QUEUE",
                 "SCIM_QUEUES_ENDPOINT", "SCIM_BASE_URL", "SCIM_EXTENSION_SCHEMAS"):
        env[name] = ""  # whatever a developer's local.settings.json says
    with log.open("wb") as output:
        return subprocess.Popen([sys.executable, "-m", "devhost", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_served(deployment: Deployment, log: Path) -> None:
    deadline = time.monotonic() + 30
    while f"({WORKER_PROCESSES} worker processes)" not in log.read_text(errors="replace"):
        assert deployment.host.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "the dev host did not start"
        time.sleep(0.05)
    for tenant in TENANTS:
        client = deployment.client(tenant)
        while True:
            try:
                if client.get("/Users", params={"count": "1"}).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the dev host does not serve {tenant}"
            time.sleep(0.1)
        client.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Azurite on its own data directory, TENANT_TWO registered next to the default tenant,
    and a dev host with WORKER_PROCESSES worker processes serving both over that table."""
    if not AZURITE_TABLE.exists():
        pytest.skip(f"Azurite is not installed ({AZURITE_TABLE} is missing): run `npm ci`")
    location = tmp_path / "azurite"
    location.mkdir()
    azurite = KillableAzurite(location, free_port())
    azurite.start()
    install_batch_codec()
    try:
        table = unique_table_name()
        tokens = {"default": TOKEN, TENANT_TWO: _create_tenant(azurite, table)}
        log = tmp_path / "devhost.log"
        port = free_port()
        served = Deployment(azurite, table, port, tokens, _start_host(azurite, table, port, log))
        try:
            _wait_served(served, log)
            yield served
        finally:
            served.stop_host()
    finally:
        if not azurite.running:
            azurite.start()
        azurite.stop()


# -- writers ---------------------------------------------------------------------------------


@dataclass
class Ledger:
    """The ids one tenant's writers know of, for member edits across writers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)

    def pick_users(self, rng: random.Random, k: int) -> list[str]:
        with self.lock:
            ids = sorted(self.users)
        return rng.sample(ids, min(k, len(ids)))

    def pick_group(self, rng: random.Random) -> str | None:
        with self.lock:
            ids = sorted(self.groups)
        return rng.choice(ids) if ids else None


@dataclass
class Answer:
    status: int
    body: Any


class Writer:
    """One Entra provisioning job in one tenant: match and create users, update them with
    Entra's PATCH shapes (path-less ``active`` strings too), PUT, delete; create groups,
    add and remove members (both removal shapes), rename, PUT and delete groups. A 503, a
    409 from a busy resource or a dropped connection is retried, as Entra retries; a
    retried create that answers 409 is resolved by looking the name up."""

    def __init__(self, index: int, tenant: str, deployment: Deployment, ledger: Ledger,
                 stop: threading.Event) -> None:
        self.index = index
        self.tenant = tenant
        self.deployment = deployment
        self.client = deployment.client(tenant)
        self.ledger = ledger
        self.rng = random.Random(SEED * 100 + index)
        self.stop = stop
        self.give_up_at: float | None = None
        self.counts: Counter[str] = Counter()
        self.writes = 0
        self.failures: list[str] = []
        self.users: dict[str, str | None] = {
            f"w{index}.u{k}@{tenant}.example": None for k in range(USERS_PER_WRITER)}
        self.groups: dict[int, tuple[str, str | None]] = {
            k: (self.group_name(k, 0), None) for k in range(GROUPS_PER_WRITER)}
        self.inactive: set[str] = set()
        self.serial = 0
        self.retried_puts: set[str] = set()
        """Users that got a PUT more than once (a retry of one that landed changes nothing)."""

    def group_name(self, slot: int, serial: int) -> str:
        return f"{self.tenant} w{self.index} g{slot}" + (f" r{serial}" if serial else "")

    # -- requests ----------------------------------------------------------------------------

    def send(self, op: str, method: str, path: str, body: Any = None, *,
             ok: tuple[int, ...], params: dict[str, str] | None = None) -> Answer | None:
        """The request, retried until it gets an answer other than 503 (or a busy 409 of an
        update); None once the run is over and its retries gave up."""
        attempts = 0
        while True:
            attempts += 1
            try:
                result = self.client.request(method, path, body, params=params)
            except (OSError, http.client.HTTPException):
                self.counts["connection errors"] += 1
                self.client.close()
                self.client = self.deployment.client(self.tenant)
                result = None
            if result is not None and result.status == 503:
                self.counts["503"] += 1
                if not result.header("Retry-After").isdigit():
                    self.failures.append(f"{op}: 503 without Retry-After")
            elif (result is not None and result.status == 409 and method in ("PATCH", "PUT")
                  and attempts <= BUSY_RETRIES):
                self.counts["409 busy"] += 1  # "being changed concurrently; retry"
            elif result is not None:
                self.counts[f"{op} {result.status}"] += 1
                if attempts > 1:
                    self.counts[f"{op} answered after retries"] += 1
                if method != "GET":
                    self.writes += 1
                if result.status not in ok:
                    self.failures.append(f"{self.tenant} {op}: {method} {path} -> "
                                         f"{result.status} {result.body[:300]!r}")
                return Answer(result.status, result.json if result.body else None)
            if method == "PUT" and path.startswith("/Users/"):
                self.retried_puts.add(path.removeprefix("/Users/"))
            self.counts["retries"] += 1
            if self.stop.is_set():
                self.give_up_at = self.give_up_at or time.monotonic() + RETRY_GRACE_SECONDS
                if time.monotonic() > self.give_up_at:
                    self.counts["abandoned"] += 1
                    return None
            time.sleep(self.rng.uniform(0.05, 0.25))

    def find(self, endpoint: str, attr: str, value: str) -> str | None:
        params = {"filter": f'{attr} eq "{value}"'}
        if endpoint == "/Groups":
            params["excludedAttributes"] = "members"
        found = self.send("match", "GET", endpoint, ok=(200,), params=params)
        if found is None or found.status != 200 or not found.body["Resources"]:
            return None
        return str(found.body["Resources"][0]["id"])

    # -- the job -----------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop.is_set() and len(self.failures) < 10:
            self.step()
        self.client.close()

    def step(self) -> None:
        user_name = self.rng.choice(sorted(self.users))
        user_id = self.users[user_name]
        roll = self.rng.random()
        if user_id is None:
            self.create_user(user_name)
        elif roll < 0.14:
            self.patch_user(user_name, user_id)
        elif roll < 0.24:
            self.toggle_active(user_name, user_id)
        elif roll < 0.30:
            self.put_user(user_name, user_id)
        elif roll < 0.37:
            self.delete_user(user_name, user_id)
        elif roll < 0.57:
            self.add_members()
        elif roll < 0.70:
            self.remove_member()
        elif roll < 0.78:
            self.create_group()
        elif roll < 0.83:
            self.rename_group()
        elif roll < 0.87:
            self.put_group()
        elif roll < 0.90:
            self.delete_group()
        else:
            self.find("/Users", "userName", user_name)

    def forget_user(self, user_name: str, user_id: str) -> None:
        self.users[user_name] = None
        self.inactive.discard(user_name)
        with self.ledger.lock:
            self.ledger.users.discard(user_id)

    def user_body(self, user_name: str) -> dict[str, Any]:
        local = user_name.split("@")[0]
        self.serial += 1
        return {
            "schemas": [USER_SCHEMA, ENTERPRISE], "externalId": local, "userName": user_name,
            "active": True, "displayName": local.title(), "title": f"Title {self.serial}",
            "emails": [{"primary": True, "type": "work", "value": user_name}],
            "name": {"formatted": local, "givenName": local, "familyName": "Faults"},
            ENTERPRISE: {"employeeNumber": str(self.rng.randrange(10**6)),
                         "department": self.rng.choice(["Sales", "Ops", "R&D"])},
        }

    def create_user(self, user_name: str) -> None:
        found = self.find("/Users", "userName", user_name)
        if found is None:
            made = self.send("create user", "POST", "/Users", self.user_body(user_name),
                             ok=(201, 409))
            if made is None:
                return
            found = (str(made.body["id"]) if made.status == 201 else
                     self.find("/Users", "userName", user_name))
            if found is None:
                self.failures.append(f"{self.tenant}: {user_name} answered 409 but is not found")
                return
        self.users[user_name] = found
        with self.ledger.lock:
            self.ledger.users.add(found)

    def patch_user(self, user_name: str, user_id: str) -> None:
        self.serial += 1
        operations = self.rng.choice([
            [{"op": "Replace", "path": "displayName", "value": f"Name {self.serial}"}],
            [{"op": "Replace", "path": 'emails[type eq "work"].value',
              "value": f"alt{self.serial}.{user_name}"},
             {"op": "Replace", "path": "name.givenName", "value": f"Given {self.serial}"}],
            [{"op": "Add", "path": f"{ENTERPRISE}:manager",
              "value": (self.ledger.pick_users(self.rng, 1) or [user_id])[0]}],
            [{"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"D{self.serial}"},
             {"op": "Replace", "path": "title", "value": f"Title {self.serial}"}],
        ])
        done = self.send("patch user", "PATCH", f"/Users/{user_id}",
                         {"schemas": [PATCH_OP], "Operations": operations}, ok=(200, 404))
        if done is not None and done.status == 404:
            self.forget_user(user_name, user_id)

    def toggle_active(self, user_name: str, user_id: str) -> None:
        flip = self.rng.random() < 0.8  # else a repeat, which changes nothing
        active = (user_name in self.inactive) == flip
        value: dict[str, Any] = {"active": "True" if active else "False"}
        if self.rng.random() < 0.3:
            self.serial += 1
            value["displayName"] = f"Toggled {self.serial}"
        done = self.send("path-less active", "PATCH", f"/Users/{user_id}", {
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": value}]},
            ok=(200, 404))
        if done is not None and done.status == 404:
            self.forget_user(user_name, user_id)
        elif done is not None and active:
            self.inactive.discard(user_name)
        elif done is not None:
            self.inactive.add(user_name)

    def put_user(self, user_name: str, user_id: str) -> None:
        done = self.send("put user", "PUT", f"/Users/{user_id}", self.user_body(user_name),
                         ok=(200, 404))
        if done is not None and done.status == 404:
            self.forget_user(user_name, user_id)
        elif done is not None:
            self.inactive.discard(user_name)  # the body says active: true

    def delete_user(self, user_name: str, user_id: str) -> None:
        done = self.send("delete user", "DELETE", f"/Users/{user_id}", ok=(204, 404))
        if done is not None:
            self.forget_user(user_name, user_id)

    def create_group(self) -> None:
        free = [k for k, (_, group_id) in self.groups.items() if group_id is None]
        if not free:
            return
        slot = self.rng.choice(free)
        name = self.group_name(slot, 0)
        found = self.find("/Groups", "displayName", name)
        if found is None:
            members = [{"value": u} for u in self.ledger.pick_users(self.rng, 2)]
            made = self.send("create group", "POST", "/Groups", {
                "schemas": [GROUP_SCHEMA], "displayName": name, "externalId": name,
                "members": members}, ok=(201, 409))
            if made is None:
                return
            found = (str(made.body["id"]) if made.status == 201 else
                     self.find("/Groups", "displayName", name))
            if found is None:
                self.failures.append(f"{self.tenant}: {name} answered 409 but is not found")
                return
        self.groups[slot] = (name, found)
        with self.ledger.lock:
            self.ledger.groups.add(found)

    def forget_group(self, group_id: str) -> None:
        for slot, (_, known) in list(self.groups.items()):
            if known == group_id:
                self.groups[slot] = (self.group_name(slot, 0), None)
        with self.ledger.lock:
            self.ledger.groups.discard(group_id)

    def own_group(self) -> tuple[int, str] | None:
        held = [(k, group_id) for k, (_, group_id) in self.groups.items() if group_id]
        return self.rng.choice(held) if held else None

    def add_members(self) -> None:
        group_id = self.ledger.pick_group(self.rng)
        users = self.ledger.pick_users(self.rng, self.rng.randint(1, 3))
        if group_id is None or not users:
            return
        done = self.send("add members", "PATCH", f"/Groups/{group_id}", {
            "schemas": [PATCH_OP], "Operations": [{
                "op": "Add", "path": "members", "value": [{"value": u} for u in users]}]},
            ok=(204, 404))
        if done is not None and done.status == 404:
            self.forget_group(group_id)

    def remove_member(self) -> None:
        group_id = self.ledger.pick_group(self.rng)
        users = self.ledger.pick_users(self.rng, 1)
        if group_id is None or not users:
            return
        operation = self.rng.choice([
            {"op": "Remove", "path": "members", "value": [{"value": users[0]}]},
            {"op": "remove", "path": f'members[value eq "{users[0]}"]'},
        ])
        done = self.send("remove member", "PATCH", f"/Groups/{group_id}", {
            "schemas": [PATCH_OP], "Operations": [operation]}, ok=(204, 404))
        if done is not None and done.status == 404:
            self.forget_group(group_id)

    def rename_group(self) -> None:
        owned = self.own_group()
        if owned is None:
            return
        slot, group_id = owned
        self.serial += 1
        name = self.group_name(slot, self.serial)
        done = self.send("rename group", "PATCH", f"/Groups/{group_id}", {
            "schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "displayName", "value": name}]}, ok=(204, 404))
        if done is not None and done.status == 404:
            self.forget_group(group_id)
        elif done is not None:
            self.groups[slot] = (name, group_id)

    def put_group(self) -> None:
        owned = self.own_group()
        if owned is None:
            return
        slot, group_id = owned
        name = self.groups[slot][0]
        members = [{"value": u} for u in self.ledger.pick_users(self.rng, 3)]
        done = self.send("put group", "PUT", f"/Groups/{group_id}", {
            "schemas": [GROUP_SCHEMA], "displayName": name, "externalId": name,
            "members": members}, ok=(200, 404))
        if done is not None and done.status == 404:
            self.forget_group(group_id)

    def delete_group(self) -> None:
        owned = self.own_group()
        if owned is None:
            return
        done = self.send("delete group", "DELETE", f"/Groups/{owned[1]}", ok=(204, 404))
        if done is not None:
            self.forget_group(owned[1])


# -- followers -------------------------------------------------------------------------------


@dataclass
class Seen:
    event: ReaderEvent
    before_kill: bool
    """Read by a call that began before the hard kill had finished."""


class Follower:
    """Reads one tenant's feed with the reader library (``TenantReader.events``) from the
    first position for as long as the run lasts, recording every event. A failed read
    (storage away) is tried again; so is a cursor ahead of the feed, which only Azurite's
    rollback after a hard kill can cause."""

    def __init__(self, tenant: str, reader: DirectoryReader, killed: threading.Event) -> None:
        self.tenant = tenant
        self.view = reader.tenant(tenant)
        self.killed = killed
        self.seen: list[Seen] = []
        self.cursor = 0
        self.target: int | None = None
        self.failed_reads = 0
        self.ahead_of_feed = 0
        self.errors: list[BaseException] = []
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.halt.is_set() and (self.target is None or self.cursor < self.target):
                before_kill = not self.killed.is_set()
                try:
                    page = self.view.events(self.cursor, limit=200)
                except CursorExpired as expired:
                    assert expired.floor == 0, expired  # no retention runs here
                    self.ahead_of_feed += 1
                    time.sleep(0.05)
                    continue
                except ReaderError:
                    self.failed_reads += 1
                    time.sleep(0.1)
                    continue
                for event in page.events:
                    self.seen.append(Seen(event, before_kill))
                    self.cursor = event.position
                if not page.events:
                    time.sleep(0.05)
        except BaseException as exc:  # surfaced by the test; a thread must not die silently
            self.errors.append(exc)

    def wait_for(self, resource_id: str, timeout: float = 20.0) -> int:
        """The position of the first event the follower read about ``resource_id``."""
        deadline = time.monotonic() + timeout
        while True:
            for seen in list(self.seen):
                if seen.event.resource_id == resource_id:
                    return seen.event.position
            assert time.monotonic() < deadline, f"{self.tenant}: no event of {resource_id}"
            time.sleep(0.05)


def read_feed(store: TableStore, tenant: str) -> list[Event]:
    events: list[Event] = []
    while batch := store.tenant(tenant).events(after=len(events), limit=1000):
        events += batch
    return events


def _shape(event: Event | ReaderEvent) -> tuple[Any, ...]:
    return (event.id, event.type, event.time, event.resource_type, event.resource_id,
            event.version, event.attributes, event.members,
            json.dumps(event.resource, sort_keys=True))


# -- the run ---------------------------------------------------------------------------------


def _marker(deployment: Deployment, tenant: str, n: int) -> tuple[str, str]:
    """A user created in ``tenant`` (retried through 503s): its userName and id."""
    client = deployment.client(tenant)
    user_name = f"marker{n}@{tenant}.example"
    try:
        for _ in range(100):
            result = client.post("/Users", {"schemas": [USER_SCHEMA], "userName": user_name})
            if result.status == 201:
                return user_name, str(result.json["id"])
            assert result.status == 503, (result.status, result.body[:300])
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"{tenant}: the marker {user_name} was never created")


def _run_phase(writers: list[Writer]) -> None:
    """Until the writers have had PHASE_WRITES more writes answered."""
    target = sum(w.writes for w in writers) + PHASE_WRITES
    deadline = time.monotonic() + PHASE_TIMEOUT
    while (done := sum(w.writes for w in writers)) < target:
        assert time.monotonic() < deadline, f"only {done} writes of {target} in the run"
        assert not [f for w in writers for f in w.failures], [w.failures for w in writers]
        time.sleep(0.1)


def _drive(deployment: Deployment, writers: list[Writer],
           followers: dict[str, Follower], stop: threading.Event,
           killed: threading.Event) -> dict[str, int]:
    """Run the writers through a graceful restart and then a hard kill of Azurite, each
    phase PHASE_WRITES writes long; stop them and the dev host. Returns, per tenant, the
    position of the marker that was saved before the kill."""
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for thread in [*threads, *(f.thread for f in followers.values())]:
        thread.start()
    azurite = deployment.azurite
    try:
        _run_phase(writers)
        azurite.stop()  # SIGINT: Azurite saves everything and exits
        time.sleep(OUTAGE_SECONDS)
        azurite.start()
        _run_phase(writers)
        markers = {t: _marker(deployment, t, 1) for t in TENANTS}
        durable = {t: followers[t].wait_for(markers[t][1]) for t in TENANTS}
        azurite.wait_saved([name for name, _ in markers.values()])
        azurite.kill()
        killed.set()
        time.sleep(OUTAGE_SECONDS)
        azurite.start()
        _run_phase(writers)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=RETRY_GRACE_SECONDS + 30)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    deployment.stop_host()  # nothing can land after this
    return durable


@pytest.mark.slow
def test_feed_folds_into_the_table_after_writers_race_through_azurite_restarts(
        deployment: Deployment) -> None:
    """8 Entra-like writers (4 per tenant) through a 4-process dev host while Azurite is
    stopped (SIGINT) and later killed (SIGKILL) and restarted: each tenant's feed from
    position 1 is gapless with unique ids and folds into exactly the users, groups and
    memberships the table holds; each follower saw every position once, and what it read
    is the final feed, but for what the kill rolled back after a saved marker."""
    print(f"SCIM_EVENTS_FAULTS_SEED={SEED}")  # shown with a failure: run it again with it
    started = time.monotonic()
    stop, killed = threading.Event(), threading.Event()
    ledgers = {t: Ledger() for t in TENANTS}
    writers = [Writer(i, TENANTS[i % 2], deployment, ledgers[TENANTS[i % 2]], stop)
               for i in range(WRITERS_PER_TENANT * len(TENANTS))]
    store = TableStore(deployment.table_client())
    library = DirectoryReader.from_table_client(deployment.table_client())
    followers = {t: Follower(t, library, killed) for t in TENANTS}
    try:
        durable = _drive(deployment, writers, followers, stop, killed)
        finals = {t: store.tenant(t).position() for t in TENANTS}
        for tenant, follower in followers.items():
            follower.target = finals[tenant]
            follower.thread.join(timeout=60)
            assert not follower.thread.is_alive(), (tenant, follower.cursor, finals[tenant])
            assert not follower.errors, follower.errors
        figures: dict[str, Any] = {f"{SUITE}.seed": SEED,
                                   f"{SUITE}.run_seconds": round(time.monotonic() - started, 1)}
        retried_puts = {u for w in writers for u in w.retried_puts}
        for tenant in TENANTS:
            figures.update(_check_tenant(deployment, store, tenant, followers[tenant],
                                         durable[tenant]))
    finally:
        for follower in followers.values():
            follower.halt.set()
        store.close()
        library.close()

    counts: Counter[str] = sum((w.counts for w in writers), Counter())
    figures.update({
        f"{SUITE}.writes_answered": sum(w.writes for w in writers),
        f"{SUITE}.responses_503": counts["503"],
        f"{SUITE}.responses_409_busy": counts["409 busy"],
        f"{SUITE}.connection_errors": counts["connection errors"],
        f"{SUITE}.retries": counts["retries"],
        f"{SUITE}.abandoned": counts["abandoned"],
        f"{SUITE}.users_with_retried_put": len(retried_puts),
        f"{SUITE}.statuses": dict(sorted(counts.items())),
    })
    count(f"{SUITE}.requests", sum(counts.values()) - counts["retries"])
    write_figures(SUITE, figures)
    print(json.dumps(figures, indent=1))
    failures = [f for w in writers for f in w.failures]
    assert not failures, failures[:10]
    assert counts["503"] > 0 and counts["retries"] > 0, counts  # the outages were felt


def _check_tenant(deployment: Deployment, store: TableStore, tenant: str,
                  follower: Follower, durable: int) -> dict[str, Any]:
    """The checks of one tenant's feed, follower and table; returns its figures."""
    events = read_feed(store, tenant)
    positions = [e.position for e in events]
    assert positions == list(range(1, len(events) + 1)), (tenant, positions[-5:])
    assert positions[-1] == follower.target, (tenant, positions[-1], follower.target)
    assert [e.id for e in events] == [f"{tenant}:{p}" for p in positions]
    assert {e.tenant for e in events} == {tenant}

    read = [s.event.position for s in follower.seen]
    assert read == positions, (tenant, "the follower skipped or repeated a position")
    rolled_back = 0
    for seen in follower.seen:
        if _shape(seen.event) != _shape(events[seen.event.position - 1]):
            assert seen.before_kill and seen.event.position > durable, (
                tenant, seen.event, events[seen.event.position - 1])
            rolled_back += 1

    folded = fold(events)
    assert not folded.anomalies, (tenant, folded.anomalies[:10])
    stored, problems = directory_of(store, tenant, deployment.base_url(tenant))
    assert not problems, (tenant, problems[:10])
    found = differences(folded.directory, stored)
    assert not found, (tenant, len(found), found[:5])
    count(f"{SUITE}.invariant_checks",
          check_store_invariants(store, tenant) + check_table_rows(store.table, tenant))

    by_type = Counter(str(e.type) for e in events)
    for kind in ("user.created", "user.updated", "user.deactivated", "user.reactivated",
                 "user.deleted", "group.created", "group.updated", "group.deleted",
                 "group.members_added", "group.members_removed"):
        assert by_type[kind] > 0, (tenant, kind, by_type)
    return {
        f"{SUITE}.{tenant}.events": len(events),
        f"{SUITE}.{tenant}.events_by_type": dict(sorted(by_type.items())),
        f"{SUITE}.{tenant}.users": len(stored.users),
        f"{SUITE}.{tenant}.groups": len(stored.groups),
        f"{SUITE}.{tenant}.memberships": len(stored.memberships),
        f"{SUITE}.{tenant}.follower_failed_reads": follower.failed_reads,
        f"{SUITE}.{tenant}.follower_reads_rolled_back": rolled_back,
        f"{SUITE}.{tenant}.follower_ahead_of_feed": follower.ahead_of_feed,
        f"{SUITE}.{tenant}.durable_position_at_kill": durable,
        f"{SUITE}.{tenant}.removals_after_user_deleted": folded.absent_removals,
    }


# -- the fold itself ----------------------------------------------------------------------


def test_the_fold_tells_a_lost_a_repeated_or_a_changed_event() -> None:
    """Folding a feed gives exactly the store's directory, and dropping a membership or a
    deletion event, repeating a creation or changing an event's resource each shows as an
    anomaly or a difference."""
    store = MemoryStore()
    use_api(make_api(store))
    client = FunctionClient()
    alice = client.create_user("alice@contoso.example", active=True)["id"]
    bob = client.create_user("bob@contoso.example")["id"]
    carol = client.create_user("carol@contoso.example")["id"]
    team = client.create_group("Team", members=[{"value": alice}])["id"]
    client.patch_ops(f"/Groups/{team}", {"op": "Add", "path": "members",
                                         "value": [{"value": bob}]})
    client.patch_ops(f"/Users/{alice}", {"op": "replace", "value": {"active": "False"}})
    client.patch_ops(f"/Users/{bob}", {"op": "Replace", "path": "title", "value": "Lead"})
    assert client.delete(f"/Users/{carol}").status == 204
    events = store.tenant("default").events(after=0, limit=100)

    def found(feed: list[Event]) -> list[str]:
        folded = fold(feed)
        stored, problems = directory_of(store, "default", client.base)
        return folded.anomalies + problems + differences(
            folded.directory, stored)

    assert found(events) == []
    types = [str(e.type) for e in events]
    added = types.index("group.members_added", types.index("group.created") + 2)
    assert found(events[:added] + events[added + 1:])  # bob's membership is missing
    deleted = types.index("user.deleted")
    assert found(events[:deleted] + events[deleted + 1:])  # carol is extra
    assert found(events[:1] + events)  # alice created twice
    updated = types.index("user.updated")
    changed = dataclasses.replace(events[updated], resource={
        **(events[updated].resource or {}), "title": "Boss"})
    assert found([*events[:updated], changed, *events[updated + 1:]])


# -- writes that move a resource's version without an event ---------------------------------

def _feed_and_table_agree(store: Store) -> list[str]:
    events = store.tenant("default").events(after=0, limit=1000)
    folded = fold(events)
    stored, problems = directory_of(store, "default", FunctionClient().base)
    return (folded.anomalies + problems
            + differences(folded.directory, stored))


def test_a_put_that_changes_nothing_leaves_the_feed_current(any_store: Store) -> None:
    """A PUT of a user exactly as stored leaves the feed's last event of the user naming
    the user's stored version (folding the feed gives the table, meta included)."""
    use_api(make_api(any_store))
    client = FunctionClient()
    body = {"schemas": [USER_SCHEMA], "userName": "same@contoso.example", "active": True,
            "displayName": "Same"}
    user = client.post("/Users", body).json
    assert client.put(f"/Users/{user['id']}", body).status == 200
    assert _feed_and_table_agree(any_store) == []


def test_removing_a_non_member_leaves_the_feed_current(any_store: Store) -> None:
    """Entra's removal of a user who is not a member (a no-op, 204) leaves the feed's
    last event of the group naming the group's stored version."""
    use_api(make_api(any_store))
    client = FunctionClient()
    user = client.create_user("outsider@contoso.example")
    group = client.create_group("Insiders")
    removed = client.patch_ops(f"/Groups/{group['id']}", {
        "op": "Remove", "path": "members", "value": [{"value": user["id"]}]})
    assert removed.status == 204
    assert _feed_and_table_agree(any_store) == []
