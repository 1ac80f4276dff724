"""Rows to proto messages: plain functions, one per message."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime

from google.protobuf import timestamp_pb2

from cohort_service import expiry, models
from cohort_service.forms import Form
from cohort_service.lookups import Rows
from cohort_service.slots import SLOTS, SlotKind
from cohort_service.v1 import catalog_pb2, draft_pb2
from shared.columns import timestamp  # by arithmetic: Timestamp.FromDatetime costs 3 times more

# ---------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------


def catalog_entry(message_type, row: models.CatalogEntry):
    """A Department, Simulation or Profile message from its row."""
    return message_type(id=str(row.id), name=row.name)


def flag(row: models.Flag, options: Iterable[models.FlagOption]) -> catalog_pb2.Flag:
    return catalog_pb2.Flag(
        id=str(row.id),
        key=row.key,
        type=row.type,
        options=[
            catalog_pb2.FlagOption(id=str(option.id), value=option.value, label=option.label)
            for option in options
        ],
    )


# ---------------------------------------------------------------------------
# Draft forms
# ---------------------------------------------------------------------------


def _text_item(row, pending: bool) -> draft_pb2.DraftTextItem:
    return draft_pb2.DraftTextItem(id=str(row.id), value=row.value, pending=pending)


def _flag_item(row: models.FlagOption, pending: bool) -> draft_pb2.DraftFlagItem:
    return draft_pb2.DraftFlagItem(
        flag_id=str(row.flag.id),
        flag_key=row.flag.key,
        option_id=str(row.id),
        value=row.value,
        pending=pending,
    )


def _catalog_item(row: models.CatalogEntry, pending: bool) -> draft_pb2.DraftCatalogItem:
    return draft_pb2.DraftCatalogItem(id=str(row.id), name=row.name, pending=pending)


def _position_item(row: models.SimulationPosition, pending: bool):
    return draft_pb2.DraftSimulationPositionItem(
        id=str(row.id),
        simulation_id=str(row.simulation.id),
        simulation=row.simulation.name,
        title=row.title,
        description=row.description,
        pending=pending,
    )


def _availability_item(row: models.SimulationAvailability, pending: bool):
    return draft_pb2.DraftSimulationAvailabilityItem(
        id=str(row.id),
        simulation_id=str(row.simulation.id),
        simulation=row.simulation.name,
        start_time=timestamp(row.start_time),
        end_time=timestamp(row.end_time),
        pending=pending,
    )


def _persona_item(row: models.ProfilePersona, pending: bool):
    return draft_pb2.DraftProfilePersonaItem(
        id=str(row.id),
        profile_id=str(row.profile.id),
        profile=row.profile.name,
        persona=row.persona,
        description=row.description,
        pending=pending,
    )


_ITEM_BUILDERS = {
    SlotKind.TEXT: _text_item,
    SlotKind.FLAGS: _flag_item,
    SlotKind.CATALOG: _catalog_item,
}
_VALUE_BUILDERS = {
    "simulation_positions": _position_item,
    "simulation_availability": _availability_item,
    "profile_personas": _persona_item,
}


def _optional_timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    return None if value is None else timestamp(value)


def form_state(
    draft: models.Draft,
    form: Form,
    rows: Rows,
    proposals: Iterable[models.Proposal] = (),
    *,
    state: int | None = None,
) -> draft_pb2.DraftFormState:
    """The DraftFormState of draft showing form; rows must hold every id of the form."""
    message = draft_pb2.DraftFormState(
        draft_id=str(draft.id),
        # ValueType is int at run time: the stubs' name for the enum's numbers.
        state=draft_pb2.DraftState.ValueType(state or draft.state),
        revision=draft.revision,
        pending_ids=[str(item) for item in form.pending_in_order()],
        proposals=[
            draft_pb2.DraftProposal(
                idempotency_key=proposal.key,
                create_time=timestamp(proposal.create_time),
                expire_time=_optional_timestamp(expiry.PROPOSALS.expires(proposal.create_time)),
            )
            for proposal in proposals
        ],
        update_time=timestamp(draft.update_time),
        etag=draft.etag,
    )
    for slot in SLOTS:
        build = _ITEM_BUILDERS.get(slot.kind) or _VALUE_BUILDERS[slot.name]
        items = [
            build(rows.items[slot.name][item], item in form.pending)
            for item in form.items[slot.name]
        ]
        if slot.single:
            if items:
                getattr(message, slot.name).CopyFrom(items[0])
        else:
            getattr(message, slot.name).extend(items)
    for item in message.flags:
        if item.flag_key == models.COHORT_ACTIVE_KEY:
            message.active = item.value == "true"
    return message


def proposals_by_draft(
    proposals: Iterable[models.Proposal],
) -> Mapping[uuid.UUID, list[models.Proposal]]:
    grouped: dict[uuid.UUID, list[models.Proposal]] = {}
    for proposal in proposals:
        grouped.setdefault(proposal.draft_id, []).append(proposal)
    return grouped
