"""Rows to proto messages: plain functions, one per message."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from google.protobuf import timestamp_pb2

from cohort_service import expiry, models
from cohort_service.lookups import Rows
from cohort_service.slots import Slot, SlotKind
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


# A DraftFormState is sent as the concatenation of three serialized parts (see
# cohort_service.form_cache): the draft row's fields, its proposals, and one part per slot.


def draft_fields(draft, state: int | None = None) -> draft_pb2.DraftFormState:
    """The fields of a DraftFormState that come from the draft row itself (a Draft, or the
    StoredDraft tuple of cohort_service.drafts)."""
    return draft_pb2.DraftFormState(
        draft_id=str(draft.id),
        # ValueType is int at run time: the stubs' name for the enum's numbers.
        state=draft_pb2.DraftState.ValueType(state or draft.state),
        revision=draft.revision,
        update_time=timestamp(draft.update_time),
        etag=draft.etag,
    )


def proposal_fields(proposals: Iterable[models.Proposal]) -> draft_pb2.DraftFormState:
    """DraftFormState.proposals: the draft's pending proposals that have not expired."""
    return draft_pb2.DraftFormState(
        proposals=[
            draft_pb2.DraftProposal(
                idempotency_key=proposal.key,
                create_time=timestamp(proposal.create_time),
                expire_time=_optional_timestamp(expiry.PROPOSALS.expires(proposal.create_time)),
            )
            for proposal in proposals
        ]
    )


def slot_fields(
    slot: Slot, items: Iterable[uuid.UUID], pending: Collection[uuid.UUID], rows: Rows
) -> draft_pb2.DraftFormState:
    """A DraftFormState holding only slot's items, the pending ones among them (in
    pending_ids, in form order) and, for the flags, `active`; rows must hold the items."""
    build = _ITEM_BUILDERS.get(slot.kind) or _VALUE_BUILDERS[slot.name]
    slot_rows = rows.items[slot.name]
    message = draft_pb2.DraftFormState()
    built = []
    for item in items:
        is_pending = item in pending
        built.append(build(slot_rows[item], is_pending))
        if is_pending:
            message.pending_ids.append(str(item))
    if slot.single:
        if built:
            getattr(message, slot.name).CopyFrom(built[0])
    else:
        getattr(message, slot.name).extend(built)
    if slot.kind is SlotKind.FLAGS:
        for flag_item in message.flags:
            if flag_item.flag_key == models.COHORT_ACTIVE_KEY:
                message.active = flag_item.value == "true"
    return message


def proposals_by_draft(
    proposals: Iterable[models.Proposal],
) -> Mapping[uuid.UUID, list[models.Proposal]]:
    grouped: dict[uuid.UUID, list[models.Proposal]] = {}
    for proposal in proposals:
        grouped.setdefault(proposal.draft_id, []).append(proposal)
    return grouped
