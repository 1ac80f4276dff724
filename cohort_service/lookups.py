"""Loading the rows a form's ids (and a request's names) point at: one query per slot."""

from __future__ import annotations

import functools
import operator
import threading
import uuid
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import peewee

from cohort_service import models
from cohort_service.slots import PARENTS, SLOTS, Slot, SlotKind
from shared.compiled import CompiledQuery


@dataclass
class Rows:
    """Rows by slot and id, catalog rows by name key, and the cohort_active options."""

    items: dict[str, dict[uuid.UUID, peewee.Model]] = field(
        default_factory=lambda: {slot.name: {} for slot in SLOTS}
    )
    by_name: dict[str, dict[str, peewee.Model]] = field(
        default_factory=lambda: {slot.name: {} for slot in SLOTS}
    )
    cohort_active: dict[str, uuid.UUID] = field(default_factory=dict)  # "true" -> option id

    def add(self, slot: Slot, row: peewee.Model) -> None:
        self.items[slot.name][row.id] = row


def fetch_rows(
    owner: str,
    ids: Mapping[str, Collection[uuid.UUID]],
    names: Mapping[str, Collection[str]] | None = None,
    *,
    with_cohort_active: bool = False,
) -> Rows:
    """The rows of every slot's ids and name keys; value resources only when owner owns them.

    A slot with nothing to look up costs no query, so the count never depends on how
    many items a request or a form has.
    """
    names = names or {}
    rows = Rows()
    for slot in SLOTS:
        slot_ids = list(ids.get(slot.name, ()))
        slot_names = list(names.get(slot.name, ()))
        wants_cohort_active = with_cohort_active and slot.kind is SlotKind.FLAGS
        found: list[peewee.Model] = []
        if slot.owned and slot_ids:
            found, slot_ids = _OWNED_ROWS.get(slot, slot_ids)
        if slot_ids or slot_names or wants_cohort_active:
            read = list(_select(slot, slot_ids, slot_names, wants_cohort_active))
            if slot.owned:
                _OWNED_ROWS.put(slot, read)
            found.extend(read)
        for row in found:
            if slot.owned and row.owner != owner:
                continue  # another principal's value resource: as if it did not exist
            rows.add(slot, row)
            if slot.kind is SlotKind.CATALOG:
                rows.by_name[slot.name][row.name_key] = row
            if slot.kind is SlotKind.FLAGS and row.flag.key == models.COHORT_ACTIVE_KEY:
                rows.cohort_active[row.value] = row.id
        if slot.kind is SlotKind.VALUE:
            _attach_parents(slot, rows)
    return rows


class _OwnedRows:
    """The columns of value resources (and names, descriptions) already read, by id.

    Such a row never changes and is never deleted once committed, and every row a lookup
    reads is committed: a transaction looks its ids up before it inserts the values it
    creates (resolve, then insert). So a row read once can be handed out again without a
    query, in any later call, whoever asks (the owner is checked on each use). Each call
    gets its own model instance: callers attach parents to them. Bounded in rows and in
    characters of text (a description has up to 10,000), least recently used first out.
    """

    def __init__(self, capacity: int, max_chars: int) -> None:
        self._capacity = capacity
        self._max_chars = max_chars
        self._chars = 0
        self._columns: OrderedDict[tuple[str, uuid.UUID], dict] = OrderedDict()  # (slot name, id)
        self._lock = threading.Lock()

    def get(self, slot: Slot, ids: list[uuid.UUID]) -> tuple[list[peewee.Model], list]:
        """(rows of the ids known, the ids left to read)."""
        found, missing = [], []
        with self._lock:
            for item_id in ids:
                columns = self._columns.get((slot.name, item_id))
                if columns is None:
                    missing.append(item_id)
                else:
                    self._columns.move_to_end((slot.name, item_id))
                    found.append(columns)
        return [_row(slot.item, columns) for columns in found], missing

    def put(self, slot: Slot, rows: Iterable[peewee.Model]) -> None:
        with self._lock:
            for row in rows:
                previous = self._columns.pop((slot.name, row.id), None)
                if previous is not None:
                    self._chars -= _chars(previous)
                columns = dict(row.__data__)
                self._columns[(slot.name, row.id)] = columns
                self._chars += _chars(columns)
            while len(self._columns) > self._capacity or self._chars > self._max_chars:
                _, evicted = self._columns.popitem(last=False)
                self._chars -= _chars(evicted)


def _chars(columns: dict) -> int:
    return sum(len(value) for value in columns.values() if isinstance(value, str))


def _row(model: type[peewee.Model], columns: dict) -> peewee.Model:
    # The instance model(__no_default__=1, **columns) would be, without a setattr per field
    # (that was two thirds of a cache hit's cost).
    row = model(__no_default__=1)
    row.__data__.update(columns)
    return row


# 4,096 rows cover the bench's 1,000-item draft; 4 M characters (4 MB of ASCII, 16 MB at
# most as Python text) keep a process's RSS bounded when the rows are long (a 10,000-character
# description each: 4,096 of them were ~160 MB).
OWNED_ROWS_MAX_CHARS = 4_000_000
_OWNED_ROWS = _OwnedRows(4096, OWNED_ROWS_MAX_CHARS)


def _select(
    slot: Slot, ids: list[uuid.UUID], names: list[str], with_cohort_active: bool
) -> Iterable[peewee.Model]:
    query = _compiled(slot, with_cohort_active)
    return query(ids, names) if slot.kind is SlotKind.CATALOG else query(ids)


@functools.cache
def _compiled(slot: Slot, with_cohort_active: bool) -> CompiledQuery:
    """The slot's lookup, built once per shape (shared.compiled): building these queries
    was about a third of PatchCohortDraft's CPU.

    Value resources are found by primary key alone and their owner checked on the row: with
    `AND owner = ?` SQLite searched the owner index instead, reading every resource the
    owner ever created (EXPLAIN QUERY PLAN; 10 positions of a bench user took 390 µs).
    """
    item = slot.item
    if slot.kind is SlotKind.FLAGS:
        return CompiledQuery(
            models.database,
            lambda ids: (
                item.select(item, models.Flag)
                .join(models.Flag)
                .where(
                    _any_of(
                        item.id.in_(ids) if ids else None,
                        models.Flag.key == models.COHORT_ACTIVE_KEY if with_cohort_active else None,
                    )
                )
            ),
        )
    if slot.kind is SlotKind.CATALOG:
        return CompiledQuery(
            models.database,
            lambda ids, names: item.select().where(
                _any_of(
                    item.id.in_(ids) if ids else None, item.name_key.in_(names) if names else None
                )
            ),
        )
    if slot.kind is SlotKind.VALUE:  # no join: _attach_parents gives each row its parent
        return CompiledQuery(
            models.database, lambda ids: item.select(*_shown(item)).where(item.id.in_(ids))
        )
    return CompiledQuery(models.database, lambda ids: item.select().where(item.id.in_(ids)))


def insert_values(slot: Slot, rows: list[peewee.Model]) -> None:
    """Insert the value resources a request creates (rows of slot.item, every field set)."""
    fields = slot.item._meta.sorted_fields
    _compiled_insert(slot).raw(*([row.__data__[f.name] for row in rows] for f in fields))


@functools.cache
def _compiled_insert(slot: Slot) -> CompiledQuery:
    # One list per column; compiled, as insert_many took ~100 µs to build per slot.
    fields = slot.item._meta.sorted_fields
    return CompiledQuery(
        models.database,
        lambda *columns: slot.item.insert_many(zip(*columns, strict=True), fields=fields),
    )


def _attach_parents(slot: Slot, rows: Rows) -> None:
    """Give each value resource of slot its catalog parent (a position its simulation).

    The parents come from the rows of the parent slot, read just before (SLOTS lists it
    first; a stored form always selects them), and only the others from one more query.
    Joined to every row instead, the parent was hydrated once per item: 16% more Python
    calls reading a 1,000-item draft, 11% more for 10 items (cProfile, bench.micro).
    """
    parent_slot, field_name = PARENTS[slot.name]
    known = rows.items[parent_slot.name]
    id_name = getattr(slot.item, field_name).object_id_name
    items = rows.items[slot.name].values()
    missing = {getattr(row, id_name) for row in items} - known.keys()
    parents = dict(known)
    if missing:
        parents.update((row.id, row) for row in _compiled(parent_slot, False)(list(missing), []))
    for row in items:
        parent = parents.get(getattr(row, id_name))
        if parent is not None:  # a parent always exists (RESTRICT); else peewee loads it
            setattr(row, field_name, parent)


def _shown(model: type[peewee.Model]) -> list[peewee.Field]:
    """The columns a form shows and the checks read: all but created_at.

    Two timestamps per item (with its parent's, when it was joined) were ~15% of reading
    a 1,000-item draft, parsed for nothing (cProfile, bench.micro).
    """
    return [field for field in model._meta.sorted_fields if field.name != "created_at"]


def _any_of(*conditions):
    """The OR of the conditions given, leaving out the empty ones.

    An empty IN renders as `0 = 1`, and SQLite does not simplify `0 = 1 OR name_key IN
    (...)`: it scans the whole table instead of searching the index (EXPLAIN QUERY PLAN,
    tests/cohort_service/test_query_plans.py), so name resolution grew with the catalog.
    """
    present = [c for c in conditions if c is not None]
    return functools.reduce(operator.or_, present)
