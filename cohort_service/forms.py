"""A draft's form as ids per slot, the changes a patch makes to it, and their storage."""

from __future__ import annotations

import functools
import json
import operator
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import peewee

from cohort_service.models import database
from cohort_service.slots import FLAGS, SLOTS, Slot
from shared.compiled import CompiledQuery, unconverted

Ids = tuple[uuid.UUID, ...]


class PackedIds(Sequence[uuid.UUID]):
    """A slot's ids as stored in a draft's form bytes (16 bytes each), made UUIDs only when
    iterated: a patch of one slot leaves the others' ids as they are, and making 1,000 UUIDs
    took as long as the rest of such a patch (cohort_service.form_cache)."""

    __slots__ = ("_ids", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._ids: Ids | None = None

    def _decoded(self) -> Ids:
        if self._ids is None:
            raw = self.raw
            self._ids = tuple(uuid.UUID(bytes=raw[k : k + 16]) for k in range(0, len(raw), 16))
        return self._ids

    def __len__(self) -> int:
        return len(self.raw) // 16

    def __getitem__(self, index):  # type: ignore[override]  # as tuple's
        return self._decoded()[index]

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(self._decoded())

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, uuid.UUID):
            return False
        found = self.raw.find(item.bytes)
        while found != -1 and found % 16:  # a match across two ids is none
            found = self.raw.find(item.bytes, found + 1)
        return found != -1

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedIds):
            return self.raw == other.raw
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside; compared by value


SlotIds = Ids | PackedIds


@dataclass(frozen=True)
class Form:
    """What a draft links to: ids per slot in form order, and the ids marked pending."""

    items: Mapping[str, SlotIds] = field(default_factory=lambda: {slot.name: () for slot in SLOTS})
    pending: frozenset[uuid.UUID] = frozenset()

    def holds(self, item: uuid.UUID) -> bool:
        return any(item in ids for ids in self.items.values())

    def slot_unchanged(self, slot_name: str, other: Form) -> bool:
        """Whether slot_name has the same items and pending marks in both forms (without
        making the ids UUIDs when both are the same stored ids)."""
        items = self.items[slot_name]
        if items is not other.items[slot_name] and items != other.items[slot_name]:
            return False
        return not any(item in items for item in self.pending ^ other.pending)


@dataclass(frozen=True)
class Change:
    """What a patch does to a form, resolved to ids; also how a proposal is stored.

    slots: replaced slots (an empty tuple clears one); slots not named stay as they are.
    cohort_active: None leaves the cohort_active selection alone, () removes it, (id,)
    selects that option in place of any other. pending: None keeps the marks on the items
    that remain; a set replaces them.
    """

    slots: Mapping[str, Ids] = field(default_factory=dict)
    cohort_active: Ids | None = None
    pending: frozenset[uuid.UUID] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "slots": {name: [str(i) for i in ids] for name, ids in self.slots.items()},
                "cohort_active": _strings(self.cohort_active),
                "pending": _strings(self.pending),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Change:
        data = json.loads(text)
        return cls(
            slots={name: _ids(ids) for name, ids in data["slots"].items()},
            cohort_active=_uuids(data["cohort_active"]),
            pending=None if data["pending"] is None else frozenset(_ids(data["pending"])),
        )

    def ids(self) -> dict[str, set[uuid.UUID]]:
        """Every id the change names, per slot."""
        named = {name: set(ids) for name, ids in self.slots.items()}
        named.setdefault(FLAGS.name, set()).update(self.cohort_active or ())
        return named


def _strings(ids: Iterable[uuid.UUID] | None) -> list[str] | None:
    return None if ids is None else sorted(str(i) for i in ids)


def _uuids(strings: list[str] | None) -> Ids | None:
    return None if strings is None else _ids(strings)


def _ids(strings: list[str]) -> Ids:
    return tuple(uuid.UUID(s) for s in strings)


def apply_change(form: Form, change: Change, cohort_active_options: Collection[uuid.UUID]) -> Form:
    """The form after change. Pending marks on items that left the form are dropped."""
    items = dict(form.items)
    items.update(change.slots)
    if change.cohort_active is not None:
        # `active` changes only the cohort_active selection (rule 5).
        chosen = change.cohort_active
        flags = items[FLAGS.name]
        if chosen and chosen[0] in flags:
            items[FLAGS.name] = tuple(
                f for f in flags if f not in cohort_active_options or f == chosen[0]
            )
        else:
            items[FLAGS.name] = tuple(f for f in flags if f not in cohort_active_options) + chosen
    pending = form.pending if change.pending is None else change.pending
    result = Form(items, frozenset())
    return Form(items, frozenset(item for item in pending if result.holds(item)))


# ---------------------------------------------------------------------------
# Storage: one link table per slot; a query per slot, never per item.
# ---------------------------------------------------------------------------


def _forms_query(draft_ids: list) -> peewee.SelectBase:
    parts = [
        slot.link.select(
            peewee.Value(index).alias("slot"),
            slot.link.draft,
            slot.link.item,
            slot.link.pending,
            slot.link.position,
        ).where(slot.link.draft.in_(draft_ids))
        for index, slot in enumerate(SLOTS)
    ]
    union = functools.reduce(operator.add, parts)  # `+` is UNION ALL
    return union.order_by(peewee.SQL("1"), peewee.SQL("2"), peewee.SQL("5")).tuples()


# Built once per number of drafts (shared.compiled): the ten-part UNION took ~40% of
# GetCohortDraft's CPU to build, each call.
_FORMS = CompiledQuery(database, _forms_query)


def load_forms(draft_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Form]:
    """The stored forms of the given drafts: one query for every slot, whatever their number.

    One UNION ALL of the link tables, not a query per slot: peewee spends ~150 µs building
    and running each query, and nine of them were half of what GetCohortDraft cost (bench).
    """
    if not draft_ids:
        return {}
    items: dict[uuid.UUID, dict[str, list[uuid.UUID]]] = {
        draft_id: {slot.name: [] for slot in SLOTS} for draft_id in draft_ids
    }
    pending: dict[uuid.UUID, set[uuid.UUID]] = {draft_id: set() for draft_id in draft_ids}
    for index, draft_id, item_id, is_pending, _ in _FORMS(list(draft_ids)):
        # A compound query's rows come unconverted: UUIDs are hex text on SQLite.
        draft_id, item_id = _uuid(draft_id), _uuid(item_id)
        items[draft_id][SLOTS[index].name].append(item_id)
        if is_pending:
            pending[draft_id].add(item_id)
    return {
        draft_id: Form(
            {name: tuple(ids) for name, ids in slots.items()}, frozenset(pending[draft_id])
        )
        for draft_id, slots in items.items()
    }


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def save_form(draft_id: uuid.UUID, old: Form, new: Form) -> None:
    """Rewrite the link tables of the slots whose items or pending marks differ."""
    for slot in SLOTS:
        if old.slot_unchanged(slot.name, new):
            continue
        before = old.items[slot.name]
        after = [(i, i in new.pending) for i in new.items[slot.name]]
        delete, insert = _link_writes(slot)
        if len(before) == len(after) == 1:  # a name or description: one statement, not two
            _link_replace(slot).raw(after[0][0], after[0][1], draft_id)
            continue
        if before:
            delete.raw(draft_id)
        if after:
            insert.raw(
                [draft_id] * len(after),
                [item for item, _ in after],
                [is_pending for _, is_pending in after],
                list(range(len(after))),
            )


@functools.cache
def _link_replace(slot: Slot) -> CompiledQuery:
    link = slot.link
    return CompiledQuery(
        database,
        lambda item, pending, draft: link.update(item=item, pending=unconverted(pending)).where(
            link.draft == draft
        ),
    )


@functools.cache
def _link_writes(slot: Slot) -> tuple[CompiledQuery, CompiledQuery]:
    """The slot's link rewrite, compiled (shared.compiled): each peewee insert took ~100 µs
    to build, and a typical patch rewrites two slots. The insert takes one list per column."""
    link = slot.link
    delete = CompiledQuery(database, lambda draft: link.delete().where(link.draft == draft))
    insert = CompiledQuery(
        database,
        lambda drafts, items, pending, positions: link.insert_many(
            zip(drafts, items, map(unconverted, pending), positions, strict=True),
            fields=[link.draft, link.item, link.pending, link.position],
        ),
    )
    return delete, insert
