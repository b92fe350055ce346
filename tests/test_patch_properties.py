"""Property tests: hostile PATCH bodies only ever yield 400 SCIM errors, and member edits
fold into a MemberChange that the store's clear/remove/add order turns into the right set."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scim_core.errors import ScimError
from scim_core.patch import apply_patch
from scim_core.schema import Registry, ResourceType
from scim_core.store.base import Member, MemberChange

REGISTRY = Registry.default()


def _resource_type(name: str) -> ResourceType:
    rt = REGISTRY.resource_type(name)
    assert rt is not None
    return rt


USER = _resource_type("User")
GROUP = _resource_type("Group")
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

SAMPLE_USER: dict[str, Any] = {
    "userName": "u@example.org",
    "name": {"givenName": "U", "familyName": "Ser"},
    "active": True,
    "emails": [{"type": "work", "value": "u@example.org", "primary": True},
               {"type": "home", "value": "h@example.org"}],
    "roles": [{"value": '{"id":"1"}'}],
    "nickname2": ["verbatim", {"a": 1}],
    ENT: {"department": "D", "manager": {"value": "m"}},
    "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User": {"costCode": "c"},
}
SAMPLE_GROUP: dict[str, Any] = {"displayName": "G", "externalId": "e"}
STORED = [Member("a", "Alice"), Member("b", "Bob"), Member("c", None)]

PATHS = [
    "userName", "displayName", "active", "name", "name.givenName", "emails", "emails.value",
    'emails[type eq "work"].value', 'emails[type eq "work"]', 'emails[type eq "x"].primary',
    'emails[value co "@"].display', 'addresses[type eq "work"].formatted', "roles", "id",
    "meta", "meta.created", "schemas", "groups", "password", "members", 'members[value eq "a"]',
    'members[display eq "Bob"]', 'members[value eq "a" or value eq "b"]', "members.value",
    f"{ENT}:manager", f"{ENT}.department", ENT, 'manager[value eq "m"]', "manager",
    "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User",
    "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User:costCode",
    "urn:ietf:params:scim:schemas:core:2.0:User", "nickname2", "nickname2.a",
    'nickname2[a eq 1].b', "", " ", "[", "emails[", "a b", "emails[type eq \"w\"].x.y", "urn:",
    "name.givenName.x", "title[value eq 1]", 'emails[type eq "work"]].value',
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["True", "false", "FALSE", "", "a", "m", "Bob"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(PATHS),
                                  st.sampled_from(["value", "Value", "display", "type",
                                                   "primary", "givenName", "members"])),
                        children, max_size=4),
    ),
    max_leaves=12,
)
op_names = st.one_of(st.sampled_from(["add", "Add", "replace", "REPLACE", "remove", "Remove",
                                      "copy", ""]), json_scalars)
operation = st.dictionaries(
    st.sampled_from(["op", "Op", "path", "PATH", "value", "Value", "extra"]),
    st.one_of(op_names, st.sampled_from(PATHS), json_values),
    max_size=4,
) | st.fixed_dictionaries(
    {"op": op_names, "path": st.one_of(st.sampled_from(PATHS), json_values)},
    optional={"value": json_values},
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"Operations": st.one_of(st.lists(operation, max_size=6),
                                                   json_values)},
                          optional={"schemas": json_values}),
)


def _loader() -> list[Member]:
    return list(STORED)


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or _has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(v is None or _has_null(v) for v in value)
    return False


def _check_document(doc: dict[str, Any], required: str) -> None:
    json.dumps(doc, allow_nan=False)
    assert not _has_null(doc)
    assert isinstance(doc.get(required), str) and doc[required].strip()
    for key, value in doc.items():
        assert "[" not in key
        assert value is not None and value != [] and value != {}
        if key.lower().startswith("urn:") and isinstance(value, dict):
            assert all(v is not None and v != [] and v != {} for v in value.values())


def _attempt(rt_name: str, document: dict[str, Any], body: Any) -> None:
    rt = USER if rt_name == "User" else GROUP
    before = copy.deepcopy(document)
    try:
        result = apply_patch(REGISTRY, rt, document, body, load_members=_loader,
                             max_operations=5)
    except ScimError as exc:
        assert exc.status == 400 and exc.scim_type is not None, exc
    else:
        if rt_name == "User":
            assert result.members == MemberChange()
            _check_document(result.document, "userName")
        else:
            assert "members" not in result.document
            _check_document(result.document, "displayName")
    assert document == before


@settings(max_examples=200, deadline=None)
@given(body=bodies, rt_name=st.sampled_from(["User", "Group"]))
def test_random_bodies_only_yield_400_scim_errors(body: Any, rt_name: str) -> None:
    """Any JSON body either applies or fails with a 400 SCIM error, never mutating input."""
    _attempt(rt_name, SAMPLE_USER if rt_name == "User" else SAMPLE_GROUP, body)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.fixed_dictionaries({
    "op": st.sampled_from(["add", "Replace", "remove"]),
    "path": st.sampled_from(PATHS),
    "value": json_values,
}), min_size=1, max_size=5), rt_name=st.sampled_from(["User", "Group"]))
def test_random_operation_lists_only_yield_400_scim_errors(ops: list[dict[str, Any]],
                                                           rt_name: str) -> None:
    """Well-formed envelopes with arbitrary paths and values never raise anything but a
    400 SCIM error, and successful results are clean, serialisable documents."""
    _attempt(rt_name, SAMPLE_USER if rt_name == "User" else SAMPLE_GROUP,
             {"Operations": ops})


ids = st.sampled_from(["a", "b", "c", "d", "e"])
member_ops = st.one_of(
    st.builds(lambda xs: ("add", xs), st.lists(ids, max_size=3)),
    st.builds(lambda xs: ("remove_listed", xs), st.lists(ids, min_size=1, max_size=3)),
    st.builds(lambda x: ("remove_eq", x), ids),
    st.builds(lambda x: ("remove_display", x), st.sampled_from(["Alice", "Bob", "new"])),
    st.just(("remove_all", None)),
    st.builds(lambda xs: ("replace", xs), st.lists(ids, max_size=3)),
)


def _wire(kind: str, arg: Any) -> dict[str, Any]:
    if kind == "add":
        return {"op": "Add", "path": "members",
                "value": [{"value": x, "display": "new"} for x in arg]}
    if kind == "remove_listed":
        return {"op": "Remove", "path": "members", "value": [{"value": x} for x in arg]}
    if kind == "remove_eq":
        return {"op": "remove", "path": f'members[value eq "{arg}"]'}
    if kind == "remove_display":
        return {"op": "remove", "path": f'members[display eq "{arg}"]'}
    if kind == "remove_all":
        return {"op": "remove", "path": "members"}
    return {"op": "replace", "path": "members", "value": [{"value": x} for x in arg]}


def _expected(initial: dict[str, str | None], steps: list[tuple[str, Any]]) -> set[str]:
    state = dict(initial)
    for kind, arg in steps:
        if kind == "add":
            state.update((x, "new") for x in arg)
        elif kind == "remove_listed":
            for x in arg:
                state.pop(x, None)
        elif kind == "remove_eq":
            state.pop(arg, None)
        elif kind == "remove_display":
            state = {k: v for k, v in state.items() if (v or "").lower() != arg.lower()}
        elif kind == "remove_all":
            state = {}
        else:
            state = {x: None for x in arg}
    return set(state)


def _store_applies(initial: set[str], change: MemberChange) -> set[str]:
    state = set() if change.remove_all else set(initial)
    state -= set(change.remove)
    return state | {m.value for m in change.add}


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(member_ops, min_size=1, max_size=6),
       initial=st.sets(st.sampled_from(STORED)))
def test_member_change_matches_sequential_application(steps: list[tuple[str, Any]],
                                                      initial: set[Member]) -> None:
    """The net MemberChange, applied as clear/remove/add, equals applying the operations
    one by one; legacy listed removes never clear the group; adds hold no duplicate ids."""
    members = sorted(initial, key=lambda m: m.value)
    body = {"Operations": [_wire(kind, arg) for kind, arg in steps]}
    result = apply_patch(REGISTRY, GROUP, SAMPLE_GROUP, body, load_members=lambda: members)
    change = result.members
    start = {m.value for m in members}
    assert _store_applies(start, change) == _expected({m.value: m.display for m in members},
                                                      steps)
    added = [m.value for m in change.add]
    assert len(added) == len(set(added))
    assert not set(added) & set(change.remove)
    if all(kind in ("add", "remove_listed", "remove_eq", "remove_display")
           for kind, _ in steps):
        assert not change.remove_all
