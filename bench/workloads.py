"""Entra-shaped request bodies and the jobs every system is measured with (identical bytes)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import count
from typing import Any

from bench.runner import Caller, Job, Timed, cycle_through, expect

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def user_name(tag: str, n: int) -> str:
    return f"{tag}.{n:06d}@contoso.example"


def group_name(tag: str, n: int) -> str:
    return f"{tag} group {n:04d}"


def user_body(tag: str, n: int) -> bytes:
    """The POST /Users body of Entra's default non-gallery mapping."""
    name = user_name(tag, n)
    return _encode({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": f"{tag}-{n:06d}",
        "userName": name,
        "active": True,
        "displayName": f"User {n} of {tag}",
        "title": "Facilities Planner",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "name": {"formatted": f"User {n}", "givenName": "User", "familyName": f"N{n}"},
        "addresses": [{"type": "work", "formatted": "Building 4, Floor 2"}],
        "phoneNumbers": [{"type": "work", "value": "+46 8 555 0100"}],
        ENTERPRISE: {"employeeNumber": str(100000 + n), "department": "Facilities",
                     "division": "Operations"},
        "meta": {"resourceType": "User"},
        "roles": [],
    })


def group_body(tag: str, n: int) -> bytes:
    """The POST /Groups body Entra sends, with the core schema only: scim2-server rejects
    Entra's extra ``http://schemas.microsoft.com/...`` URI (400 invalidSyntax)."""
    return _encode({
        "schemas": [GROUP_SCHEMA],
        "externalId": f"0d4c1e9a-33b8-4a3e-9a61-{n:012d}",
        "displayName": group_name(tag, n),
        "meta": {"resourceType": "Group"},
    })


def user_patch(value: str) -> bytes:
    """A legacy (no flag) Entra attribute update: one Replace per changed attribute."""
    return _encode({"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "displayName", "value": f"Renamed {value}"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": f"Dept {value}"},
    ]})


def members_add(user_ids: Sequence[str]) -> bytes:
    """Entra's member add: ``Add`` on ``members`` with a list of ids."""
    return _encode({"schemas": [PATCH_OP], "Operations": [
        {"op": "Add", "path": "members",
         "value": [{"$ref": None, "value": i} for i in user_ids]}]})


def member_remove(user_id: str) -> bytes:
    """The flagged (RFC) member removal, which both servers read the same way."""
    return _encode({"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": f'members[value eq "{user_id}"]'}]})


def user_query(name: str) -> dict[str, str]:
    return {"filter": f'userName eq "{name}"'}


def group_query(name: str) -> dict[str, str]:
    return {"excludedAttributes": "members", "filter": f'displayName eq "{name}"'}


def created_id(status: int, body: bytes, what: str) -> str:
    expect(status, body, 201, what=what)
    return str(json.loads(body)["id"])


def total_results(status: int, body: bytes, what: str) -> int:
    expect(status, body, 200, what=what)
    return int(json.loads(body)["totalResults"])


# -- seeding (not timed) --------------------------------------------------------------------


def seed_users(call: Caller, tag: str, first: int, last: int) -> list[tuple[str, str]]:
    """Create users ``first..last-1``; returns ``(id, userName)`` pairs."""
    made = []
    for n in range(first, last):
        status, body = call("POST", "/Users", None, user_body(tag, n))
        made.append((created_id(status, body, "seed user"), user_name(tag, n)))
    return made


def seed_group(call: Caller, tag: str, n: int, members: Sequence[str] = (),
               chunk: int = 1000) -> str:
    """Create a group, then add ``members`` by PATCH in chunks, as Entra would."""
    status, body = call("POST", "/Groups", None, group_body(tag, n))
    group_id = created_id(status, body, "seed group")
    for i in range(0, len(members), chunk):
        status, body = call("PATCH", f"/Groups/{group_id}", None,
                            members_add(members[i:i + chunk]))
        expect(status, body, 200, 204, what="seed members")
    return group_id


# -- measured jobs --------------------------------------------------------------------------


def create_jobs(tag: str) -> Iterator[Job]:
    for n in count():
        body = user_body(tag, n)

        def job(t: Timed, body: bytes = body) -> None:
            status, answer = t("POST", "/Users", None, body)
            expect(status, answer, 201, what="create user")

        yield job


def lookup_jobs(names: Sequence[str]) -> Iterator[Job]:
    for name in cycle_through(names):
        query = user_query(name)

        def job(t: Timed, query: dict[str, str] = query) -> None:
            status, answer = t("GET", "/Users", query, None)
            expect(status, answer, 200, what="userName eq")

        yield job


def get_jobs(ids: Sequence[str]) -> Iterator[Job]:
    for user_id in cycle_through(ids):
        def job(t: Timed, path: str = f"/Users/{user_id}") -> None:
            status, answer = t("GET", path, None, None)
            expect(status, answer, 200, what="get user")

        yield job


def patch_jobs(ids: Sequence[str], marker: str) -> Iterator[Job]:
    for n, user_id in enumerate(cycle_through(ids)):
        body = user_patch(f"{marker}-{n}")

        def job(t: Timed, path: str = f"/Users/{user_id}", body: bytes = body) -> None:
            status, answer = t("PATCH", path, None, body)
            expect(status, answer, 200, 204, what="patch user")

        yield job


def member_add_jobs(group_id: str, user_ids: Sequence[str]) -> Iterator[Job]:
    """Each job adds one new member; the group grows by one per job."""
    for user_id in user_ids:
        body = members_add([user_id])

        def job(t: Timed, body: bytes = body) -> None:
            status, answer = t("PATCH", f"/Groups/{group_id}", None, body)
            expect(status, answer, 200, 204, what="member add")

        yield job


def member_add_remove_jobs(group_id: str, user_ids: Sequence[str]) -> Iterator[Job]:
    """Add one non-member (timed), then remove it again (not timed): the group keeps its
    size, so a group of 0 and a group of 20,000 stay that size for the whole measurement."""
    for user_id in cycle_through(user_ids):
        add, remove = members_add([user_id]), member_remove(user_id)

        def job(t: Timed, add: bytes = add, remove: bytes = remove) -> None:
            status, answer = t("PATCH", f"/Groups/{group_id}", None, add)
            expect(status, answer, 200, 204, what="member add")
            status, answer = t.raw("PATCH", f"/Groups/{group_id}", None, remove)
            expect(status, answer, 200, 204, what="member remove")

        yield job


def group_get_jobs(group_id: str) -> Iterator[Job]:
    query = {"excludedAttributes": "members"}
    while True:
        def job(t: Timed) -> None:
            status, answer = t("GET", f"/Groups/{group_id}", query, None)
            expect(status, answer, 200, what="get group")

        yield job


# -- the Entra initial cycle ----------------------------


def cycle_user_jobs(tag: str, users: int, ids: dict[int, str]) -> Iterator[Job]:
    """Per user: match by ``userName eq`` (0 hits), then POST; the id is remembered."""
    for n in range(users):
        query, body = user_query(user_name(tag, n)), user_body(tag, n)

        def job(t: Timed, n: int = n, query: dict[str, str] = query, body: bytes = body
                ) -> None:
            if total_results(*t("GET", "/Users", query, None), what="match user") != 0:
                raise ValueError("a new user was found before it was created")
            ids[n] = created_id(*t("POST", "/Users", None, body), what="create user")

        yield job


def cycle_group_jobs(tag: str, groups: int, ids: dict[int, str]) -> Iterator[Job]:
    """Per group: match by ``displayName eq`` with members excluded, then POST (empty)."""
    for n in range(groups):
        query, body = group_query(group_name(tag, n)), group_body(tag, n)

        def job(t: Timed, n: int = n, query: dict[str, str] = query, body: bytes = body
                ) -> None:
            if total_results(*t("GET", "/Groups", query, None), what="match group") != 0:
                raise ValueError("a new group was found before it was created")
            ids[n] = created_id(*t("POST", "/Groups", None, body), what="create group")

        yield job


def membership_plan(users: int, groups: int, memberships: int) -> list[list[int]]:
    """Which users each group gets: equal shares of consecutive users, wrapping around."""
    share = memberships // groups
    return [[(g * share + k) % users for k in range(share)] for g in range(groups)]


def cycle_member_jobs(group_ids: dict[int, str], user_ids: dict[int, str],
                      plan: list[list[int]], per_patch: int) -> Iterator[Job]:
    """Member PATCHes, ``per_patch`` members each, taking the groups in turn so that
    concurrent clients work on different groups."""
    chunks = [[members[i:i + per_patch] for i in range(0, len(members), per_patch)]
              for members in plan]
    for step in range(max((len(c) for c in chunks), default=0)):
        for g, group_chunks in enumerate(chunks):
            if step >= len(group_chunks):
                continue
            body = members_add([user_ids[u] for u in group_chunks[step]])

            def job(t: Timed, path: str = f"/Groups/{group_ids[g]}", body: bytes = body
                    ) -> None:
                status, answer = t("PATCH", path, None, body)
                expect(status, answer, 200, 204, what="member patch")

            yield job
