"""Reading a PatchCohortDraftRequest: every field checked on its own, no database (rules 2-4, 12).

The result says, per slot, which ids, names and values the request gives and whether
update_mask clears it; cohort_service.resolve then looks them up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from cohort_service import validation
from cohort_service.slots import (
    ACTIVE_PATH,
    MASK_PATHS,
    PARENTS,
    PENDING_PATH,
    SLOTS,
    Slot,
    SlotKind,
)
from cohort_service.v1 import draft_service_pb2
from shared.errors import Violations


@dataclass(frozen=True)
class ParentRef:
    """The catalog entry a new value resource belongs to, by id and/or by name."""

    path: str  # of the value message, e.g. "simulation_positions[0]"
    id: uuid.UUID | None
    key: str | None  # name key
    name: str  # the name as given, for messages


@dataclass(frozen=True)
class NewValue:
    """A value resource the request creates: checked fields plus its parent reference."""

    path: str
    fields: dict  # model field -> value, parent excluded
    parent: ParentRef | None  # None for names and descriptions


@dataclass
class SlotRequest:
    ids: list[tuple[str, uuid.UUID]] = field(default_factory=list)  # (path, id)
    names: list[tuple[str, str, str]] = field(default_factory=list)  # (path, key, as given)
    values: list[NewValue] = field(default_factory=list)
    populated: bool = False  # the request fills the slot: replace it
    cleared: bool = False  # update_mask names it: clear it when not populated


@dataclass
class PatchRequest:
    draft_id: uuid.UUID | None
    slots: dict[str, SlotRequest]
    active: bool | None
    clear_active: bool
    pending: list[tuple[str, uuid.UUID]] | None  # None: marks kept
    populated_fields: list[str]  # request fields that carry a slot, for the ack check


def read_draft_id(request, violations: Violations) -> uuid.UUID | None:
    """draft_id or its legacy alias input_draft_id (rule 1)."""
    given = [(name, getattr(request, name)) for name in ("draft_id", "input_draft_id")]
    parsed = {
        name: validation.parse_uuid(violations, name, raw) for name, raw in given if raw.strip()
    }
    ids = {value for value in parsed.values() if value is not None}
    if len(ids) > 1:
        violations.add(
            "input_draft_id",
            "differs from draft_id; give the draft's id in one of them, or the same id in both",
        )
        return None
    return ids.pop() if ids else None


def read_idempotency_key(request, violations: Violations) -> str:
    key = request.idempotency_key
    if len(key) > validation.MAX_IDEMPOTENCY_KEY_LENGTH:
        violations.add(
            "idempotency_key",
            f"has {len(key)} characters; at most "
            f"{validation.MAX_IDEMPOTENCY_KEY_LENGTH} are accepted",
        )
    return key


def read_patch(request: draft_service_pb2.PatchCohortDraftRequest, violations: Violations):
    """The request as a PatchRequest; every problem found is recorded in violations."""
    cleared = _read_mask(request, violations)
    slots: dict[str, SlotRequest] = {}
    populated_fields: list[str] = []
    for slot in SLOTS:
        slot_request = SlotRequest(cleared=slot.name in cleared)
        if slot.kind is SlotKind.TEXT:
            _read_text(request, slot, slot_request, violations)
        else:
            _read_ids(request, slot, slot_request, violations)
            if slot.kind is SlotKind.CATALOG:
                _read_names(request, slot, slot_request, violations)
            elif slot.kind is SlotKind.VALUE:
                _read_values(request, slot, slot_request, violations)
        slots[slot.name] = slot_request
        populated_fields += [
            name for name in (slot.ids_field, slot.values_field) if name and _given(request, name)
        ]
    active = request.active if request.HasField("active") else None
    if active is not None:
        populated_fields.append(ACTIVE_PATH)
    pending = None
    if request.pending_ids:
        populated_fields.append(PENDING_PATH)
        pending = _read_uuid_list(request.pending_ids, PENDING_PATH, violations)
    elif PENDING_PATH in cleared:
        pending = []
    return PatchRequest(
        draft_id=read_draft_id(request, violations),
        slots=slots,
        active=active,
        clear_active=ACTIVE_PATH in cleared and active is None,
        pending=pending,
        populated_fields=populated_fields,
    )


def _given(request, name: str) -> bool:
    value = getattr(request, name)
    if isinstance(value, str | bool):
        return request.HasField(name)
    return len(value) > 0


def _read_mask(request, violations: Violations) -> set[str]:
    cleared: set[str] = set()
    if not validation.check_list_size(violations, "update_mask.paths", request.update_mask.paths):
        return cleared
    for index, path in enumerate(request.update_mask.paths):
        if path in MASK_PATHS:
            cleared.add(MASK_PATHS[path])
        else:
            violations.add(
                f"update_mask.paths[{index}]",
                f"{path!r} is not a slot of the form; accepted: {', '.join(sorted(MASK_PATHS))}",
            )
    return cleared


def _read_uuid_list(values, path: str, violations: Violations) -> list[tuple[str, uuid.UUID]]:
    if not validation.check_list_size(violations, path, values):
        return []
    parsed = []
    for index, raw in enumerate(values):
        item_path = f"{path}[{index}]"
        value = validation.parse_uuid(violations, item_path, raw)
        if value is not None:
            parsed.append((item_path, value))
    return parsed


def _read_ids(request, slot: Slot, slot_request: SlotRequest, violations: Violations) -> None:
    values = getattr(request, slot.ids_field)
    slot_request.ids = _read_uuid_list(values, slot.ids_field, violations)
    slot_request.populated |= len(values) > 0


def _read_names(request, slot: Slot, slot_request: SlotRequest, violations: Violations) -> None:
    values = getattr(request, slot.values_field)
    slot_request.populated |= len(values) > 0
    if not validation.check_list_size(violations, slot.values_field, values):
        return
    for index, raw in enumerate(values):
        path = f"{slot.values_field}[{index}]"
        name = validation.check_name(violations, path, raw, what=f"{slot.noun} name")
        if name is not None:
            slot_request.names.append((path, name.casefold(), name))


def _read_text(request, slot: Slot, slot_request: SlotRequest, violations: Violations) -> None:
    """name/name_id or description/description_id (rule 4)."""
    has_text, has_id = request.HasField(slot.values_field), request.HasField(slot.ids_field)
    if has_text and has_id:
        violations.add(
            slot.ids_field,
            f"give {slot.values_field} (to create a {slot.noun}) or {slot.ids_field} "
            f"(to select one), not both",
        )
        return
    if not (has_text or has_id):
        return
    field_name = slot.values_field if has_text else slot.ids_field
    raw = getattr(request, field_name)
    if not raw.strip() and slot_request.cleared:
        return  # empty and named in update_mask: clears the slot (AIP-134)
    if not raw:
        violations.add(
            field_name,
            f"is empty; to clear the {slot.noun}, leave it unset and name "
            f"{slot.name!r} in update_mask",
        )
        return
    slot_request.populated = True
    if has_id:
        parsed = validation.parse_uuid(violations, field_name, raw)
        if parsed is not None:
            slot_request.ids.append((field_name, parsed))
        return
    if slot.name == "name":
        text = validation.check_name(violations, field_name, raw)
    else:
        text = validation.check_description(violations, field_name, raw, required=True)
    if text is not None:
        slot_request.values.append(NewValue(field_name, {"value": text}, None))


def _read_values(request, slot: Slot, slot_request: SlotRequest, violations: Violations) -> None:
    values = getattr(request, slot.values_field)
    slot_request.populated |= len(values) > 0
    if not validation.check_list_size(violations, slot.values_field, values):
        return
    parent_slot, parent_field = PARENTS[slot.name]
    for index, message in enumerate(values):
        path = f"{slot.values_field}[{index}]"
        before = len(violations)
        parent = _read_parent(message, path, parent_slot, parent_field, violations)
        fields = _VALUE_READERS[slot.name](message, path, violations)
        if len(violations) == before:
            slot_request.values.append(NewValue(path, fields, parent))


def _read_parent(
    message, path: str, parent_slot: Slot, parent_field: str, violations: Violations
) -> ParentRef | None:
    raw_id, raw_name = getattr(message, f"{parent_field}_id"), getattr(message, parent_field)
    if not raw_id.strip() and not raw_name.strip():
        violations.add(
            path,
            f"needs its {parent_slot.noun}: give {parent_field}_id or {parent_field} (its name)",
        )
        return None
    parent_id = None
    if raw_id.strip():
        parent_id = validation.parse_uuid(violations, f"{path}.{parent_field}_id", raw_id)
    name = raw_name.strip()
    return ParentRef(path, parent_id, name.casefold() if name else None, name)


def _read_position(message, path: str, violations: Violations) -> dict:
    return {
        "title": validation.check_name(violations, f"{path}.title", message.title, what="title"),
        "description": validation.check_description(
            violations, f"{path}.description", message.description
        ),
    }


def _read_availability(message, path: str, violations: Violations) -> dict:
    times: dict[str, datetime | None] = {}
    for name in ("start_time", "end_time"):
        times[name] = None
        if not message.HasField(name):
            violations.add(f"{path}.{name}", "is required")
            continue
        try:
            times[name] = getattr(message, name).ToDatetime()
        except (ValueError, OverflowError):
            violations.add(f"{path}.{name}", "is not a valid timestamp")
    start, end = times["start_time"], times["end_time"]
    if start is not None and end is not None and not start < end:
        violations.add(f"{path}.end_time", "must be after start_time")
    return times


def _read_persona(message, path: str, violations: Violations) -> dict:
    return {
        "persona": validation.check_name(
            violations, f"{path}.persona", message.persona, what="persona"
        ),
        "description": validation.check_description(
            violations, f"{path}.description", message.description
        ),
    }


_VALUE_READERS = {
    "simulation_positions": _read_position,
    "simulation_availability": _read_availability,
    "profile_personas": _read_persona,
}
