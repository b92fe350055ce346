"""The reader library (scim_reader) on Azurite: it returns what the SCIM API returns."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableClient

from scim_core import Settings, build_api
from scim_core.auth import StaticTokenSource
from scim_core.schema import Registry
from scim_core.store import GROUP, USER, IndexKey, Member, MemberChange, Meta, Record
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.entities import document_entity
from scim_core.store.tables.tenants import REGISTRY_PARTITION
from scim_core.tenants import DEFAULT_TENANT, ENABLED, Tenant
from scim_reader import (
    DirectoryReader,
    Email,
    Group,
    InvalidCursor,
    TableNotFound,
    TenantReader,
    User,
    layout,
)
from scim_reader import Meta as ReaderMeta
from tests.azurite import ACCOUNT_KEY, ACCOUNT_NAME, FAST_CLIENT_OPTIONS, RequestLog, TableHarness
from tests.kvfake import FakeKeyVault
from tests.support import ENTERPRISE, TOKEN, FunctionClient, use_api
from tests.test_table_store import HOSTILE

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(300)

ACME_TOKEN = "acme-token-0123456789abcdefghijklmnopqrstuv"
REGISTERED = "2026-12-01T00:00:00Z"
META = Meta("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", 'W/"1"')


@dataclass
class Directory:
    """The SCIM API (default tenant and ``acme``) and a reader over the same table."""

    harness: TableHarness
    reader: DirectoryReader
    log: RequestLog
    api: FunctionClient
    acme_api: FunctionClient

    @property
    def store(self) -> TableStore:
        return self.harness.store


@pytest.fixture
def directory(table_harness: TableHarness) -> Iterator[Directory]:
    """A table on Azurite served by the SCIM API for ``default`` and a registered ``acme``
    (its token in the Key Vault fake), and a reader of it with its own request log."""
    store = table_harness.store
    with FakeKeyVault() as vault:
        vault.add_version("scim-token-acme", ACME_TOKEN)
        store.tenant_registry().create(Tenant("acme", "Acme", ENABLED, REGISTERED, REGISTERED))
        settings = Settings(store="memory", bearer_token=TOKEN, tenant_cache_seconds=0)
        use_api(build_api(settings, store=store, tokens=StaticTokenSource(TOKEN),
                          secrets=vault.client()))
        log = RequestLog()
        reader = DirectoryReader.from_connection_string(
            table_harness.azurite.connection_string, table=table_harness.client.table_name,
            raw_response_hook=log, **FAST_CLIENT_OPTIONS)
        with reader:
            yield Directory(table_harness, reader, log, FunctionClient(),
                            FunctionClient("acme", ACME_TOKEN))


def attributes_of(resource: dict[str, Any]) -> dict[str, Any]:
    """A SCIM resource's attributes: without schemas, id, meta and its relations."""
    return {k: v for k, v in resource.items()
            if k not in ("schemas", "id", "meta", "groups", "members")}


def meta_of(resource: dict[str, Any]) -> ReaderMeta:
    meta = resource["meta"]
    return ReaderMeta(meta["created"], meta["lastModified"], meta["version"])


def assert_user_is(user: User | None, resource: dict[str, Any]) -> None:
    """``user`` holds exactly what the API answered for it."""
    assert user is not None
    assert user.id == resource["id"]
    assert user.user_name == resource["userName"]
    assert user.active == resource.get("active")
    assert user.display_name == resource.get("displayName")
    assert user.external_id == resource.get("externalId")
    assert user.emails == tuple(Email(e.get("value"), e.get("type"), e.get("primary", False))
                                for e in resource.get("emails", []))
    assert user.attributes == attributes_of(resource)
    assert user.meta == meta_of(resource)


def assert_group_is(group: Group | None, resource: dict[str, Any]) -> None:
    """``group`` holds exactly what the API answered for it (members aside)."""
    assert group is not None
    assert group.id == resource["id"]
    assert group.display_name == resource["displayName"]
    assert group.external_id == resource.get("externalId")
    assert group.attributes == attributes_of(resource)
    assert group.meta == meta_of(resource)


def api_get(api: FunctionClient, path: str, **params: str) -> Any:
    result = api.get(path, params=params or None)
    assert result.status == 200, result.body[:300]
    return result.json


def members_of(api: FunctionClient, group_id: str) -> list[tuple[str, str | None]]:
    return [(m["value"], m.get("display"))
            for m in api_get(api, f"/Groups/{group_id}")["members"]]


def groups_of(api: FunctionClient, user_id: str) -> list[str]:
    return [g["value"] for g in api_get(api, f"/Users/{user_id}").get("groups", [])]


def populate(api: FunctionClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Users of every shape Entra sends and groups with members, through the API."""
    users = [
        api.create_user("Alice@Contoso.example", displayName="Alice", externalId="a-1",
                        active=True, emails=[{"value": "alice@contoso.example", "type": "work",
                                              "primary": True}],
                        name={"givenName": "Alice", "familyName": "Liddell"},
                        **{ENTERPRISE: {"department": "R&D", "employeeNumber": "7"}}),
        api.create_user("bob@contoso.example", active="False"),
        api.create_user("carol@contoso.example", emails=[
            {"value": "c@home.example", "type": "home"}, {"value": "c@contoso.example"}]),
        api.create_user("dave@contoso.example", active=True, externalId="d-4"),
    ]
    ids = [u["id"] for u in users]
    groups = [
        api.create_group("Engineering", externalId="eng",
                         members=[{"value": ids[0], "display": "Alice"}, {"value": ids[1]}]),
        api.create_group("Sales"),
    ]
    patched = api.patch_ops(f"/Groups/{groups[1]['id']}",
                            {"op": "add", "path": "members",
                             "value": [{"value": ids[0]}, {"value": ids[2]}]})
    assert patched.status in (200, 204), patched.body
    removed = api.patch_ops(f"/Groups/{groups[0]['id']}",
                            {"op": "remove", "path": f'members[value eq "{ids[1]}"]'})
    assert removed.status in (200, 204), removed.body
    return users, groups


def test_users_read_back_as_the_api_returns_them(directory: Directory) -> None:
    """get_user, get_user_by_name (in any case) and list_users return what GET returns."""
    users, _ = populate(directory.api)
    default = directory.reader.tenant("default")
    for created in users:
        resource = api_get(directory.api, f"/Users/{created['id']}")
        assert_user_is(default.get_user(created["id"]), resource)
        assert_user_is(default.get_user_by_name(created["userName"].upper()), resource)
    listed = list(default.list_users())
    resources = api_get(directory.api, "/Users")["Resources"]
    assert [u.id for u in listed] == [r["id"] for r in resources]
    for user, resource in zip(listed, resources, strict=True):
        assert_user_is(user, resource)
    alice = default.get_user_by_name("alice@contoso.example")
    assert alice is not None and alice.active is True and alice.primary_email == (
        "alice@contoso.example")
    bob = default.get_user_by_name("BOB@contoso.example")
    assert bob is not None and bob.active is False and bob.primary_email is None


def test_groups_read_back_as_the_api_returns_them(directory: Directory) -> None:
    """get_group, get_group_by_name and list_groups return what GET returns, members aside."""
    _, groups = populate(directory.api)
    default = directory.reader.tenant()
    for created in groups:
        resource = api_get(directory.api, f"/Groups/{created['id']}")
        assert_group_is(default.get_group(created["id"]), resource)
        assert_group_is(default.get_group_by_name(created["displayName"].lower()), resource)
    listed = list(default.list_groups())
    resources = api_get(directory.api, "/Groups", excludedAttributes="members")["Resources"]
    assert [g.id for g in listed] == [r["id"] for r in resources]
    for group, resource in zip(listed, resources, strict=True):
        assert_group_is(group, resource)


def test_members_and_user_groups_are_what_the_api_lists(directory: Directory) -> None:
    """list_members and list_user_groups give the API's members and groups, in its order,
    and agree with each other."""
    users, groups = populate(directory.api)
    default = directory.reader.tenant()
    pairs = set()
    for group in groups:
        members = [(m.user_id, m.display) for m in default.list_members(group["id"])]
        assert members == members_of(directory.api, group["id"])
        pairs |= {(group["id"], user_id) for user_id, _ in members}
    for user in users:
        listed = list(default.list_user_groups(user["id"]))
        assert sorted(listed) == sorted(groups_of(directory.api, user["id"]))
        assert {(g, user["id"]) for g in listed} <= pairs
        pairs -= {(g, user["id"]) for g in listed}
    assert pairs == set()


def test_unknown_ids_and_names_read_as_none_or_empty(directory: Directory) -> None:
    """What is not there is None (get) or empty (list), as the API's 404 and [] say."""
    default = directory.reader.tenant()
    populate(directory.api)
    assert default.get_user("nobody") is None
    assert default.get_group("nobody") is None
    assert default.get_user_by_name("nobody@contoso.example") is None
    assert default.get_group_by_name("Nobody") is None
    assert list(default.list_members("nobody")) == []
    assert list(default.list_user_groups("nobody")) == []
    assert directory.api.get("/Users/nobody").status == 404


def test_hostile_user_names_and_display_names_round_trip(directory: Directory) -> None:
    """Every hostile value the API accepts as a userName or displayName (quotes, key
    separators, percent signs, 1,000 characters that the key hashes) is found by it."""
    accepted = 0
    default = directory.reader.tenant()
    for value in HOSTILE:
        created = directory.api.post("/Users", {"userName": value})
        if created.status == 400:  # control characters, empty, lone surrogates
            continue
        assert created.status == 201, created.body[:200]
        accepted += 1
        resource = api_get(directory.api, f"/Users/{created.json['id']}")
        assert_user_is(default.get_user_by_name(value), resource)
        group = directory.api.post("/Groups", {"displayName": value})
        assert group.status == 201, group.body[:200]
        assert_group_is(default.get_group_by_name(value),
                        api_get(directory.api, f"/Groups/{group.json['id']}"))
    assert accepted >= len(HOSTILE) - 6


def test_hostile_ids_and_tenants_round_trip(directory: Directory) -> None:
    """Ids and tenants the endpoint never generates but the layout allows (written by the
    store, as the API's ids are UUIDs) read back through encoded and hashed key parts."""
    for tenant in ("default", "a/b:c'", "x" * 600):
        store = directory.store.tenant(tenant)
        for value in HOSTILE:
            store.create(Record(USER, value, {"userName": value}, META),
                         [IndexKey("userName", value.casefold(), True)])
        store.create(Record(GROUP, "g/" + tenant, {"displayName": tenant}, META),
                     [IndexKey("displayName", tenant.casefold(), True)])
        store.update(GROUP, "g/" + tenant, meta=META, expected_etag=None,
                     members=MemberChange(add=tuple(Member(v, v) for v in HOSTILE)))
        reader = directory.reader.tenant(tenant)
        for value in HOSTILE:
            user = reader.get_user(value)
            stored = store.get(USER, value)
            assert user is not None and stored is not None
            assert (user.id, user.user_name, user.attributes) == (value, value, stored.document)
            found = reader.get_user_by_name(value)
            assert found is not None and found.id == value
            assert list(reader.list_user_groups(value)) == ["g/" + tenant]
        group = reader.get_group("g/" + tenant)
        assert group is not None and group.display_name == tenant
        assert ({m.user_id: m.display for m in reader.list_members("g/" + tenant)}
                == {v: v for v in HOSTILE})
        assert {u.id for u in reader.list_users()} == set(HOSTILE)


def test_tenants_do_not_see_each_other(directory: Directory) -> None:
    """The same userName in default and acme: each tenant's reader sees only its own user,
    groups and members, and neither reads the other's by id."""
    mine = directory.api.create_user("same@x.example")
    theirs = directory.acme_api.create_user("same@x.example", displayName="Acme's")
    group = directory.acme_api.create_group("Acme team", members=[{"value": theirs["id"]}])
    default, acme = directory.reader.tenant("default"), directory.reader.tenant("acme")
    assert_user_is(default.get_user_by_name("same@x.example"),
                   api_get(directory.api, f"/Users/{mine['id']}"))
    assert_user_is(acme.get_user_by_name("same@x.example"),
                   api_get(directory.acme_api, f"/Users/{theirs['id']}"))
    assert default.get_user(theirs["id"]) is None and acme.get_user(mine["id"]) is None
    assert [u.id for u in default.list_users()] == [mine["id"]]
    assert [u.id for u in acme.list_users()] == [theirs["id"]]
    assert list(default.list_groups()) == [] and default.get_group(group["id"]) is None
    assert list(default.list_members(group["id"])) == []
    assert [m.user_id for m in acme.list_members(group["id"])] == [theirs["id"]]


def test_tenants_lists_the_registry_and_the_default_tenant(directory: Directory) -> None:
    """tenants() gives every registered tenant as the registry holds it, and ``default``
    (enabled) even when it is not registered; a registered default is read as stored."""
    registry = directory.store.tenant_registry()
    registry.create(Tenant("globex", "Globex", "disabled", REGISTERED, "2026-12-02T00:00:00Z"))
    listed = directory.reader.tenants()
    assert [(t.id, t.name, t.state, t.created, t.changed) for t in listed] == [
        ("acme", "Acme", "enabled", REGISTERED, REGISTERED),
        ("default", "Default", "enabled", "", ""),
        ("globex", "Globex", "disabled", REGISTERED, "2026-12-02T00:00:00Z")]
    assert [t.enabled for t in listed] == [True, True, False]
    registry.create(Tenant(DEFAULT_TENANT, "Main", "disabled", REGISTERED, REGISTERED))
    default = next(t for t in directory.reader.tenants() if t.id == "default")
    assert (default.name, default.state) == ("Main", "disabled")


def test_a_user_name_lookup_is_one_index_read_and_one_document_read(
        directory: Directory) -> None:
    """get_user_by_name reads the ux: row then the user: row (an unknown name: only the
    first), each a point read, and never queries a range."""
    user = directory.api.create_user("Erin@contoso.example")
    default = directory.reader.tenant()
    directory.log.clear()
    assert default.get_user_by_name("erin@CONTOSO.example") is not None
    assert directory.log.point_reads() == directory.log.count == 2
    (first, index), (second, document) = directory.log.entries
    assert first == second == "GET"
    assert "RowKey='ux:user:userName:erin@contoso.example'" in index
    assert f"RowKey='user:{user['id']}'" in document
    directory.log.clear()
    assert default.get_user_by_name("nobody@contoso.example") is None
    assert directory.log.point_reads() == directory.log.count == 1
    directory.log.clear()
    assert default.get_group_by_name("nobody") is None and directory.log.count == 1


def test_a_name_lookup_checks_the_document_still_holds_the_name(
        directory: Directory) -> None:
    """An index row whose document no longer holds that name (a rename landing between the
    two reads) finds nothing, as the API's exact filter would."""
    user = directory.api.create_user("henry@contoso.example")
    group = directory.api.create_group("Ops")
    table = directory.harness.client
    table.upsert_entity({"PartitionKey": "default", "RowKey": "ux:user:userName:old@x.example",
                         "id": user["id"], "name": "userName", "value": "old@x.example"})
    table.upsert_entity({"PartitionKey": "default", "RowKey": "ux:group:displayName:old",
                         "id": group["id"], "name": "displayName", "value": "old"})
    default = directory.reader.tenant()
    assert default.get_user_by_name("old@x.example") is None
    assert default.get_group_by_name("Old") is None
    assert api_get(directory.api, "/Users", filter='userName eq "old@x.example"')[
        "Resources"] == []


def test_a_document_split_across_chunks_reads_back_whole(directory: Directory) -> None:
    """A user whose document is several 32,000-unit chunks (non-ASCII and astral text
    included) reads back exactly as GET returns it."""
    created = directory.api.create_user("big@contoso.example", nickName="é漢😀" * 20_000,
                                        title="x" * 60_000)
    raw = directory.harness.client.get_entity(
        "default", keys.document_key(USER, created["id"]))
    assert raw["docChunks"] >= 4
    default = directory.reader.tenant()
    resource = api_get(directory.api, f"/Users/{created['id']}")
    assert_user_is(default.get_user(created["id"]), resource)
    assert_user_is(next(iter(default.list_users())), resource)


def test_listings_page_and_resume_from_a_cursor(directory: Directory) -> None:
    """per_page=3 over 7 users gives pages of 3, 3 and 1; each page's cursor resumes right
    after it, the last page's is None, and a foreign or forged cursor is refused."""
    for n in range(7):
        directory.api.create_user(f"user{n}@contoso.example")
    default = directory.reader.tenant()
    pages = list(default.list_users(per_page=3).pages())
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert pages[-1].cursor is None and all(p.cursor for p in pages[:-1])
    everyone = [u.id for p in pages for u in p.items]
    assert everyone == [u.id for u in default.list_users()] == sorted(everyone)
    cursor = pages[0].cursor
    assert [u.id for u in default.list_users(after=cursor)] == everyone[3:]
    group = directory.api.create_group("Team")
    for bad in ("not base64 !", "dXNlcjo", cursor):  # dXNlcjo: "user:", not a group key
        with pytest.raises(InvalidCursor):
            default.list_groups(after=bad)
    assert [g.id for g in default.list_groups()] == [group["id"]]
    with pytest.raises(ValueError):
        default.list_users(per_page=1001)


def test_an_endpoint_and_a_credential_passed_in_read_the_same(directory: Directory) -> None:
    """DirectoryReader(endpoint, credential) reads what the connection-string reader reads
    (here with the account key credential; a TokenCredential is passed the same way)."""
    created = directory.api.create_user("frank@contoso.example")
    endpoint = f"http://127.0.0.1:{directory.harness.azurite.port}/{ACCOUNT_NAME}"
    with DirectoryReader(endpoint, AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY),
                         table=directory.reader.table, **FAST_CLIENT_OPTIONS) as reader:
        user = reader.tenant().get_user(created["id"])
        assert user == directory.reader.tenant().get_user(created["id"])
        assert isinstance(reader.tenant("acme"), TenantReader)


def test_a_missing_table_raises_table_not_found(directory: Directory) -> None:
    """A table that does not exist is an error naming it, not an empty directory."""
    reader = DirectoryReader.from_connection_string(
        directory.harness.azurite.connection_string, table="nosuchtable1",
        **FAST_CLIENT_OPTIONS)
    with reader:
        for read in (lambda: reader.tenant().get_user("x"), lambda: list(reader.tenant()
                                                                         .list_users()),
                     reader.tenants):
            with pytest.raises(TableNotFound, match="nosuchtable1"):
                read()


def test_the_store_keys_its_rows_with_the_readers_layout() -> None:
    """The store's key functions are scim_reader.layout's own (one home, no copy), its
    kinds map onto the layout's prefixes, and the constants it restates agree."""
    for shared in ("encode_component", "partition_key", "members_range", "member_of_range",
                   "member_key", "member_of_key", "prefix_range", "digest", "utf16_units"):
        assert getattr(keys, shared) is getattr(layout, shared), shared
    for value in [*HOSTILE, "default", "a" * 151]:
        for kind, reader_kind in ((USER, layout.USER), (GROUP, layout.GROUP)):
            assert keys.document_key(kind, value) == layout.document_key(reader_kind, value)
            assert keys.unique_index_key(kind, "userName", value) == (
                layout.unique_index_key(reader_kind, "userName", value))
    assert keys.documents_range(USER) == layout.documents_range(layout.USER)
    assert (layout.DEFAULT_TENANT, layout.REGISTRY_PARTITION) == (DEFAULT_TENANT,
                                                                  REGISTRY_PARTITION)
    registry = Registry.default()
    specs = {(rt.kind, spec.name): spec for rt in registry.resource_types
             for spec in registry.indexes(rt)}
    for kind, name in ((USER, layout.USER_NAME_INDEX), (GROUP, layout.DISPLAY_NAME_INDEX)):
        spec = specs[(kind, name)]
        assert spec.unique and spec.normalised("ÄßΣ x") == layout.folded("ÄßΣ x")
    document = {"nickName": "é漢😀" * 20_000, "odd": "\ud800"}
    entity = document_entity("p", "user:u", kind=USER, resource_id="u", document=document,
                             meta=META, index_rows=[])
    assert entity["docChunks"] > 1 and layout.document_of(entity) == document


def test_importing_scim_reader_loads_neither_azure_functions_nor_scim_core() -> None:
    """In a fresh interpreter, importing scim_reader loads no azure.functions and no module
    of the SCIM service."""
    probe = ("import sys, scim_reader; "
             "bad = [m for m in sys.modules if m == 'azure.functions' "
             "or m.startswith(('azure.functions.', 'scim_core'))]; "
             "assert not bad, bad; print('ok')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_table_client_can_be_passed_in(directory: Directory) -> None:
    """from_table_client reads through a TableClient the app already has."""
    created = directory.api.create_user("grace@contoso.example")
    client = TableClient.from_connection_string(directory.harness.azurite.connection_string,
                                                directory.reader.table, **FAST_CLIENT_OPTIONS)
    with DirectoryReader.from_table_client(client) as reader:
        found = reader.tenant().get_user_by_name("GRACE@contoso.example")
        assert found is not None and found.id == created["id"]
