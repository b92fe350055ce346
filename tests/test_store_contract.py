"""One behavioural contract, run against the in-memory store and the Table Storage store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

from scim_core.store import (
    GROUP,
    USER,
    BadCursor,
    IndexKey,
    KeyTaken,
    Member,
    MemberChange,
    MemoryStore,
    Meta,
    NotStored,
    Record,
    Store,
    UnknownMembers,
    VersionMoved,
)
from scim_core.store.cursor import encode_cursor

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(300)

T = "default"
R = TypeVar("R")


@pytest.fixture(params=["memory", "tables"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each store in turn."""
    if request.param == "memory":
        return MemoryStore()
    table_store: Store = request.getfixturevalue("table_store")
    return table_store


def meta(version: str = "1") -> Meta:
    return Meta("2024-01-01T00:00:00Z", f"2024-01-0{min(int(version), 9)}T00:00:00Z", version)


def user_keys(user_name: str, external_id: str | None = None) -> list[IndexKey]:
    keys = [IndexKey("userName", user_name.casefold(), True)]
    if external_id is not None:
        keys.append(IndexKey("externalId", external_id, False))
    return keys


def add_user(store: Store, resource_id: str, user_name: str, external_id: str | None = None,
             *, tenant: str = T) -> Record:
    document: dict[str, Any] = {"userName": user_name}
    if external_id is not None:
        document["externalId"] = external_id
    return store.tenant(tenant).create(Record(USER, resource_id, document, meta()),
                        user_keys(user_name, external_id))


def ensure_users(store: Store, user_ids: Sequence[str], *, tenant: str = T) -> None:
    """Members must be stored users: create the ones that are not yet."""
    view = store.tenant(tenant)
    for user_id in sorted(u for u in set(user_ids) if view.get(USER, u) is None):
        add_user(store, user_id, f"user {user_id}", tenant=tenant)


def add_group(store: Store, resource_id: str, name: str, members: Sequence[str] = (),
              *, tenant: str = T) -> Record:
    """A group with ``members``, whose users are created first where missing."""
    ensure_users(store, members, tenant=tenant)
    return store.tenant(tenant).create(Record(GROUP, resource_id, {"displayName": name}, meta()),
                        [IndexKey("displayName", name.casefold(), True)],
                        [Member(m) for m in members])


def ids(records: Sequence[Record]) -> list[str]:
    return [r.id for r in records]


def member_ids(store: Store, group_id: str, tenant: str = T) -> list[str]:
    return [m.value for m in store.tenant(tenant).members(group_id)]


def change(store: Store, group_id: str, members: MemberChange) -> Record:
    """A member-only update; added members' users are created first where missing."""
    ensure_users(store, [m.value for m in members.add])
    return store.tenant(T).update(GROUP, group_id, meta=meta("2"), expected_etag=None,
                        members=members)


# -- create, get, update, delete -----------------------------------------------------------

def test_create_then_get_returns_the_document_meta_and_an_etag(store: Store) -> None:
    """A created resource reads back with its document, meta and a non-empty etag."""
    created = add_user(store, "u1", "alice", "ext-1")
    got = store.tenant(T).get(USER, "u1")
    assert got is not None
    assert got.document == {"userName": "alice", "externalId": "ext-1"}
    assert got.meta == meta() and created.meta == meta()
    assert got.etag and got.etag == created.etag
    assert created.document == got.document


def test_get_of_an_unknown_id_or_other_kind_is_none(store: Store) -> None:
    """get() answers None for an unknown id and for an id of the other kind."""
    add_user(store, "u1", "alice")
    assert store.tenant(T).get(USER, "nobody") is None
    assert store.tenant(T).get(GROUP, "u1") is None


def test_stored_documents_do_not_alias_the_callers_dicts(store: Store) -> None:
    """Changing a dict after create, or a returned document, never changes stored state."""
    document: dict[str, Any] = {"userName": "alice", "emails": [{"value": "a@x"}]}
    created = store.tenant(T).create(Record(USER, "u1", document, meta()), user_keys("alice"))
    document["emails"][0]["value"] = "changed"
    created.document["userName"] = "changed"
    got = store.tenant(T).get(USER, "u1")
    assert got is not None and got.document == {"userName": "alice", "emails": [{"value": "a@x"}]}


def test_update_replaces_document_and_meta_and_moves_the_etag(store: Store) -> None:
    """update() with a document replaces it and the meta, and gives a new etag."""
    created = add_user(store, "u1", "alice")
    updated = store.tenant(T).update(USER, "u1", meta=meta("2"), expected_etag=created.etag,
                           document={"userName": "alice", "title": "Dr"},
                           indexes=user_keys("alice"))
    assert updated.etag != created.etag
    assert updated.meta == meta("2")
    assert store.tenant(T).get(USER, "u1") == updated
    got = store.tenant(T).get(USER, "u1")
    assert got is not None and got.document == {"userName": "alice", "title": "Dr"}


def test_update_and_delete_of_a_missing_resource_raise_not_found(store: Store) -> None:
    """update() and delete() of an unknown id raise NotStored."""
    with pytest.raises(NotStored):
        store.tenant(T).update(USER, "nobody", meta=meta("2"), expected_etag=None,
                     document={"userName": "x"}, indexes=user_keys("x"))
    with pytest.raises(NotStored):
        store.tenant(T).update(GROUP, "nobody", meta=meta("2"), expected_etag=None,
                     members=MemberChange(add=(Member("u1"),)))
    with pytest.raises(NotStored):
        store.tenant(T).delete(USER, "nobody")
    assert member_ids(store, "nobody") == []
    assert store.tenant(T).groups_of("u1") == []


def test_delete_removes_the_resource_and_frees_its_unique_values(store: Store) -> None:
    """After delete() the resource is gone and its userName can be taken again."""
    add_user(store, "u1", "alice", "ext-1")
    store.tenant(T).delete(USER, "u1")
    assert store.tenant(T).get(USER, "u1") is None
    assert store.tenant(T).lookup(USER, IndexKey("userName", "alice", True)) == []
    assert store.tenant(T).lookup(USER, IndexKey("externalId", "ext-1", False)) == []
    add_user(store, "u2", "alice")
    assert ids(store.tenant(T).lookup(USER, IndexKey("userName", "alice", True))) == ["u2"]
    with pytest.raises(NotStored):
        store.tenant(T).delete(USER, "u1")


# -- indexes -------------------------------------------------------------------------------

def test_a_taken_unique_value_fails_the_create_and_writes_nothing(store: Store) -> None:
    """A create whose userName is taken raises KeyTaken and leaves no trace."""
    add_user(store, "u1", "alice")
    with pytest.raises(KeyTaken) as raised:
        add_user(store, "u2", "ALICE", "ext-2")
    assert raised.value.key == IndexKey("userName", "alice", True)
    assert store.tenant(T).get(USER, "u2") is None
    assert store.tenant(T).lookup(USER, IndexKey("externalId", "ext-2", False)) == []
    assert ids(store.tenant(T).lookup(USER, IndexKey("userName", "alice", True))) == ["u1"]
    assert ids(list(store.tenant(T).scan(USER))) == ["u1"]


def test_duplicate_key_names_the_value_that_collided(store: Store) -> None:
    """With several unique keys, KeyTaken carries the one that is taken."""
    first = [IndexKey("userName", "alice", True), IndexKey("employeeNumber", "7", True)]
    store.tenant(T).create(Record(USER, "u1", {"userName": "alice"}, meta()), first)
    second = [IndexKey("userName", "bob", True), IndexKey("employeeNumber", "7", True)]
    with pytest.raises(KeyTaken) as raised:
        store.tenant(T).create(Record(USER, "u2", {"userName": "bob"}, meta()), second)
    assert raised.value.key == IndexKey("employeeNumber", "7", True)
    assert store.tenant(T).lookup(USER, IndexKey("userName", "bob", True)) == []


def test_unique_values_are_per_kind(store: Store) -> None:
    """A user and a group may share an index name and value."""
    store.tenant(T).create(Record(USER, "u1", {}, meta()), [IndexKey("displayName", "x", True)])
    add_group(store, "g1", "x")
    assert ids(store.tenant(T).lookup(USER, IndexKey("displayName", "x", True))) == ["u1"]
    assert ids(store.tenant(T).lookup(GROUP, IndexKey("displayName", "x", True))) == ["g1"]


def test_rename_swaps_the_unique_index(store: Store) -> None:
    """After a rename the old userName is free and the new one is taken."""
    created = add_user(store, "u1", "alice")
    store.tenant(T).update(USER, "u1", meta=meta("2"), expected_etag=created.etag,
                 document={"userName": "alicia"}, indexes=user_keys("alicia"))
    assert store.tenant(T).lookup(USER, IndexKey("userName", "alice", True)) == []
    assert ids(store.tenant(T).lookup(USER, IndexKey("userName", "alicia", True))) == ["u1"]
    add_user(store, "u2", "alice")
    with pytest.raises(KeyTaken):
        add_user(store, "u3", "alicia")


def test_rename_onto_a_taken_value_changes_nothing(store: Store) -> None:
    """An update taking another resource's unique value raises KeyTaken, writes nothing."""
    add_user(store, "u1", "alice")
    bob = add_user(store, "u2", "bob", "ext-b")
    with pytest.raises(KeyTaken):
        store.tenant(T).update(USER, "u2", meta=meta("2"), expected_etag=bob.etag,
                     document={"userName": "alice"}, indexes=user_keys("alice", "ext-new"))
    assert store.tenant(T).get(USER, "u2") == bob
    got = store.tenant(T).get(USER, "u2")
    assert got is not None and got.document == bob.document and got.etag == bob.etag
    assert ids(store.tenant(T).lookup(USER, IndexKey("userName", "bob", True))) == ["u2"]
    assert ids(store.tenant(T).lookup(USER, IndexKey("externalId", "ext-b", False))) == ["u2"]
    assert store.tenant(T).lookup(USER, IndexKey("externalId", "ext-new", False)) == []


def test_non_unique_lookup_finds_every_holder_in_id_order(store: Store) -> None:
    """A non-unique value held by several resources finds all of them, ordered by id."""
    add_user(store, "u3", "carol", "shared")
    add_user(store, "u1", "alice", "shared")
    add_user(store, "u2", "bob", "other")
    found = store.tenant(T).lookup(USER, IndexKey("externalId", "shared", False))
    assert ids(found) == ["u1", "u3"]
    assert found[0].document["userName"] == "alice"
    assert store.tenant(T).lookup(USER, IndexKey("externalId", "shar", False)) == []


def test_update_without_indexes_keeps_the_stored_ones(store: Store) -> None:
    """update() with a document but indexes=None keeps the existing index rows."""
    add_user(store, "u1", "alice", "ext-1")
    store.tenant(T).update(USER, "u1", meta=meta("2"), expected_etag=None, document={"x": 1})
    assert ids(store.tenant(T).lookup(USER, IndexKey("userName", "alice", True))) == ["u1"]
    assert ids(store.tenant(T).lookup(USER, IndexKey("externalId", "ext-1", False))) == ["u1"]


def test_an_update_on_the_callers_read_applies_only_while_that_read_is_current(
        store: Store) -> None:
    """update(read=) with the read's etag writes the new document and swaps its index rows;
    once another write moved the resource on, the same call raises VersionMoved and changes
    nothing, and every lookup answers the stored document."""
    add_user(store, "u1", "alice", "ext-1")
    view = store.tenant(T)
    first = view.get(USER, "u1")
    assert first is not None
    second = view.update(USER, "u1", meta=meta("2"), expected_etag=first.etag, read=first,
                         document={"userName": "alicia"}, indexes=user_keys("alicia", "ext-2"))
    with pytest.raises(VersionMoved):
        view.update(USER, "u1", meta=meta("3"), expected_etag=first.etag, read=first,
                    document={"userName": "zed"}, indexes=user_keys("zed"))
    got = view.get(USER, "u1")
    assert got is not None and got.document == second.document == {"userName": "alicia"}
    assert view.lookup(USER, IndexKey("userName", "zed", True)) == []
    assert view.lookup(USER, IndexKey("userName", "alice", True)) == []
    assert view.lookup(USER, IndexKey("externalId", "ext-1", False)) == []
    for key in (IndexKey("userName", "alicia", True), IndexKey("externalId", "ext-2", False)):
        assert [(r.id, r.document, r.meta) for r in view.lookup(USER, key)] == [
            ("u1", {"userName": "alicia"}, meta("2"))]


def test_get_related_reads_the_resource_with_the_relations_asked_for(store: Store) -> None:
    """get_related() answers the record as get() does, a group's members and a user's group
    ids only when asked, and None for a missing resource."""
    add_group(store, "g1", "staff", ["u1", "u2"])
    add_group(store, "g2", "admins", ["u1"])
    view = store.tenant(T)
    user = view.get_related(USER, "u1", groups=True)
    group = view.get_related(GROUP, "g1", members=True)
    bare = view.get_related(GROUP, "g1")
    assert user is not None and group is not None and bare is not None
    assert (user.record, user.groups, user.members) == (view.get(USER, "u1"), ["g1", "g2"],
                                                        None)
    assert [m.value for m in group.members or []] == ["u1", "u2"] and group.groups is None
    assert bare.record == view.get(GROUP, "g1") and bare.members is None
    assert view.get_related(USER, "nobody", groups=True) is None


# -- versions ------------------------------------------------------------------------------

def test_count_counts_the_resources_of_a_kind(store: Store) -> None:
    """count() is the number of stored resources of one kind in the tenant, and nothing
    of the other kind or another tenant."""
    for n in range(3):
        add_user(store, f"u{n}", f"user{n}")
    add_group(store, "g1", "staff")
    add_user(store, "x", "other", tenant="b")
    assert store.tenant(T).count(USER) == 3
    assert store.tenant(T).count(GROUP) == 1
    assert store.tenant("b").count(USER) == 1


def test_delete_with_an_expected_version_deletes_only_that_version(store: Store) -> None:
    """delete(expected_version=) raises VersionMoved and keeps the resource when its
    version moved on, and deletes it when the version is still the one expected."""
    add_user(store, "u1", "alice")
    view = store.tenant(T)
    with pytest.raises(VersionMoved):
        view.delete(USER, "u1", expected_version="2")
    assert view.get(USER, "u1") is not None
    view.delete(USER, "u1", expected_version="1")
    assert view.get(USER, "u1") is None


def test_a_stale_etag_raises_version_mismatch_and_writes_nothing(store: Store) -> None:
    """update() with an etag that moved on raises VersionMoved and changes nothing."""
    created = add_user(store, "u1", "alice")
    second = store.tenant(T).update(USER, "u1", meta=meta("2"), expected_etag=created.etag,
                          document={"userName": "alice", "n": 2}, indexes=user_keys("alice"))
    with pytest.raises(VersionMoved):
        store.tenant(T).update(USER, "u1", meta=meta("3"), expected_etag=created.etag,
                     document={"userName": "zed"}, indexes=user_keys("zed"))
    with pytest.raises(VersionMoved):
        store.tenant(T).update(USER, "u1", meta=meta("3"), expected_etag=created.etag)
    got = store.tenant(T).get(USER, "u1")
    assert got is not None and got.document == second.document and got.etag == second.etag
    assert store.tenant(T).lookup(USER, IndexKey("userName", "zed", True)) == []


def test_an_update_that_changes_nothing_writes_nothing(store: Store) -> None:
    """document=None with no membership added or removed writes nothing, not even the
    meta: the record comes back as stored, its version and feed unchanged; a missing one
    is NotStored."""
    created = add_user(store, "u1", "alice", "ext-1")
    add_group(store, "g", "staff")
    position = store.tenant(T).position()
    same = store.tenant(T).update(USER, "u1", meta=meta("5"), expected_etag=created.etag,
                                  indexes=user_keys("ignored"))
    assert same == created and same.meta == created.meta and same.etag == created.etag
    group = store.tenant(T).get(GROUP, "g")
    assert store.tenant(T).change_members("g", last_modified="t", version="v6",
                                          members=MemberChange(remove=("u1",))) is None
    assert store.tenant(T).get(GROUP, "g") == group and group is not None
    assert group.meta.version != "v6" and store.tenant(T).position() == position
    assert ids(store.tenant(T).lookup(USER, IndexKey("userName", "alice", True))) == ["u1"]
    with pytest.raises(NotStored):
        store.tenant(T).change_members("nope", last_modified="t", version="v7",
                                       members=MemberChange(remove=("u1",)))


# -- membership ----------------------------------------------------------------------------

def test_members_given_at_create_are_readable_both_ways(store: Store) -> None:
    """A group created with members lists them by id; each user lists the group."""
    add_group(store, "g1", "staff", ["u2", "u1"])
    assert member_ids(store, "g1") == ["u1", "u2"]
    assert store.tenant(T).is_member("g1", "u1") and not store.tenant(T).is_member("g1", "u3")
    assert store.tenant(T).groups_of("u1") == ["g1"]
    assert store.tenant(T).groups_of("u3") == []


def test_member_changes_apply_clear_then_remove_then_add(store: Store) -> None:
    """remove_all, remove and add apply in that order; an add wins over a remove."""
    add_group(store, "g1", "staff", ["u1", "u2", "u3"])
    change(store, "g1", MemberChange(remove=("u1", "nobody")))
    assert member_ids(store, "g1") == ["u2", "u3"]
    change(store, "g1", MemberChange(remove=("u2",), add=(Member("u2"), Member("u4"))))
    assert member_ids(store, "g1") == ["u2", "u3", "u4"]
    change(store, "g1", MemberChange(remove_all=True, add=(Member("u3"), Member("u5"))))
    assert member_ids(store, "g1") == ["u3", "u5"]
    assert store.tenant(T).groups_of("u2") == [] and store.tenant(T).groups_of("u5") == ["g1"]
    change(store, "g1", MemberChange(remove_all=True))
    assert member_ids(store, "g1") == []
    assert store.tenant(T).groups_of("u3") == []


def test_member_display_is_kept_and_replaced_on_re_add(store: Store) -> None:
    """A member's display is stored with it, and a re-add replaces it."""
    add_group(store, "g1", "staff")
    change(store, "g1", MemberChange(add=(Member("u1", "Alice"),)))
    assert list(store.tenant(T).members("g1")) == [Member("u1", "Alice")]
    change(store, "g1", MemberChange(add=(Member("u1"),)))
    assert list(store.tenant(T).members("g1")) == [Member("u1", None)]


def test_member_change_bumps_the_group_meta_and_keeps_its_document(store: Store) -> None:
    """A member-only update writes meta, moves the etag and returns the stored document."""
    ensure_users(store, ["u1", "u2"])
    created = add_group(store, "g1", "staff")
    updated = store.tenant(T).update(GROUP, "g1", meta=meta("2"), expected_etag=created.etag,
                           members=MemberChange(add=(Member("u1"),)))
    assert updated.document == {"displayName": "staff"} and updated.meta == meta("2")
    assert updated.etag != created.etag
    with pytest.raises(VersionMoved):
        store.tenant(T).update(GROUP, "g1", meta=meta("3"), expected_etag=created.etag,
                     members=MemberChange(add=(Member("u2"),)))
    assert member_ids(store, "g1") == ["u1"]


@pytest.mark.parametrize("known", [2, 40])
def test_adding_a_member_who_is_not_a_user_fails_whole(store: Store, known: int) -> None:
    """A create or member change naming an id that is not a stored user (never was, or was
    deleted) raises UnknownMembers naming it and writes nothing, in one storage
    transaction or several."""
    users = [f"u{n:02d}" for n in range(known)]
    ensure_users(store, users)
    store.tenant(T).delete(USER, users[-1])
    wanted = (*(Member(u) for u in users), Member("ghost"))
    with pytest.raises(UnknownMembers) as raised:
        store.tenant(T).create(Record(GROUP, "g1", {"displayName": "staff"}, meta()),
                     [IndexKey("displayName", "staff", True)], wanted)
    assert raised.value.ids == ("ghost", users[-1])
    assert store.tenant(T).get(GROUP, "g1") is None
    assert store.tenant(T).lookup(GROUP, IndexKey("displayName", "staff", True)) == []
    created = add_group(store, "g1", "staff", users[:1])
    with pytest.raises(UnknownMembers) as raised:
        store.tenant(T).update(GROUP, "g1", meta=meta("2"), expected_etag=None,
                     members=MemberChange(remove=("nobody", users[0]), add=wanted[1:]))
    assert raised.value.ids == ("ghost", users[-1])
    assert store.tenant(T).get(GROUP, "g1") == created
    assert member_ids(store, "g1") == users[:1]
    assert [store.tenant(T).groups_of(u) for u in users] == [["g1"]] + [[]] * (known - 1)


def test_change_members_writes_like_update_and_returns_the_new_etag(store: Store) -> None:
    """change_members() applies member edits as a member-only update does, sets the meta's
    modification time and version but keeps its creation time, and returns the etag the
    group then has; a missing group (named before missing users, in one batch or several)
    or user is refused as there."""
    ensure_users(store, ["u1", "u2"])
    created = add_group(store, "g1", "staff", ["u1"])
    etag = store.tenant(T).change_members("g1", last_modified="2030-05-05T00:00:00Z", version="v2",
                                members=MemberChange(remove=("u1",), add=(Member("u2"),)))
    got = store.tenant(T).get(GROUP, "g1")
    assert got is not None and got.etag == etag != created.etag
    assert got.meta == Meta(created.meta.created, "2030-05-05T00:00:00Z", "v2")
    assert got.document == {"displayName": "staff"}
    assert member_ids(store, "g1") == ["u2"] and store.tenant(T).groups_of("u1") == []
    for ids in (["u1"], ["ghost"], [f"ghost{n}" for n in range(40)]):
        with pytest.raises(NotStored):
            store.tenant(T).change_members("nobody", last_modified="x", version="v3",
                                 members=MemberChange(add=tuple(Member(i) for i in ids)))
    with pytest.raises(UnknownMembers):
        store.tenant(T).change_members("g1", last_modified="x", version="v3",
                             members=MemberChange(add=(Member("x"),)))
    assert store.tenant(T).get(GROUP, "g1") == got
    assert store.tenant(T).get(GROUP, "nobody") is None


def test_deleting_a_user_removes_its_memberships_both_ways(store: Store) -> None:
    """A deleted user leaves no member row in any group and no reverse rows."""
    add_user(store, "u1", "alice")
    add_user(store, "u2", "bob")
    add_group(store, "g1", "one", ["u1", "u2"])
    add_group(store, "g2", "two", ["u1"])
    store.tenant(T).delete(USER, "u1")
    assert member_ids(store, "g1") == ["u2"] and member_ids(store, "g2") == []
    assert not store.tenant(T).is_member("g1", "u1")
    assert store.tenant(T).groups_of("u1") == []
    assert store.tenant(T).groups_of("u2") == ["g1"]


def test_deleting_a_group_removes_its_memberships_both_ways(store: Store) -> None:
    """A deleted group leaves no member rows and disappears from its users' groups."""
    add_group(store, "g1", "one", ["u1", "u2"])
    add_group(store, "g2", "two", ["u1"])
    store.tenant(T).delete(GROUP, "g1")
    assert store.tenant(T).groups_of("u1") == ["g2"] and store.tenant(T).groups_of("u2") == []
    assert member_ids(store, "g1") == [] and not store.tenant(T).is_member("g1", "u1")
    assert store.tenant(T).lookup(GROUP, IndexKey("displayName", "one", True)) == []
    add_group(store, "g3", "one")


def test_member_ids_that_are_prefixes_of_each_other_stay_apart(store: Store) -> None:
    """Groups g and g:1 (and users u, u:1) never see each other's memberships."""
    add_group(store, "g", "a", ["u"])
    add_group(store, "g:1", "b", ["u:1"])
    assert member_ids(store, "g") == ["u"] and member_ids(store, "g:1") == ["u:1"]
    assert store.tenant(T).groups_of("u") == ["g"] and store.tenant(T).groups_of("u:1") == ["g:1"]


# -- reading many --------------------------------------------------------------------------

def test_scan_returns_every_resource_of_a_kind_in_id_order(store: Store) -> None:
    """scan() yields all resources of one kind, ordered by id, and nothing else."""
    for n in (5, 2, 9, 1, 7):
        add_user(store, f"u{n}", f"user{n}")
    add_group(store, "g1", "staff", ["u1"])
    assert ids(list(store.tenant(T).scan(USER))) == ["u1", "u2", "u5", "u7", "u9"]
    assert ids(list(store.tenant(T).scan(GROUP))) == ["g1"]
    assert list(store.tenant("other").scan(USER)) == []


def test_pages_with_cursors_walk_every_resource_once(store: Store) -> None:
    """page() walks all resources in id order; the last page has no cursor."""
    for n in range(7):
        add_user(store, f"u{n}", f"user{n}")
    seen: list[str] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        records, cursor = store.tenant(T).page(USER, cursor=cursor, size=3)
        seen += ids(records)
        sizes.append(len(records))
        if cursor is None:
            break
    assert seen == [f"u{n}" for n in range(7)] and sizes == [3, 3, 1]
    first, cursor = store.tenant(T).page(USER, cursor=None, size=7)
    assert len(first) == 7 and cursor is None
    _, cursor = store.tenant(T).page(USER, cursor=None, size=6)
    assert cursor is not None
    rest, cursor = store.tenant(T).page(USER, cursor=cursor, size=1)
    assert ids(rest) == ["u6"] and cursor is None


def test_a_cursor_the_store_did_not_issue_is_invalid(store: Store) -> None:
    """page() with a malformed cursor raises BadCursor."""
    add_user(store, "u1", "alice")
    for bad in ("a", "_w", "x" * 5000):
        with pytest.raises(BadCursor):
            store.tenant(T).page(USER, cursor=bad, size=10)


def test_tables_cursor_rejects_positions_it_did_not_issue(table_store: Store) -> None:
    """A well-formed cursor that names no position of this kind is refused (tables)."""
    add_user(table_store, "u1", "alice")
    _, cursor = table_store.tenant(T).page(USER, cursor=None, size=0)
    assert cursor is None
    for position in ("u1", "group:u1", "user;"):
        with pytest.raises(BadCursor):
            table_store.tenant(T).page(USER, cursor=encode_cursor(position), size=10)


# -- tenants and concurrency --------------------------------------------------------------

def test_tenants_are_isolated(store: Store) -> None:
    """Two tenants may hold the same id and userName without seeing each other."""
    add_user(store, "u1", "alice", tenant="a")
    add_user(store, "u1", "alice", tenant="b")
    add_group(store, "g1", "staff", ["u1"], tenant="a")
    assert ids(store.tenant("a").lookup(USER, IndexKey("userName", "alice", True))) == ["u1"]
    store.tenant("a").delete(USER, "u1")
    assert store.tenant("a").get(USER, "u1") is None
    assert store.tenant("b").get(USER, "u1") is not None
    assert ids(store.tenant("b").lookup(USER, IndexKey("userName", "alice", True))) == ["u1"]
    assert store.tenant("b").groups_of("u1") == [] and member_ids(store, "g1", "b") == []
    assert ids(list(store.tenant("b").scan(USER))) == ["u1"]
    assert store.tenant("b").get(GROUP, "g1") is None


def run_together(count: int, work: Callable[[int], R]) -> list[R | BaseException]:
    barrier = threading.Barrier(count)
    results: list[R | BaseException] = [RuntimeError("not run")] * count

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = work(n)
        except BaseException as error:
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_creates_of_one_user_name_let_exactly_one_win(store: Store) -> None:
    """Racing creates of the same userName: one succeeds, the others get KeyTaken."""
    for round_ in range(4):

        def create(n: int, r: int = round_) -> Record:
            return add_user(store, f"u{r}-{n}", f"name{r}")

        outcomes = run_together(4, create)
        winners = [o for o in outcomes if isinstance(o, Record)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, KeyTaken) for o in outcomes if o not in winners)
        found = store.tenant(T).lookup(USER, IndexKey("userName", f"name{round_}", True))
        assert ids(found) == [winners[0].id]
    assert len(list(store.tenant(T).scan(USER))) == 4


def test_concurrent_member_adds_to_one_group_all_land(store: Store) -> None:
    """Threads adding different members to one group at once all succeed; none is lost."""
    add_group(store, "g1", "staff")

    def add(n: int) -> Record:
        return change(store, "g1", MemberChange(add=(Member(f"u{n}"),)))

    outcomes = run_together(8, add)
    assert all(isinstance(o, Record) for o in outcomes), outcomes
    assert member_ids(store, "g1") == [f"u{n}" for n in range(8)]
    assert all(store.tenant(T).groups_of(f"u{n}") == ["g1"] for n in range(8))


def test_read_modify_write_with_etags_loses_no_update(store: Store) -> None:
    """Threads incrementing a counter with expected_etag and retry never lose an increment."""
    store.tenant(T).create(Record(USER, "u1", {"count": 0}, meta()), [])
    rounds = 5

    def increment(_: int) -> int:
        retries = 0
        for _done in range(rounds):
            while True:
                current = store.tenant(T).get(USER, "u1")
                assert current is not None
                try:
                    store.tenant(T).update(USER, "u1", meta=meta("2"), expected_etag=current.etag,
                                 document={"count": current.document["count"] + 1})
                    break
                except VersionMoved:
                    retries += 1
        return retries

    outcomes = run_together(4, increment)
    assert all(isinstance(o, int) for o in outcomes), outcomes
    final = store.tenant(T).get(USER, "u1")
    assert final is not None and final.document["count"] == 4 * rounds
