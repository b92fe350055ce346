"""``apply_patch``: one PATCH request applied atomically to a copy of a stored document."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scim_core.errors import InvalidValue, Mutability, NoTarget, ScimError
from scim_core.filter.budget import MAX_WORK, WorkBudget
from scim_core.kinds import Kind
from scim_core.patch.attributes import AttributeEditor
from scim_core.patch.envelope import Operation, read_operations
from scim_core.patch.jsonvalues import without_nulls
from scim_core.patch.members import MemberEdits, apply_member_op
from scim_core.patch.paths import Target, resolve_target
from scim_core.schema import Registry, ResourceType
from scim_core.store.base import Member, MemberChange

# Clients echo these back inside path-less objects; with an explicit path they are errors.
ECHOED = frozenset({"schemas", "id", "meta"})


@dataclass(frozen=True)
class PatchResult:
    document: dict[str, Any]
    """The new document (a new object; the input is never mutated)."""
    members: MemberChange
    """Net membership edits (groups only; empty for users)."""


def apply_patch(registry: Registry, rt: ResourceType, document: Mapping[str, Any], body: Any,
                *, load_members: Callable[[], list[Member]] | None = None,
                max_operations: int = 1000, max_work: int = MAX_WORK) -> PatchResult:
    """Apply the PatchOp ``body`` to ``document`` (a stored resource's attributes).

    Every failure is a 400 ``ScimError`` naming the operation, and leaves ``document``
    untouched. ``load_members`` is called at most once, and only for a member filter other
    than ``value eq "id"``. The operations share one ``WorkBudget`` of ``max_work`` units:
    each is charged the elements it walks (times its filter's terms) before it runs.
    """
    operations = read_operations(body, max_operations)
    patcher = _Patcher(registry, rt, copy.deepcopy(dict(document)), load_members,
                       WorkBudget(max_work))
    for operation in operations:
        try:
            patcher.run(operation)
        except ScimError as exc:
            if exc.status != 400:
                raise  # keep its own status: only a 400 names the failed operation
            raise type(exc)(f"{operation.label()}: {exc.detail}") from None
    patcher.check_required()
    return PatchResult(_tidy(patcher.editor.doc), patcher.members.change())


def member_change_alone(registry: Registry, rt: ResourceType, body: Any, *,
                        max_operations: int = 1000) -> MemberChange | None:
    """The net membership edit of a group PATCH whose operations only add or remove listed
    members (Entra's member PATCH), found without the stored group. None when an operation
    needs the group: another attribute, no path, a filter other than ``value eq "id"``,
    replacing or clearing all members, or an invalid operation (``apply_patch`` then
    reports it, after the group has been found)."""
    if rt.kind is not Kind.GROUP:
        return None
    edits = MemberEdits(None)
    try:
        for operation in read_operations(body, max_operations):
            if operation.path is None:
                return None
            target = resolve_target(registry, rt, operation.path)
            attr = target.attribute
            if target.container is not None or attr is None or attr.name != "members":
                return None
            apply_member_op(edits, operation.op, target, operation.value)
    except ScimError:
        return None
    change = edits.change()
    return None if change.remove_all or not (change.add or change.remove) else change


def _tidy(document: dict[str, Any]) -> dict[str, Any]:
    """No nulls anywhere, and no empty values at the top or directly in an extension."""
    tidy: dict[str, Any] = {}
    for key, value in without_nulls(document).items():
        if key.lower().startswith("urn:") and isinstance(value, dict):
            value = {k: v for k, v in value.items() if v not in ([], {})} or None
        if value not in (None, [], {}):
            tidy[key] = value
    return tidy


class _Patcher:
    def __init__(self, registry: Registry, rt: ResourceType, document: dict[str, Any],
                 load_members: Callable[[], list[Member]] | None, budget: WorkBudget) -> None:
        self.registry = registry
        self.rt = rt
        self.editor = AttributeEditor(registry, rt, document, budget=budget)
        self.members = MemberEdits(load_members, budget=budget)
        self.is_group = rt.kind is Kind.GROUP

    def run(self, operation: Operation) -> None:
        """Apply one operation, at its path or path-less."""
        if operation.path is None:
            self._pathless(operation.op, operation.value)
        else:
            self._dispatch(operation.op, resolve_target(self.registry, self.rt, operation.path),
                           operation.value)

    def _dispatch(self, op: str, target: Target, value: Any) -> None:
        attr = target.attribute
        if (self.is_group and target.container is None and attr is not None
                and attr.name == "members"):
            apply_member_op(self.members, op, target, value)
        else:
            self.editor.apply(op, target, value)

    def _pathless(self, op: str, value: Any) -> None:
        """RFC 7644 §3.5.2.1/3: the value holds attributes of the resource itself. Entra's
        flagged jobs write its keys as paths (``name.givenName``, ``urn:…:User:manager``,
        ``emails[type eq "work"].value``); RFC clients nest objects. Both work, because
        every key is resolved as a path and a complex value is merged."""
        if op == "remove":
            raise NoTarget("remove needs a 'path' (RFC 7644 §3.5.2.2).")
        if not isinstance(value, dict):
            raise InvalidValue(f"{op} without a 'path' needs an object 'value' of attributes.")
        for key, item in value.items():
            lowered = key.lower()
            if lowered in ECHOED:
                continue
            if lowered == self.rt.schema.lower():
                self._pathless(op, item)  # core attributes nested under the core URN
                continue
            self._dispatch(op, resolve_target(self.registry, self.rt, key), item)

    def check_required(self) -> None:
        """Required attributes must survive every operation (RFC 7644 §3.5.2.2)."""
        doc = self.editor.doc
        for attr in self.registry.core_schema(self.rt).attributes:
            if not attr.required:
                continue
            present = doc.get(attr.name)
            if present is None:
                raise Mutability(f"'{attr.name}' is required and cannot be removed.")
            if isinstance(present, str) and not present.strip():
                raise InvalidValue(f"'{attr.name}' is required and must not be empty.")
