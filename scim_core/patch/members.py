"""Group membership operations, folded into one net, order-correct ``MemberChange``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scim_core.errors import InvalidPath
from scim_core.filter.ast import Compare, Expr
from scim_core.filter.budget import WorkBudget, term_count
from scim_core.members import parse_members
from scim_core.patch.paths import Target, element_test
from scim_core.store.base import Member, MemberChange


class MemberEdits:
    """The membership edits of one request so far. The store applies a ``MemberChange`` as
    clear all, remove listed, add listed, so every edit keeps that reading equal to the
    requested sequence: an id is either added or removed, never both."""

    def __init__(self, load: Callable[[], list[Member]] | None, *,
                 budget: WorkBudget | None = None) -> None:
        self._load = load
        self.budget = budget if budget is not None else WorkBudget()
        self._loaded: list[Member] | None = None
        self.remove_all = False
        self.removed: dict[str, None] = {}
        self.added: dict[str, Member] = {}

    def add(self, members: list[Member]) -> None:
        """Add ``members``, cancelling earlier removes of the same ids."""
        for member in members:
            self.removed.pop(member.value, None)
            self.added[member.value] = member

    def remove(self, ids: list[str]) -> None:
        """Remove ``ids``, cancelling earlier adds of the same ids."""
        for member_id in ids:
            self.added.pop(member_id, None)
            if not self.remove_all:
                self.removed[member_id] = None

    def clear(self) -> None:
        """Remove every member, forgetting the edits so far."""
        self.remove_all = True
        self.removed.clear()
        self.added.clear()

    def current(self, where: str) -> list[Member]:
        """The membership as it stands after the edits so far (loads the stored one once)."""
        if self.remove_all:
            base: list[Member] = []
        else:
            if self._loaded is None:
                if self._load is None:
                    raise InvalidPath(f"'{where}': only members[value eq \"id\"] filters are "
                                      "supported here.")
                self._loaded = list(self._load())
            base = [m for m in self._loaded if m.value not in self.removed]
        kept = [m for m in base if m.value not in self.added]
        return kept + list(self.added.values())

    def change(self) -> MemberChange:
        """The edits so far as the store's ``MemberChange``."""
        return MemberChange(self.remove_all, tuple(self.removed), tuple(self.added.values()))


def apply_member_op(edits: MemberEdits, op: str, target: Target, value: Any) -> None:
    """``members`` of a group: add, replace (all), remove (all / listed in ``value`` /
    matching a filter). Member sub-attributes cannot be patched on their own."""
    where = target.text
    if target.sub_name is not None:
        raise InvalidPath(f"'{where}': member sub-attributes cannot be patched; "
                          "add or remove whole members.")
    if target.filter is not None:
        if op != "remove":
            raise InvalidPath(f"'{where}': use add with path 'members' to add members and "
                              "remove with a filter to remove them.")
        edits.remove(_filtered_ids(edits, target.filter, target, where))
        return
    if op == "remove":
        if value is None or value == [] or value == {}:
            edits.clear()  # RFC 7644 §3.5.2.2: no filter, no value: the attribute goes
        else:
            # Entra's legacy shape: remove exactly the listed members, never all of them.
            edits.remove([m.value for m in parse_members(value, where)])
        return
    members = parse_members(value, where)
    if op == "replace":
        edits.clear()
    edits.add(members)


def _filtered_ids(edits: MemberEdits, expr: Expr, target: Target, where: str) -> list[str]:
    if (isinstance(expr, Compare) and expr.op == "eq" and expr.path.lower() == "value"
            and isinstance(expr.value, str)):
        return [expr.value]
    matches = element_test(expr, target.attribute)
    current = edits.current(where)
    edits.budget.spend(len(current) * term_count(expr))
    found = []
    for member in current:
        element: dict[str, Any] = {"value": member.value}
        if member.display is not None:
            element["display"] = member.display
        if matches(element):
            found.append(member.value)
    return found
