"""PatchCohortDraft: apply a patch, stage a soft one as a proposal, or decide a proposal.

Each call is one transaction: claim the idempotency key (or the proposal's decision)
first, so that concurrent repeats queue behind the winner; then load, resolve, check,
write. Anything raised rolls the whole call back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import peewee
from peewee import Case, fn

from cohort_service import draft_events, expiry, form_cache
from cohort_service.draft_events import Type
from cohort_service.drafts import (
    delete_with_pending_proposals,
    find_draft,
    form_state_bytes,
    locked_draft,
    pending_proposals,
    serialized_forms,
)
from cohort_service.form_cache import FormStateBytes, SerializedForm, serialize
from cohort_service.forms import Change, Form, apply_change, save_form
from cohort_service.idempotency import KEYS
from cohort_service.lookups import Rows, fetch_rows, insert_values
from cohort_service.models import (
    Draft,
    DraftState,
    Proposal,
    ProposalDecision,
    database,
    utcnow,
)
from cohort_service.patch_request import read_idempotency_key, read_patch
from cohort_service.resolve import check_form, resolve
from cohort_service.slots import (
    BY_NAME,
    MASK_PATHS,
    PENDING_PATH,
    PROFILE_PERSONAS,
    SIMULATION_POSITIONS,
    SLOTS,
)
from cohort_service.v1 import draft_pb2, draft_service_pb2
from shared.budget import RESOURCE_MAX_BYTES, over_budget
from shared.compiled import CompiledQuery, unconverted
from shared.errors import FailedPrecondition, NotFound, Violations
from shared.etags import check_etag, new_etag
from shared.events import NewEvent
from shared.failpoints import failpoint
from shared.idempotency import fingerprint
from shared.wire import field_head

PatchResponse = draft_service_pb2.PatchCohortDraftResponse

PROPOSAL_NOT_FOUND = "PROPOSAL_NOT_FOUND"
PROPOSAL_ALREADY_DECIDED = "PROPOSAL_ALREADY_DECIDED"
PROPOSAL_NO_LONGER_VALID = "PROPOSAL_NO_LONGER_VALID"


def is_ack(request: draft_service_pb2.PatchCohortDraftRequest) -> bool:
    return request.HasField("accept")


# ---------------------------------------------------------------------------
# Patches and soft patches
# ---------------------------------------------------------------------------


def patch_draft(owner: str, request: draft_service_pb2.PatchCohortDraftRequest) -> bytes:
    """Apply request to the owner's draft (or a new one); stage it instead when soft.

    Answers the serialized PatchCohortDraftResponse (see _response).
    """
    violations = Violations()
    given_key = read_idempotency_key(request, violations)
    key = given_key or str(uuid.uuid4())
    patch = read_patch(request, violations)
    if request.etag and not patch.draft_id:
        violations.add("etag", "a patch that creates a draft has no etag to check: give draft_id")
    with database.atomic():
        if not violations:  # a request that will fail has nothing to replay, and must not claim
            replay = KEYS.claim(owner, key, fingerprint(request))
            if replay is not None:
                return bytes(replay)
            failpoint("cohort.patch.after_claim")
        draft = find_draft(owner, patch.draft_id, lock=True) if patch.draft_id else None
        if draft is not None:
            check_etag("etag", request.etag, draft.etag, "the draft")
        stored = serialized_forms(owner, [draft])[draft.id] if draft else _NO_FORM
        current = stored.form()
        _refuse_heavy_relinks(owner, patch)
        resolution = resolve(owner, patch, current, violations)
        rows = resolution.rows
        result = apply_change(current, resolution.change, rows.cohort_active.values())
        check_form(
            result,
            resolution.change,
            rows,
            violations,
            resolution.origins,
            resolution.pending_paths,
            resolution.slots,
        )
        violations.raise_if_any()
        for slot in SLOTS:
            if resolution.new_rows[slot.name]:
                insert_values(slot, resolution.new_rows[slot.name])
        fields = patch.populated_fields
        before = (current, stored)
        if request.soft:
            response, event = _stage(
                owner, key, draft, before, result, resolution.change, rows, fields
            )
        else:
            response, event = _apply(owner, key, draft, before, result, rows, fields)
        KEYS.remember(owner, key, response)
        draft_events.append(owner, event)
        failpoint("cohort.patch.before_commit")
        return response


def _apply(
    owner: str,
    key: str,
    draft: Draft | None,
    before: tuple[Form, SerializedForm],
    result: Form,
    rows: Rows,
    fields: Sequence[str],
) -> tuple[bytes, NewEvent]:
    """Apply the patch; its response and its event (PATCHED)."""
    now = utcnow()
    created = draft is None
    if draft is None:
        draft = Draft(
            id=uuid.uuid4(),
            owner=owner,
            state=DraftState.ACTIVE,
            revision=1,
            created_at=now,
            update_time=now,
            etag=new_etag(),
        )
        message = "draft created"
    else:
        draft.revision += 1
        draft.state = DraftState.ACTIVE  # an applied patch makes a dormant draft live
        draft.update_time = now
        draft.etag = new_etag()
        message = "draft updated"
    serialized = serialize(result, rows, draft.revision, reuse=before)
    form = form_cache.form_state(draft, serialized, _proposals(draft))
    draft.form_bytes = _form_bytes(form, fields)
    draft.form_cache = serialized.encode()
    if created:
        draft.save(force_insert=True)
    else:
        _advance(draft)
    save_form(draft.id, before[0], result)
    failpoint("cohort.patch.after_save")
    event = draft_events.event(Type.TYPE_PATCHED, draft.id, owner, form.data)
    return _response(draft.id, key, message, form.data), event


def _advance(draft: Draft) -> None:
    """Write what one applied patch changed on the draft row (changed in memory before, the
    etag too: the response carries it)."""
    _ADVANCE.raw(
        draft.revision,
        draft.state,
        draft.update_time,
        draft.form_bytes,
        draft.etag,
        draft.form_cache,
        draft.id,
    )


def _staged() -> peewee.Select:
    """Draft.staged_proposals as the proposals stand (a subquery of an UPDATE of the draft):
    counted, not incremented, with each etag, so that it is right whichever path changed
    them."""
    return Proposal.select(fn.COUNT(Proposal.id)).where(
        (Proposal.draft_id == Draft.id) & (Proposal.decision == ProposalDecision.PENDING)
    )


# Compiled (shared.compiled); draft.save() built an UPDATE of every column, each patch.
_ADVANCE = CompiledQuery(
    database,
    lambda revision, state, now, form_bytes, etag, cache, draft_id: Draft.update(
        revision=revision,
        state=state,
        update_time=now,
        form_bytes=form_bytes,
        etag=etag,
        form_cache=unconverted(cache),
        staged_proposals=_staged(),
    ).where(Draft.id == draft_id),
)
_NEW_ETAG = CompiledQuery(
    database,
    lambda etag, draft_id: Draft.update(etag=etag, staged_proposals=_staged()).where(
        Draft.id == draft_id
    ),
)


def renew_etag(draft: Draft) -> None:
    """A new etag for a change of the draft that is not an applied patch (its proposals,
    changed before this: they are counted)."""
    draft.etag = new_etag()
    _NEW_ETAG.raw(draft.etag, draft.id)


def _form_bytes(form: FormStateBytes, fields: Sequence[str], stored: int = 0) -> int:
    """The serialized size of form without its proposals; INVALID_ARGUMENT when the form
    with them, or stored bytes with them, is over the budget (shared.budget).

    The violation names the request field whose slot weighs most in the form (a patch that
    re-links value resources by id can make a large form from a small request).
    """
    size = len(form.data)
    largest = max(size, stored + form.proposal_bytes)
    if largest > RESOURCE_MAX_BYTES:  # the field named only then: weighing slots costs
        message = draft_pb2.DraftFormState.FromString(form.data)
        raise over_budget(_heaviest(message, fields), "the draft's form", largest)
    return size - form.proposal_bytes


# Value resources named by id whose texts are counted in the database before their rows are
# read: re-linking 1,000 positions of 10,000 characters would read ~40 MB only to refuse it.
_TEXTS = {
    SIMULATION_POSITIONS.name: ("title", "description"),
    PROFILE_PERSONAS.name: ("persona", "description"),
}
_RELINKS_COUNTED_FROM = 16  # ids; fewer cannot read more than ~640 KB of text


def _refuse_heavy_relinks(owner: str, patch) -> None:
    """INVALID_ARGUMENT, before any row is read, when the owner's resources a value slot
    names by id have more characters (at least one byte each) than the form's budget."""
    for slot_name, columns in _TEXTS.items():
        ids = [item for _, item in patch.slots[slot_name].ids]
        if len(ids) < _RELINKS_COUNTED_FROM:
            continue
        model = BY_NAME[slot_name].item
        length = sum(
            (fn.LENGTH(getattr(model, column)) for column in columns[1:]),
            fn.LENGTH(getattr(model, columns[0])),
        )
        # The owner on the row, not in the WHERE: SQLite would search the owner index.
        owned = Case(None, [(model.owner == owner, length)], 0)
        chars = model.select(fn.COALESCE(fn.SUM(owned), 0)).where(model.id.in_(ids)).scalar()
        if chars > RESOURCE_MAX_BYTES:
            raise over_budget(
                BY_NAME[slot_name].ids_field, "the draft's form", chars, at_least=True
            )


def _heaviest(form: draft_pb2.DraftFormState, fields: Sequence[str]) -> str:
    def weight(field: str) -> int:
        slot = MASK_PATHS.get(field)
        if slot not in BY_NAME:
            return 0
        value = getattr(form, slot)
        return value.ByteSize() if BY_NAME[slot].single else sum(v.ByteSize() for v in value)

    return max(fields, key=weight) if fields else "idempotency_key"


def _stage(
    owner: str,
    key: str,
    draft: Draft | None,
    before: tuple[Form, SerializedForm],
    preview: Form,
    change: Change,
    rows: Rows,
    fields: Sequence[str],
) -> tuple[bytes, NewEvent]:
    """Stage the patch as a proposal; the response (the form it would make) and the event
    (PROPOSAL_STAGED, with the draft as stored, now listing the proposal)."""
    now = utcnow()
    created_draft = draft is None
    if draft is None:
        draft = Draft.create(
            id=uuid.uuid4(),
            owner=owner,
            state=DraftState.DORMANT,
            revision=0,
            created_at=now,
            update_time=now,
            form_bytes=0,
            etag=new_etag(),
            form_cache=_NO_FORM.encode(),
            staged_proposals=1,
        )
    Proposal.create(
        id=uuid.uuid4(),
        principal=owner,
        key=key,
        draft_id=draft.id,
        created_draft=created_draft,
        change=change.to_json(),
        create_time=now,
    )
    if not created_draft:
        renew_etag(draft)  # its form now lists one more proposal
        draft.staged_proposals += 1
    failpoint("cohort.patch.after_save")
    proposals = _proposals(draft)
    shown = serialize(preview, rows, draft.revision, reuse=before)
    form = form_cache.form_state(draft, shown, proposals, state=DraftState.DORMANT)
    # Both the preview and the draft as stored, with every pending proposal, must fit.
    _form_bytes(form, fields, stored=draft.form_bytes or 0)
    stored = form_cache.form_state(draft, before[1], proposals).data
    response = _response(
        draft.id,
        key,
        "proposal staged; accept or reject it with this idempotency_key and `accept`",
        form.data,
    )
    return response, draft_events.event(Type.TYPE_PROPOSAL_STAGED, draft.id, owner, stored)


# The form of a draft with no links (a new one), as stored at revision 0.
_NO_FORM = serialize(Form(), Rows(), 0)
_FORM_STATE_FIELD = PatchResponse.DESCRIPTOR.fields_by_name["form_state"].number


def _proposals(draft: Draft) -> list[Proposal]:
    """The draft's live proposals; none without a query when it had none staged (the draft
    row is locked: none can be staged meanwhile)."""
    if not draft.staged_proposals:
        return []
    return pending_proposals([draft.id]).get(draft.id, [])


def _response(draft_id: uuid.UUID, key: str, message: str, form: bytes | None) -> bytes:
    """The serialized PatchCohortDraftResponse, form_state given as its bytes.

    The form is built as bytes (cohort_service.form_cache) and stays bytes: it is stored as
    the idempotency record and sent as it is (the servicer's responses are not serialized
    again, see cohort_service.server); parsed into the message and serialized back, a
    1,000-item form cost ~2 ms more per patch. A sub-message is its tag, its length, then
    its serialization.
    """
    head = PatchResponse(
        success=True, draft_id=str(draft_id), idempotency_key=key, message=message
    ).SerializeToString()
    if form is None:
        return head
    return b"".join((head, field_head(_FORM_STATE_FIELD, len(form)), form))


# ---------------------------------------------------------------------------
# Acks: {idempotency_key, accept, optional draft id} decide a proposal (rule 10)
# ---------------------------------------------------------------------------


def acknowledge(owner: str, request: draft_service_pb2.PatchCohortDraftRequest) -> bytes:
    """Accept or reject the proposal staged with request.idempotency_key; answers the
    serialized PatchCohortDraftResponse (see _response)."""
    violations = Violations()
    patch = read_patch(request, violations)
    for field_name in patch.populated_fields:
        violations.add(
            field_name, "an ack (accept) carries no slot; send the change as a patch of its own"
        )
    if request.soft:
        violations.add("soft", "an ack (accept) cannot itself be soft")
    if request.update_mask.paths:
        violations.add("update_mask", "an ack (accept) carries no update_mask")
    if not request.idempotency_key:
        violations.add(
            "idempotency_key", "is required in an ack: the key of the soft patch to decide"
        )
    violations.raise_if_any("the ack has invalid fields")
    key, accept = request.idempotency_key, request.accept
    with database.atomic():
        draft = _lock_draft_of_proposal(owner, key)
        proposal, decided_now = _claim_decision(owner, key, patch.draft_id, accept)
        if not decided_now:
            was_accepted = proposal.decision == ProposalDecision.ACCEPTED
            if was_accepted != accept:
                raise FailedPrecondition(
                    f"the proposal {key!r} was already {'accepted' if was_accepted else 'rejected'}"
                    "; a decision is final",
                    reason=PROPOSAL_ALREADY_DECIDED,
                )
            return bytes(proposal.decision_response)
        # After the replay: a repeated ack gets its first response whatever the etag is now.
        check_etag("etag", request.etag, draft.etag if draft else None, "the proposal's draft")
        failpoint("cohort.ack.after_decision")
        response, events = _accept(owner, proposal) if accept else _reject(owner, proposal)
        Proposal.update(decision_response=response).where(Proposal.id == proposal.id).execute()
        draft_events.append(owner, *events)
        return response


def _lock_draft_of_proposal(owner: str, key: str) -> Draft | None:
    """Lock the proposal's draft before the proposal (the order every write keeps), so that
    a patch or a delete of the draft runs wholly before or after this decision; the draft,
    if it is there."""
    draft_id = (
        Proposal.select(Proposal.draft_id)
        .where((Proposal.principal == owner) & (Proposal.key == key))
        .scalar()
    )
    return locked_draft(owner, draft_id) if draft_id is not None else None


def _claim_decision(
    owner: str, key: str, draft_id: uuid.UUID | None, accept: bool
) -> tuple[Proposal, bool]:
    """(proposal, True) if this call decided it; (proposal, False) if it was decided before.

    The conditional UPDATE comes first: concurrent acks queue on the row and only the
    first finds it pending.
    """
    where = (Proposal.principal == owner) & (Proposal.key == key)
    if draft_id is not None:
        where &= Proposal.draft_id == draft_id
    decision = ProposalDecision.ACCEPTED if accept else ProposalDecision.REJECTED
    now = utcnow()
    live = (Proposal.decision == ProposalDecision.PENDING) & (
        Proposal.create_time > expiry.cutoff(now)
    )
    decided_now = bool(
        Proposal.update(decision=decision, decide_time=now).where(where & live).execute()
    )
    proposal = Proposal.get_or_none(where)
    if proposal is None:
        raise NotFound(
            f"you staged no proposal with idempotency_key {key!r}", reason=PROPOSAL_NOT_FOUND
        )
    undecided = (ProposalDecision.PENDING, ProposalDecision.EXPIRED)
    if not decided_now and proposal.decision in undecided:
        raise expiry.refuse_ack(key)  # pending, yet not decided now: it expired
    return proposal, decided_now


def _accept(owner: str, proposal: Proposal) -> tuple[bytes, list[NewEvent]]:
    """Re-check the proposal against the draft as it is now, then apply it; the response and
    the event (PROPOSAL_ACCEPTED)."""
    draft = find_draft(owner, proposal.draft_id, lock=True)
    stored = serialized_forms(owner, [draft])[draft.id]
    current = stored.form()
    change = Change.from_json(proposal.change)
    ids = {slot.name: set(current.items[slot.name]) for slot in SLOTS}
    for slot_name, named in change.ids().items():
        ids[slot_name].update(named)
    rows = fetch_rows(owner, ids, with_cohort_active=True)
    result = apply_change(current, change, rows.cohort_active.values())
    violations = Violations()
    pending_paths = [(PENDING_PATH, item) for item in sorted(change.pending or (), key=str)]
    check_form(result, change, rows, violations, pending_paths=pending_paths)
    if violations:
        raise FailedPrecondition(
            "the proposal no longer fits the draft, which changed since it was staged; "
            "reject it and stage a new one",
            list(violations),
            reason=PROPOSAL_NO_LONGER_VALID,
        )
    draft.revision += 1
    draft.state = DraftState.ACTIVE
    draft.update_time = utcnow()
    draft.etag = new_etag()
    serialized = serialize(result, rows, draft.revision, reuse=(current, stored))
    form = form_cache.form_state(draft, serialized, _proposals(draft))
    draft.form_bytes = _form_bytes(form, ("accept",))
    draft.form_cache = serialized.encode()
    _advance(draft)
    save_form(draft.id, current, result)
    event = draft_events.event(Type.TYPE_PROPOSAL_ACCEPTED, draft.id, owner, form.data)
    return _response(draft.id, proposal.key, "proposal accepted", form.data), [event]


def _reject(owner: str, proposal: Proposal) -> tuple[bytes, list[NewEvent]]:
    """Discard the proposal; a dormant draft it created goes with it. The response and the
    events: PROPOSAL_REJECTED, then DELETED when the draft went with it."""
    draft = locked_draft(owner, proposal.draft_id)
    if draft is not None and not (proposal.created_draft and draft.state == DraftState.DORMANT):
        renew_etag(draft)  # its form lists one proposal fewer
        form = form_state_bytes(owner, [draft])[0]
        response = _response(
            draft.id, proposal.key, "proposal rejected; the draft is unchanged", form
        )
        return response, [draft_events.event(Type.TYPE_PROPOSAL_REJECTED, draft.id, owner, form)]
    events = []
    if draft is not None:
        delete_with_pending_proposals(draft)
        events = [
            draft_events.event(kind, draft.id, owner, None)
            for kind in (Type.TYPE_PROPOSAL_REJECTED, Type.TYPE_DELETED)
        ]
    response = _response(
        proposal.draft_id,
        proposal.key,
        "proposal rejected; the dormant draft it created was deleted",
        None,
    )
    return response, events
