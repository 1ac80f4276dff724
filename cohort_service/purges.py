"""What cohort-service purges in the background (shared.purge): expired proposals, with the
dormant drafts they created; idempotency keys and decided proposals past their retention."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

import peewee

from cohort_service import draft_events, expiry
from cohort_service.draft_events import Type
from cohort_service.drafts import delete_with_pending_proposals, form_state_bytes
from cohort_service.idempotency import KEYS
from cohort_service.models import Draft, DraftState, Proposal, ProposalDecision, database
from cohort_service.patches import renew_etag
from shared.config import Settings
from shared.events import NewEvent
from shared.purge import Purge


def purges(settings: Settings) -> list[Purge]:
    ttl = settings.idempotency_ttl
    found = [
        Purge(
            "decided proposals",
            lambda now, limit: purge_decided(now - timedelta(seconds=ttl), limit),
        ),
        # A key whose proposal is still stored stays with it (decided proposals go first, so
        # both go in one run): the proposal's (principal, key) is unique too, and a key reused
        # after its record went would collide with it.
        Purge("idempotency keys", lambda now, limit: KEYS.purge(now, ttl, limit, _has_proposal)),
    ]
    if settings.proposal_ttl > 0:
        found.append(Purge("expired proposals", reject_expired))
    return found


def _has_proposal(record: type[peewee.Model]) -> peewee.Expression:
    return peewee.fn.EXISTS(
        Proposal.select(Proposal.id).where(
            (Proposal.principal == record.principal) & (Proposal.key == record.key)
        )
    )


def _skip_locked(query: peewee.Select) -> peewee.Select:
    # PostgreSQL: rows another replica (or a call) holds are left to it; SQLite has one writer.
    return query.for_update(skip_locked=True) if database.for_update else query


def reject_expired(now: datetime, limit: int) -> int:
    """Reject up to limit expired proposals, oldest first, deleting each dormant draft one of
    them created (as rejecting it would); return how many.

    Every write locks a draft before its proposals, so this does too: the drafts of the
    candidates are locked SKIP LOCKED, and only the proposals of drafts it holds are decided.
    """
    with database.atomic():
        candidates = list(
            Proposal.select(Proposal.id, Proposal.draft_id)
            .where(expiry.expired(now))
            .order_by(Proposal.create_time)
            .limit(limit)
        )
        if not candidates:
            return 0
        draft_ids = {proposal.draft_id for proposal in candidates}
        held = {
            draft.id: draft
            for draft in _skip_locked(Draft.select().where(Draft.id.in_(list(draft_ids))))
        }
        expiring = list(
            Proposal.select().where(
                Proposal.id.in_([proposal.id for proposal in candidates])
                & Proposal.draft_id.in_(list(held))
                & expiry.expired(now)
            )
        )
        if not expiring:
            return 0
        Proposal.update(decision=ProposalDecision.EXPIRED, decide_time=now).where(
            Proposal.id.in_([proposal.id for proposal in expiring])
        ).execute()
        deleted = set()
        for proposal in expiring:
            draft = held[proposal.draft_id]
            if proposal.created_draft and draft.state == DraftState.DORMANT:
                delete_with_pending_proposals(draft)  # as rejecting it would
                deleted.add(draft.id)
        forms = {}
        for draft_id in {proposal.draft_id for proposal in expiring} - deleted:
            draft = held[draft_id]
            renew_etag(draft)  # its form lists fewer proposals, as after a reject
            forms[draft_id] = form_state_bytes(draft.owner, [draft])[0]
        draft_events.append_by_owner(_expiry_events(expiring, held, forms))
        return len(expiring)


def _expiry_events(
    expiring: list[Proposal], held: dict[uuid.UUID, Draft], forms: dict[uuid.UUID, bytes]
) -> dict[str, list[NewEvent]]:
    """PROPOSAL_EXPIRED per proposal, with its draft's form after the purge, or followed by
    DELETED when its draft went with it; by owner, the service the actor."""
    events: dict[str, list[NewEvent]] = defaultdict(list)
    ordered = sorted(expiring, key=lambda proposal: (str(proposal.draft_id), proposal.key))
    for draft_id, proposals in itertools.groupby(ordered, key=lambda p: p.draft_id):
        owner = held[draft_id].owner
        form = forms.get(draft_id)
        kinds = [Type.TYPE_PROPOSAL_EXPIRED] * len(list(proposals))
        if form is None:
            kinds.append(Type.TYPE_DELETED)
        events[owner].extend(
            draft_events.event(kind, draft_id, owner, form, actor="") for kind in kinds
        )
    return events


def purge_decided(before: datetime, limit: int) -> int:
    """Delete up to limit proposals decided before `before` (kept so far for repeated acks)."""
    with database.atomic():
        ids = [
            proposal_id
            for (proposal_id,) in _skip_locked(
                Proposal.select(Proposal.id)
                .where(
                    (Proposal.decision != ProposalDecision.PENDING)
                    & (Proposal.decide_time <= before)
                )
                .order_by(Proposal.decide_time)
                .limit(limit)
            ).tuples()
        ]
        if ids:
            Proposal.delete().where(Proposal.id.in_(ids)).execute()
    return len(ids)
