"""Table transactions: the operations of one change, packed into batches of at most 100.

A batch (entity group transaction) is atomic, holds at most 100 operations on one
partition, and names each entity once. A membership is two rows (``member:`` and
``memberOf:``) that always travel in the same batch, so the two directions agree after
every batch; a change's own operations (its *head*) go first, with as many pairs as fit,
and the remaining pairs follow in batches of 49 led by a write of the group row that fails
if the group is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from scim_core.store import table_keys as keys
from scim_core.store.base import DuplicateKey, IndexKey, Member, Meta
from scim_core.store.table_entities import (
    document_entity,
    index_entity,
    stored_document,
    stored_index_rows,
)

MAX_BATCH = 100
PAIRS_PER_BATCH = MAX_BATCH // 2


@dataclass(frozen=True)
class Step:
    """One operation of a transaction, with what the store needs to explain its failure."""

    verb: str
    entity: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    claims: IndexKey | None = None
    """The unique key this ``create`` takes: its conflict is that key's ``DuplicateKey``."""
    optional: bool = False
    """A delete whose row may already be gone."""

    def operation(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return self.verb, self.entity, self.options


Pair = tuple[Step, Step]


def row(partition: str, row_key: str, **properties: Any) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": row_key, **properties}


def if_match(etag: str) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def table_missing(error: Exception) -> bool:
    code: object = getattr(error, "error_code", None)
    return code == "TableNotFound"


def flatten(pairs: Iterable[Pair]) -> list[Step]:
    return [step for pair in pairs for step in pair]


def pack(head: list[Step], pairs: Sequence[Pair],
         guard: Step | None = None) -> list[list[Step]]:
    """``head`` plus the pairs that fit in the first batch, the rest in later batches,
    each led by ``guard`` when given; a pair is never split."""
    room = max(0, (MAX_BATCH - len(head)) // 2)
    lead = [guard] if guard is not None else []
    per_batch = (MAX_BATCH - len(lead)) // 2
    batches = [head + flatten(pairs[:room])]
    batches += [lead + flatten(pairs[i:i + per_batch])
                for i in range(room, len(pairs), per_batch)]
    return batches


def existence_guard(partition: str, document_row: str, meta: Mapping[str, str]) -> Step:
    """Merges the group's meta again, unconditionally but only if the row exists: a later
    batch of a membership change that carries it cannot land after the group is deleted,
    so no membership row outlives its group."""
    return Step("update", row(partition, document_row, **meta), {"mode": UpdateMode.MERGE})


def chunked(pairs: Sequence[Pair]) -> list[list[Step]]:
    return [flatten(pairs[i:i + PAIRS_PER_BATCH]) for i in range(0, len(pairs), PAIRS_PER_BATCH)]


def submit(table: TableClient, steps: Sequence[Step]) -> list[Mapping[str, Any]]:
    """One transaction. A delete marked optional whose row is already gone is dropped and
    the rest resubmitted, so removing what is not there is not an error; every other
    failure is raised."""
    pending = list(steps)
    while pending:
        try:
            return table.submit_transaction([step.operation() for step in pending])
        except TableTransactionError as error:
            index = error.index
            if (error.status_code == 404 and not table_missing(error)
                    and 0 <= index < len(pending) and pending[index].optional):
                del pending[index]
                continue
            raise
    return []


def index_steps(partition: str, kind: str, resource_id: str,
                indexes: Sequence[IndexKey]) -> dict[str, Step]:
    """The index rows of a resource by RowKey: a unique one is inserted with ``create``
    (so a taken value fails the batch), a non-unique one upserted."""
    steps: dict[str, Step] = {}
    for key in indexes:
        if key.unique:
            row_key = keys.unique_index_key(kind, key.name, key.value)
            entity = index_entity(partition, row_key, key=key, resource_id=resource_id)
            steps[row_key] = Step("create", entity, claims=key)
        else:
            row_key = keys.index_key(kind, key.name, key.value, resource_id)
            entity = index_entity(partition, row_key, key=key, resource_id=resource_id)
            steps[row_key] = Step("upsert", entity, {"mode": UpdateMode.REPLACE})
    return steps


def document_steps(partition: str, kind: str, resource_id: str, current: TableEntity,
                   etag: str, *, meta: Meta, document: Mapping[str, Any],
                   indexes: Sequence[IndexKey] | None) -> tuple[list[Step], dict[str, Any]]:
    """Replacing the document row read as ``current`` under If-Match ``etag``, with the
    swap of its index rows (none when ``indexes`` is None); and the document as stored."""
    old_rows = stored_index_rows(current)
    new_steps = {} if indexes is None else index_steps(partition, kind, resource_id, indexes)
    new_rows = old_rows if indexes is None else list(new_steps)
    entity = document_entity(partition, current["RowKey"], kind=kind, resource_id=resource_id,
                             document=document, meta=meta, index_rows=new_rows)
    head = [Step("update", entity, {"mode": UpdateMode.REPLACE, **if_match(etag)})]
    if indexes is not None:
        head += [Step("delete", row(partition, old), optional=True)
                 for old in old_rows if old not in new_steps]
        head += [step for new, step in new_steps.items() if new not in old_rows]
    return head, stored_document(entity)


def add_pair(partition: str, group_id: str, member: Member) -> Pair:
    forward = row(partition, keys.member_key(group_id, member.value),
                  groupId=group_id, userId=member.value)
    if member.display is not None:
        forward["display"] = member.display
    reverse = row(partition, keys.member_of_key(member.value, group_id),
                  userId=member.value, groupId=group_id)
    replace = {"mode": UpdateMode.REPLACE}
    return Step("upsert", forward, replace), Step("upsert", reverse, replace)


def remove_pair(partition: str, group_id: str, user_id: str) -> Pair:
    return (Step("delete", row(partition, keys.member_key(group_id, user_id)), optional=True),
            Step("delete", row(partition, keys.member_of_key(user_id, group_id)),
                 optional=True))


def add_pairs(partition: str, group_id: str, members: Iterable[Member]) -> list[Pair]:
    """Pairs for ``members`` in user id order; a user listed twice counts once (the
    last listing wins)."""
    latest = {member.value: member for member in members}
    return [add_pair(partition, group_id, latest[user_id]) for user_id in sorted(latest)]


def duplicate_of(steps: Sequence[Step], index: int, resource_id: str,
                 owner: Callable[[str], str | None]) -> DuplicateKey:
    """The unique key a batch failed on with 409: the failed operation's, or, when storage
    did not say which operation failed, the first claimed row that ``owner`` (a read of the
    row's id) shows in another resource's hands; else the document's own id."""
    claimed = steps[index].claims if 0 <= index < len(steps) else None
    if claimed is not None:
        return DuplicateKey(claimed)
    for step in steps:
        if step.claims is not None and owner(step.entity["RowKey"]) not in (None, resource_id):
            return DuplicateKey(step.claims)
    return DuplicateKey(IndexKey("id", resource_id, True))
