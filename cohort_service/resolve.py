"""Resolving a read request against the store into a Change (rules 3-6), and the form checks.

Every lookup is one query per slot (cohort_service.lookups); every problem is recorded so
that one BadRequest can name them all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import peewee

from cohort_service import catalog, models
from cohort_service.forms import Change, Form
from cohort_service.lookups import Rows, fetch_rows
from cohort_service.patch_request import NewValue, PatchRequest
from cohort_service.slots import BY_NAME, FLAGS, PARENTS, SLOTS, Slot, SlotKind
from cohort_service.v1 import catalog_service_pb2
from shared.errors import Violations


@dataclass
class Resolution:
    change: Change
    rows: Rows  # every row the current form and the change point at, new ones included
    new_rows: dict[str, list[peewee.Model]]  # value resources to insert, per slot
    origins: dict[uuid.UUID, str]  # id -> the request field that put it in the change
    pending_paths: list[tuple[str, uuid.UUID]]
    slots: frozenset[str]  # the slots the change can affect (touched_slots)


# The RPC that lists each catalog slot's valid names, for "no such name" errors (SPEC §4).
_CATALOG_SERVICE = catalog_service_pb2.DESCRIPTOR.services_by_name["CohortCatalogService"]
_LIST_RPCS = {
    slot.name: f"{_CATALOG_SERVICE.full_name}/"
    + _CATALOG_SERVICE.methods_by_name[f"List{slot.name.capitalize()}"].name
    for slot in SLOTS
    if slot.kind is SlotKind.CATALOG
}
# Unknown names per call that get the closest catalog names (two small index reads each);
# the others say only where the valid names are listed, so a request of a thousand unknown
# names costs no more than one of three.
SUGGESTED_PER_CALL = 3


class _UnknownNames:
    """Records "no such name" violations, with the closest names and the List RPC."""

    def __init__(self, violations: Violations) -> None:
        self.violations = violations
        self.suggested = 0

    def add(self, path: str, slot: Slot, key: str, name: str) -> None:
        # The List RPC first: a long description is shortened from its end (shared.errors).
        text = f"no {slot.noun} named {_quoted(name, 40)}; see {_LIST_RPCS[slot.name]}"
        if self.suggested < SUGGESTED_PER_CALL:
            self.suggested += 1
            close = catalog.closest_names(slot.item, key)
            if close:
                text += f"; closest: {', '.join(_quoted(n, 30) for n in close)}"
        self.violations.add(path, text)


def _quoted(name: str, limit: int) -> str:
    return '"' + (name if len(name) <= limit else name[: limit - 1] + "…") + '"'


def resolve(owner: str, patch: PatchRequest, current: Form, violations: Violations) -> Resolution:
    """The change patch makes to current, with the rows it needs; problems go to violations."""
    unknown = _UnknownNames(violations)
    touched = touched_slots(patch)
    ids, names = _lookups(patch, current, touched)
    rows = fetch_rows(owner, ids, names, with_cohort_active=True)
    origins: dict[uuid.UUID, str] = {}
    new_rows: dict[str, list[peewee.Model]] = {}
    slots: dict[str, tuple[uuid.UUID, ...]] = {}
    for slot in SLOTS:
        request = patch.slots[slot.name]
        found = _existing(slot, request.ids, request.names, rows, violations, unknown)
        created = _create(owner, slot, request.values, rows, violations, unknown)
        new_rows[slot.name] = [row for _, row in created]
        for _, row in created:
            rows.add(slot, row)
        selected = [*found, *((path, row.id) for path, row in created)]
        for path, item in selected:
            origins.setdefault(item, path)
        if request.populated:
            slots[slot.name] = tuple(dict.fromkeys(item for _, item in selected))
        elif request.cleared:
            slots[slot.name] = ()
    cohort_active = _cohort_active(patch, rows, origins, slots.get(FLAGS.name, ()), violations)
    pending = None if patch.pending is None else frozenset(item for _, item in patch.pending)
    return Resolution(
        Change(slots, cohort_active, pending), rows, new_rows, origins, patch.pending or [], touched
    )


ALL_SLOTS = frozenset(slot.name for slot in SLOTS)


def touched_slots(patch: PatchRequest) -> frozenset[str]:
    """The slots the patch can change, and those whose rules (5-7) that can break, with
    the parents those rules read.

    The others keep their items and marks, and the rules held for them when the form was
    stored, so their rows are neither read nor checked: a one-slot patch of a 1,000-item
    draft costs what it costs on a 10-item one.
    """
    if patch.pending is not None:
        return ALL_SLOTS  # marks may move on any slot
    changed = {name for name, slot in patch.slots.items() if slot.populated or slot.cleared}
    if patch.active is not None or patch.clear_active:
        changed.add(FLAGS.name)
    touched = set(changed)
    for child, (parent, _) in PARENTS.items():  # rule 6: each item's parent is selected
        if child in changed or parent.name in changed:
            touched.update((child, parent.name))
    return frozenset(touched)


def _lookups(patch: PatchRequest, current: Form, touched: frozenset[str]):
    """Ids and name keys to fetch per slot: the request's, their parents', and the current
    form's in the slots touched but not replaced (a replaced slot's items all come from the
    request: a typical patch read its previous name and position for nothing)."""
    ids = {
        slot.name: set(current.items[slot.name])
        if slot.name in touched
        and not (patch.slots[slot.name].populated or patch.slots[slot.name].cleared)
        else set()
        for slot in SLOTS
    }
    names: dict[str, set[str]] = {slot.name: set() for slot in SLOTS}
    for slot in SLOTS:
        request = patch.slots[slot.name]
        ids[slot.name].update(item for _, item in request.ids)
        names[slot.name].update(key for _, key, _ in request.names)
        for value in request.values:
            if value.parent is not None:
                parent_slot = PARENTS[slot.name][0].name
                if value.parent.id is not None:
                    ids[parent_slot].add(value.parent.id)
                if value.parent.key is not None:
                    names[parent_slot].add(value.parent.key)
    return ids, names


def _existing(
    slot: Slot,
    ids: Iterable[tuple[str, uuid.UUID]],
    names: Iterable[tuple[str, str, str]],
    rows: Rows,
    violations: Violations,
    unknown: _UnknownNames,
) -> list[tuple[str, uuid.UUID]]:
    """The request's ids and names that exist, as (path, id); the others are violations."""
    found = []
    owned = " of yours" if slot.owned else ""
    for path, item in ids:
        if item in rows.items[slot.name]:
            found.append((path, item))
        else:
            violations.add(path, f"no {slot.noun}{owned} has id {item}")
    for path, key, name in names:
        row = rows.by_name[slot.name].get(key)
        if row is not None:
            found.append((path, row.id))
        else:
            unknown.add(path, slot, key, name)
    return found


def _create(
    owner: str,
    slot: Slot,
    values: list[NewValue],
    rows: Rows,
    violations: Violations,
    unknown: _UnknownNames,
) -> list[tuple[str, peewee.Model]]:
    """(path, unsaved row) for each value the request creates whose parent resolves."""
    created = []
    now = models.utcnow()
    for value in values:
        fields = dict(value.fields)
        if value.parent is not None:
            parent_slot, parent_field = PARENTS[slot.name]
            parent = _parent_row(parent_slot, parent_field, value, rows, violations, unknown)
            if parent is None:
                continue
            fields[parent_field] = parent
        created.append(
            (value.path, slot.item(id=uuid.uuid4(), owner=owner, created_at=now, **fields))
        )
    return created


def _parent_row(
    parent_slot: Slot,
    parent_field: str,
    value: NewValue,
    rows: Rows,
    violations: Violations,
    unknown: _UnknownNames,
):
    ref = value.parent
    assert ref is not None  # called for values that name a parent
    by_id = by_name = None
    if ref.id is not None:
        by_id = rows.items[parent_slot.name].get(ref.id)
        if by_id is None:
            violations.add(
                f"{value.path}.{parent_field}_id", f"no {parent_slot.noun} has id {ref.id}"
            )
            return None
    if ref.key is not None:
        by_name = rows.by_name[parent_slot.name].get(ref.key)
        if by_name is None:
            unknown.add(f"{value.path}.{parent_field}", parent_slot, ref.key, ref.name)
            return None
    if by_id is not None and by_name is not None and by_id.id != by_name.id:
        violations.add(
            f"{value.path}.{parent_field}",
            f"names {parent_slot.noun} {by_name.name!r} but {parent_field}_id is "
            f"{by_id.name!r}; give one of them, or both naming the same {parent_slot.noun}",
        )
        return None
    return by_id or by_name


def _cohort_active(
    patch: PatchRequest,
    rows: Rows,
    origins: Mapping[uuid.UUID, str],
    flag_ids: tuple[uuid.UUID, ...],
    violations: Violations,
) -> tuple[uuid.UUID, ...] | None:
    """What `active` does to the cohort_active selection (rule 5)."""
    if patch.active is None:
        return () if patch.clear_active else None
    value = "true" if patch.active else "false"
    chosen = rows.cohort_active[value]
    for item in flag_ids:
        option = rows.items[FLAGS.name][item]
        if option.flag.key == models.COHORT_ACTIVE_KEY and option.id != chosen:
            violations.add(
                "active",
                f"is {value} but {origins[item]} selects cohort_active option "
                f"{option.value!r}; drop one of them or make them agree",
            )
    return (chosen,)


# ---------------------------------------------------------------------------
# Checks on the resulting form (rules 5-7)
# ---------------------------------------------------------------------------


def check_form(
    form: Form,
    change: Change,
    rows: Rows,
    violations: Violations,
    origins: Mapping[uuid.UUID, str] | None = None,
    pending_paths: Iterable[tuple[str, uuid.UUID]] = (),
    slots: frozenset[str] = ALL_SLOTS,
) -> None:
    """Record every way form breaks the rules; origins name the request fields to blame.

    Only the given slots are checked (rows must hold their items): the others are as stored.
    """
    origins = origins or {}
    if FLAGS.name in slots:
        _check_exclusive_flags(form, rows, violations, origins)
    for slot_name in PARENTS:
        if slot_name in slots:
            _check_parents(BY_NAME[slot_name], form, change, rows, violations, origins)
    for path, item in pending_paths:
        if not form.holds(item):
            violations.add(
                path, f"{item} is not an item of the resulting form, so it cannot be pending"
            )


def _check_exclusive_flags(
    form: Form, rows: Rows, violations: Violations, origins: Mapping[uuid.UUID, str]
) -> None:
    chosen: dict[uuid.UUID, peewee.Model] = {}
    for item in form.items[FLAGS.name]:
        option = rows.items[FLAGS.name][item]
        flag = option.flag
        if flag.type not in models.FlagType.EXCLUSIVE:
            continue
        first = chosen.setdefault(flag.id, option)
        if first is not option:
            kind = "BOOLEAN" if flag.type == models.FlagType.BOOLEAN else "SINGLE_SELECT"
            violations.add(
                origins.get(item, FLAGS.ids_field),
                f"selects {option.value!r} of the {kind} flag {flag.key!r}, which already has "
                f"{first.value!r} selected; a {kind} flag takes at most one option",
            )


def _check_parents(
    slot: Slot,
    form: Form,
    change: Change,
    rows: Rows,
    violations: Violations,
    origins: Mapping[uuid.UUID, str],
) -> None:
    """A position or window belongs to a selected simulation, a persona to a selected profile."""
    parent_slot, parent_field = PARENTS[slot.name]
    selected = set(form.items[parent_slot.name])
    for item in form.items[slot.name]:
        row = rows.items[slot.name][item]
        parent = getattr(row, parent_field)
        if parent.id in selected:
            continue
        # An item the request did not give was orphaned by the change to the parent slot.
        path = origins.get(item) or (
            parent_slot.name if parent_slot.name in change.slots else slot.name
        )
        violations.add(
            path,
            f"{slot.noun} {item} belongs to {parent_slot.noun} {parent.name!r}, which the "
            f"draft would not select; select it in {parent_slot.name} as well",
        )
