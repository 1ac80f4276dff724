"""Reading and deleting drafts, and assembling their form states in a fixed number of queries."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from peewee import fn

from cohort_service import draft_events, expiry, form_cache, mapping
from cohort_service.draft_events import Type
from cohort_service.form_cache import SerializedForm, serialize
from cohort_service.forms import Form, load_forms
from cohort_service.lookups import Rows, fetch_rows
from cohort_service.models import Draft, DraftState, Proposal, ProposalDecision, database
from cohort_service.slots import SLOTS
from cohort_service.v1 import draft_pb2
from shared.budget import RESOURCE_MAX_BYTES, items_within, page_within
from shared.compiled import CompiledQuery
from shared.db import read_transaction
from shared.errors import InvalidArgument, NotFound

DRAFT_NOT_FOUND = "DRAFT_NOT_FOUND"

# Compiled once (shared.compiled): building these was a third of GetCohortDraft's CPU.
_OWN_DRAFT = CompiledQuery(
    database, lambda i, owner: Draft.select().where((Draft.id == i) & (Draft.owner == owner))
)
_OWN_DRAFT_LOCKED = CompiledQuery(
    database,
    lambda i, owner: Draft.select().where((Draft.id == i) & (Draft.owner == owner)).for_update(),
)
# Only what the form shows: a pending proposal's stored change can be large.
# Pending proposals staged after a time: the ones that have not expired (cohort_service.expiry).
_PENDING_PROPOSALS = CompiledQuery(
    database,
    lambda draft_ids, after: (
        Proposal.select(Proposal.id, Proposal.draft_id, Proposal.key, Proposal.create_time)
        .where(
            Proposal.draft_id.in_(draft_ids)
            & (Proposal.decision == ProposalDecision.PENDING)
            & (Proposal.create_time > after)
        )
        .order_by(Proposal.create_time, Proposal.id)
    ),
)


class StoredDraft(NamedTuple):
    """The columns of a draft row that showing it needs, as the driver returns them."""

    id: uuid.UUID  # given by the caller: SQLite returns the column as hex text
    state: int
    revision: int
    update_time: datetime | str  # text on SQLite (shared.columns)
    etag: str
    form_cache: bytes | None
    staged_proposals: int


# The row as a tuple (CompiledQuery.raw): a peewee model instance, with its ten fields
# converted, was about half of a GetCohortDraft's servicer time (bench.micro --profile).
_OWN_DRAFT_ROW = CompiledQuery(
    database,
    lambda i, owner: Draft.select(
        *(Draft._meta.columns[name] for name in StoredDraft._fields[1:])
    ).where((Draft.id == i) & (Draft.owner == owner)),
)
Shown = Draft | StoredDraft  # what showing a draft reads of it


def find_draft(owner: str, draft_id: uuid.UUID, *, lock: bool = False) -> Draft:
    """The owner's draft, locked for the transaction when asked; NOT_FOUND otherwise.

    Another principal's draft is NOT_FOUND too: its existence is not revealed; so is a
    dormant draft whose creating proposal expired.
    """
    draft = locked_draft(owner, draft_id) if lock else _live(_OWN_DRAFT.first(draft_id, owner))
    if draft is None:
        raise _not_found(draft_id)
    return draft


def _not_found(draft_id: uuid.UUID) -> NotFound:
    return NotFound(f"you have no cohort draft {draft_id}", reason=DRAFT_NOT_FOUND)


def locked_draft(owner: str, draft_id: uuid.UUID) -> Draft | None:
    """The owner's draft locked for the transaction (None if there is none, or it was deleted
    while this waited). Writes lock a draft before its proposals: one order, no deadlock."""
    # SQLite has no FOR UPDATE; its write lock is whole-database
    query = _OWN_DRAFT_LOCKED if database.for_update else _OWN_DRAFT
    return _live(query.first(draft_id, owner))


def _live(draft: Draft | None) -> Draft | None:
    """draft, or None when it is gone with its expired creating proposal (before the purge
    deletes it)."""
    return None if draft is None or expiry.is_gone(draft) else draft


def pending_proposals(draft_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, list[Proposal]]:
    return mapping.proposals_by_draft(_PENDING_PROPOSALS(list(draft_ids), expiry.cutoff()))


def rows_for(owner: str, forms: Collection[Form]) -> Rows:
    ids = {slot.name: {item for form in forms for item in form.items[slot.name]} for slot in SLOTS}
    return fetch_rows(owner, ids)


def serialized_forms(owner: str, drafts: Sequence[Shown]) -> dict[uuid.UUID, SerializedForm]:
    """Each draft's form as bytes: from its row when they were written at its revision,
    else (drafts written before migration 0006) built from its links and their rows."""
    found = {draft.id: SerializedForm.decode(draft.form_cache, draft.revision) for draft in drafts}
    stale = [draft for draft in drafts if found[draft.id] is None]
    if stale:
        forms = load_forms([draft.id for draft in stale])
        rows = rows_for(owner, forms.values())
        for draft in stale:
            found[draft.id] = serialize(forms[draft.id], rows, draft.revision)
    return found  # type: ignore[return-value]  # no None left


def form_state_bytes(owner: str, drafts: Sequence[Shown]) -> list[bytes]:
    """The serialized DraftFormStates of drafts, in their order: the one way a stored draft
    is shown (reads, lists, and whatever else shows one), from the bytes on its row."""
    if not drafts:
        return []
    forms = serialized_forms(owner, drafts)
    staged = [draft.id for draft in drafts if draft.staged_proposals]
    proposals = pending_proposals(staged) if staged else {}
    return [
        form_cache.form_state(draft, forms[draft.id], proposals.get(draft.id, ())).data
        for draft in drafts
    ]


def form_states(owner: str, drafts: Sequence[Draft]) -> list[draft_pb2.DraftFormState]:
    """The live forms of drafts, in their order (form_state_bytes, parsed)."""
    return [draft_pb2.DraftFormState.FromString(data) for data in form_state_bytes(owner, drafts)]


def read_draft(owner: str, draft_id: uuid.UUID) -> bytes:
    """The serialized DraftFormState of the owner's draft (GetCohortDraft's response).

    A draft without staged proposals is the draft row alone: one statement, its own
    snapshot, no transaction (BEGIN and COMMIT were a fifth of such a read).
    """
    row = _OWN_DRAFT_ROW.raw(draft_id, owner).fetchone()
    if row is None:
        raise _not_found(draft_id)
    draft = StoredDraft(draft_id, *row)
    if not draft.staged_proposals:  # so not gone either (expiry.is_gone)
        return form_state_bytes(owner, [draft])[0]
    with read_transaction(database):  # one snapshot for the draft and its proposals
        return form_state_bytes(owner, [find_draft(owner, draft_id)])[0]


def get_draft(owner: str, draft_id: uuid.UUID) -> draft_pb2.DraftFormState:
    return draft_pb2.DraftFormState.FromString(read_draft(owner, draft_id))


# What a listed draft may weigh beside its stored form_bytes (which has the form's own fields):
# each pending proposal (a key of up to 200 characters and a time), and the list's tags.
_PROPOSAL_MAX_BYTES = 1024
_DRAFT_FIXED_BYTES = 64


def _estimated_bytes():
    """A draft's DraftFormState size, as an upper bound, from its row (a column expression)."""
    pending_bytes = Proposal.select(fn.COUNT(Proposal.id) * _PROPOSAL_MAX_BYTES).where(
        (Proposal.draft_id == Draft.id) & (Proposal.decision == ProposalDecision.PENDING)
    )
    return fn.COALESCE(Draft.form_bytes, RESOURCE_MAX_BYTES) + pending_bytes + _DRAFT_FIXED_BYTES


def list_drafts(
    owner: str, size: int, cursor: list | None, include_dormant: bool
) -> tuple[list[draft_pb2.DraftFormState], list | None]:
    """A page of the owner's drafts, newest first, and the cursor of the next page.

    The page ends early at the byte budget (shared.budget): first by the drafts' estimated
    sizes, before any form is loaded, then by the forms' real sizes.
    """
    with read_transaction(database):  # one snapshot for the drafts and their proposals
        return list_page(owner, size, cursor, include_dormant)


def list_page(
    owner: str, size: int, cursor: list | None, include_dormant: bool
) -> tuple[list[draft_pb2.DraftFormState], list | None]:
    """list_drafts in the caller's transaction."""
    states = [DraftState.ACTIVE, DraftState.DORMANT] if include_dormant else [DraftState.ACTIVE]
    query = Draft.select(Draft, _estimated_bytes().alias("estimated_bytes")).where(
        (Draft.owner == owner) & Draft.state.in_(states)
    )
    if include_dormant and expiry.PROPOSALS.ttl is not None:
        query = query.where(~expiry.gone_dormant())
    if cursor is not None:
        created_at, last_id = _read_cursor(cursor)
        query = query.where(
            (Draft.created_at < created_at)
            | ((Draft.created_at == created_at) & (Draft.id < last_id))
        )
    drafts = list(query.order_by(Draft.created_at.desc(), Draft.id.desc()).limit(size + 1))
    count = min(size, items_within(draft.estimated_bytes for draft in drafts))
    page = form_states(owner, drafts[:count])
    kept = page_within(page)
    if len(drafts) <= kept:
        return page, None
    last = drafts[kept - 1]
    return page[:kept], [last.created_at.isoformat(), str(last.id)]


def _read_cursor(cursor: list) -> tuple[datetime, uuid.UUID]:
    try:
        return datetime.fromisoformat(cursor[0]), uuid.UUID(cursor[1])
    except (IndexError, TypeError, ValueError, AttributeError):
        raise InvalidArgument(
            "page_token is not a token this RPC issued",
            [("page_token", "must be the next_page_token of a previous response, or empty")],
        ) from None


def delete_draft(owner: str, draft_id: uuid.UUID) -> None:
    """Delete the draft, its links (by cascade) and its undecided proposals.

    Decided proposals stay, so that a repeated ack still gets its first response.
    """
    with database.atomic():
        draft = find_draft(owner, draft_id, lock=True)
        delete_with_pending_proposals(draft)
        draft_events.append(owner, draft_events.event(Type.TYPE_DELETED, draft.id, owner, None))


def delete_with_pending_proposals(draft: Draft) -> None:
    Proposal.delete().where(
        (Proposal.draft_id == draft.id) & (Proposal.decision == ProposalDecision.PENDING)
    ).execute()
    draft.delete_instance()
