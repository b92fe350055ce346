"""Table transactions: the operations of one change, packed into batches of at most 100
(docs/architecture.md, "Table Storage store")."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from scim_core.store.base import GROUP, USER, IndexKey, Member, Meta
from scim_core.store.errors import KeyTaken
from scim_core.store.tables import keys
from scim_core.store.tables.entities import (
    NO_COPY,
    document_copy,
    document_entity,
    entity_size,
    index_entity,
    stored_document,
)
from scim_core.store.tables.errors import Failure, StepFailed, failure_of

MAX_BATCH = 100
FEED_RESERVE = 4
"""Operations each batch keeps free for the feed row and its events (a group's own event
and its removed and added members, or a user's deletion and one group it leaves)."""
COPY_BUDGET = 256 * 1024
"""Bytes the copies of a document in its unique index rows may add to one transaction
(whose limit is 4 MiB, the document itself up to 1 MiB)."""


@dataclass(frozen=True)
class Step:
    """One operation of a transaction, with what the store needs to explain its failure."""

    verb: str
    entity: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    claims: IndexKey | None = None
    """The unique key this ``create`` takes: its conflict is that key's ``KeyTaken``."""
    optional: bool = False
    """A delete whose row may already be gone."""
    member: str | None = None
    """On each operation of a member add: the user id, whose document row must exist."""
    pair: tuple[str, str] | None = None
    """On every operation of a membership change: the group and user ids."""

    def operation(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The operation as ``TableClient.submit_transaction`` takes it."""
        return self.verb, self.entity, self.options


Unit = tuple[Step, ...]
"""The operations of one membership change, always in the same batch."""


class FeedPart(Protocol):
    """The change feed's part in a transaction (``feed.FeedWrite``): the event rows that
    ride with each batch, and the sending of the batch in the tenant's next transaction
    (``group_commit``)."""

    quiet_is_nothing: bool

    def prepare(self, batch: Sequence[Step]) -> bool:
        """Build the batch's event rows; whether there are any."""
        ...

    def send(self, table: TableClient, batch: Sequence[Step]) -> list[Mapping[str, Any]]:
        """Commit ``batch`` with its events; its operations' results. A failure of one of
        its operations is raised as ``StepFailed`` (its index in ``batch``)."""
        ...


def row(partition: str, row_key: str, **properties: Any) -> dict[str, Any]:
    """An entity of ``partition`` with RowKey ``row_key`` and ``properties``."""
    return {"PartitionKey": partition, "RowKey": row_key, **properties}


def if_match(etag: str) -> dict[str, Any]:
    """The options that make an operation conditional on ``etag``."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def pack(head: list[Step], units: Iterable[Unit], guard: Step | None = None, *,
         per_unit: int = 0) -> list[list[Step]]:
    """``head`` plus the units that fit in the first batch, the rest in later batches,
    each led by ``guard`` when given; a unit is never split. Each batch leaves
    ``FEED_RESERVE`` operations for the feed, and ``per_unit`` more for each unit (an
    event of its own)."""
    lead = [guard] if guard is not None else []
    batches = [list(head)]
    room = MAX_BATCH - FEED_RESERVE
    for unit in units:
        if len(batches[-1]) + len(unit) + per_unit > room:
            batches.append(list(lead))
            room = MAX_BATCH - FEED_RESERVE
        batches[-1].extend(unit)
        room -= per_unit
    return batches


def existence_guard(partition: str, document_row: str, meta: Mapping[str, str]) -> Step:
    """Merges the group's meta again, unconditionally but only if the row exists: a later
    batch of a membership change that carries it cannot land after the group is deleted,
    so no membership row outlives its group."""
    return Step("update", row(partition, document_row, **meta), {"mode": UpdateMode.MERGE})


def chunked(units: Sequence[Unit]) -> list[list[Step]]:
    """``units`` in as few batches as hold them."""
    return [batch for batch in pack([], units) if batch]


def added_users(batches: Iterable[Sequence[Step]]) -> set[str]:
    """The users whose membership the operations of ``batches`` add."""
    return {step.member for batch in batches for step in batch if step.member is not None}


def missing_member(error: StepFailed, steps: Sequence[Step]) -> str | None:
    """The user id whose document row a failed batch of member adds did not find."""
    index = error.index
    if failure_of(error) is Failure.MISSING and 0 <= index < len(steps):
        return steps[index].member
    return None


def submit(table: TableClient, steps: Sequence[Step], *, drop_missing_members: bool = False,
           feed: FeedPart | None = None) -> list[Mapping[str, Any]]:
    """One transaction. A delete marked optional whose row is already gone is dropped and
    the rest resubmitted, so removing what is not there is not an error; for a membership
    both of its deletes go, so a removal never deletes one row of a pair (storage writes a
    pair whole; an emulator that lets a concurrent batch's half be seen would otherwise
    leave half a pair). With ``drop_missing_members`` so is the add of a member whose user
    is gone. With ``feed``, the transaction also appends the events of what it holds, and
    one that lost the feed row to another writer is resubmitted with later positions; a
    member-only one (``feed.quiet_is_nothing``) that, after those drops, would emit no event
    changes nothing and is not sent. Returns the results of the operations sent ([] when
    none was). Every other failure of the transaction is raised as ``StepFailed``, its
    ``index`` naming the failed operation in ``steps``."""
    pending = list(enumerate(steps))
    while True:
        batch = [step for _, step in pending]
        eventful = feed is not None and feed.prepare(batch)
        if not eventful and (not batch or (feed is not None and feed.quiet_is_nothing)):
            return []
        try:
            return _attempt(table, batch, feed)
        except StepFailed as failure:
            error = failure.__cause__
            assert isinstance(error, TableTransactionError)
            index = failure.index
            position, failed = pending[index] if 0 <= index < len(pending) else (-1, None)
            step_failed = StepFailed(position, error)
            if failed is None:
                raise step_failed from error
            if failure_of(error) is Failure.MISSING and failed.optional:
                if failed.pair is None:
                    del pending[index]
                else:
                    pending = [(at, step) for at, step in pending if step.pair != failed.pair]
                continue
            gone = missing_member(step_failed, steps) if drop_missing_members else None
            if gone is not None:
                pending = [(at, step) for at, step in pending if step.member != gone]
                continue
            raise step_failed from error


def _attempt(table: TableClient, batch: Sequence[Step],
             feed: FeedPart | None) -> list[Mapping[str, Any]]:
    """One transaction of ``batch``; with ``feed``, in the tenant's next transaction with
    its events (and other writes' batches, ``group_commit``). Its results; a failed
    operation of ``batch`` raises ``StepFailed`` with its index in ``batch``."""
    if feed is not None:
        return feed.send(table, batch)
    try:
        return table.submit_transaction([step.operation() for step in batch])
    except TableTransactionError as error:
        raise StepFailed(error.index, error) from error


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


def copy_for(document_row: Mapping[str, Any], rows: int) -> dict[str, Any] | None:
    """What each of ``rows`` unique index rows carries of ``document_row`` (as it will be
    stored): a copy, or None when the document is more than one chunk or its copies would
    add more than ``COPY_BUDGET`` bytes to the transaction (those rows only point to it)."""
    copy = document_copy(document_row)
    if copy is None or rows * entity_size({"PartitionKey": "", "RowKey": "", **copy}
                                          ) > COPY_BUDGET:
        return None
    return copy


def copy_into(steps: Iterable[Step], document_row: Mapping[str, Any]) -> None:
    """Put a copy of ``document_row`` in the unique index rows among ``steps`` (``copy_for``)."""
    unique = [step for step in steps if step.claims is not None]
    copy = copy_for(document_row, len(unique))
    if copy is not None:
        for step in unique:
            step.entity.update(copy)


def document_steps(partition: str, kind: str, resource_id: str, old_rows: Sequence[str],
                   etag: str, *, meta: Meta, document: Mapping[str, Any],
                   indexes: Sequence[IndexKey] | None, epoch: int | None = None,
                   copies: bool = False) -> tuple[list[Step], dict[str, Any]]:
    """Replacing the document row that owns the index rows ``old_rows`` under If-Match
    ``etag``, with the swap of its index rows (none when ``indexes`` is None); and the
    document as stored. With ``copies``, every unique index row the document keeps is
    written again in the same transaction, with the new copy of the document (or, when it
    is not copied, without one), so a copy never disagrees with its document."""
    old = set(old_rows)
    new_steps = {} if indexes is None else index_steps(partition, kind, resource_id, indexes)
    new_rows = list(old_rows) if indexes is None else list(new_steps)
    entity = document_entity(partition, keys.document_key(kind, resource_id), kind=kind,
                             resource_id=resource_id, document=document, meta=meta,
                             index_rows=new_rows)
    if epoch:
        entity["epoch"] = epoch
    head = [Step("update", entity, {"mode": UpdateMode.REPLACE, **if_match(etag)})]
    if indexes is not None:
        head += [Step("delete", row(partition, gone), optional=True)
                 for gone in old_rows if gone not in new_steps]
        head += [step for new, step in new_steps.items() if new not in old]
        if copies:
            head += [Step("upsert", step.entity, {"mode": UpdateMode.REPLACE})
                     for new, step in new_steps.items()
                     if new in old and step.claims is not None]
            copy_into(new_steps.values(), entity)
    elif copies:
        kept = [r for r in old_rows if keys.is_unique_index_key(kind, r)]
        merged = copy_for(entity, len(kept)) or NO_COPY
        head += [Step("update", row(partition, r, **merged), {"mode": UpdateMode.MERGE})
                 for r in kept]
    return head, stored_document(entity)


def add_unit(partition: str, group_id: str, member: Member) -> Unit:
    """Both membership rows, then the user's row merged with nothing (If-Match: *). The
    merge comes last so that a reader who sees the user's etag move (a user delete) also
    sees the rows, even on a storage emulator that applies a batch's operations one by one
    where concurrent readers can see them."""
    user_id = member.value
    forward = row(partition, keys.member_key(group_id, user_id),
                  groupId=group_id, userId=user_id)
    if member.display is not None:
        forward["display"] = member.display
    reverse = row(partition, keys.member_of_key(user_id, group_id),
                  userId=user_id, groupId=group_id)
    replace = {"mode": UpdateMode.REPLACE}
    pair = (group_id, user_id)
    return (Step("upsert", forward, replace, member=user_id, pair=pair),
            Step("upsert", reverse, replace, member=user_id, pair=pair),
            Step("update", row(partition, keys.document_key(USER, user_id)),
                 {"mode": UpdateMode.MERGE}, member=user_id, pair=pair))


def remove_unit(partition: str, group_id: str, user_id: str,
                stamp: tuple[str, str] | None = None) -> Unit:
    """The optional deletes of both rows of one membership; with ``stamp`` (a deleted
    user's group), the group's ``lastModified`` and ``version`` merged too, if it exists."""
    pair = (group_id, user_id)
    unit: Unit = (
        Step("delete", row(partition, keys.member_key(group_id, user_id)), optional=True,
             pair=pair),
        Step("delete", row(partition, keys.member_of_key(user_id, group_id)),
             optional=True, pair=pair))
    if stamp is None:
        return unit
    touch = row(partition, keys.document_key(GROUP, group_id), lastModified=stamp[0],
                version=stamp[1])
    return (*unit, Step("update", touch, {"mode": UpdateMode.MERGE}, optional=True,
                        pair=pair))


def add_units(partition: str, group_id: str, members: Iterable[Member]) -> list[Unit]:
    """Units for ``members`` in user id order; a user listed twice counts once (the
    last listing wins)."""
    latest = {member.value: member for member in members}
    return [add_unit(partition, group_id, latest[user_id]) for user_id in sorted(latest)]


def duplicate_of(steps: Sequence[Step], index: int, resource_id: str,
                 owner: Callable[[str], str | None]) -> KeyTaken:
    """The unique key a batch failed on with 409: the failed operation's, or, when storage
    did not say which operation failed, the first claimed row that ``owner`` (a read of the
    row's id) shows in another resource's hands; else the document's own id."""
    claimed = steps[index].claims if 0 <= index < len(steps) else None
    if claimed is not None:
        return KeyTaken(claimed)
    for step in steps:
        if step.claims is not None and owner(step.entity["RowKey"]) not in (None, resource_id):
            return KeyTaken(step.claims)
    return KeyTaken(IndexKey("id", resource_id, True))
