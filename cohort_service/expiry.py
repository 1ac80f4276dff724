"""When soft proposals expire (COHORT_PROPOSAL_TTL), and how every read treats an expired one.

A proposal still pending COHORT_PROPOSAL_TTL after it was staged has expired: it is no longer
listed, an ack of it is FAILED_PRECONDITION (PROPOSAL_EXPIRED), and a dormant draft it created
is gone. All of that holds as soon as the time passes, before the purge
(cohort_service.purges) rejects it in the store: the reads compare with the clock.
"""

from __future__ import annotations

from datetime import datetime

import peewee
from peewee import fn

from cohort_service.models import Draft, DraftState, Proposal, ProposalDecision
from shared.clock import Lifetime
from shared.config import Settings
from shared.errors import FailedPrecondition

PROPOSAL_EXPIRED = "PROPOSAL_EXPIRED"
# What `create_time > cutoff` compares with when nothing expires: before any stored time.
_NEVER = datetime(1, 1, 1)

PROPOSALS = Lifetime(Settings.proposal_ttl)  # COHORT_PROPOSAL_TTL, set by cohort_service.server


def cutoff(now: datetime | None = None) -> datetime:
    """Proposals staged at or before this are expired (if still pending)."""
    found = PROPOSALS.cutoff(now)
    return _NEVER if found is None else found


def expired(now: datetime | None = None) -> peewee.Expression:
    """The pending proposals that have expired (a condition on Proposal)."""
    return (Proposal.decision == ProposalDecision.PENDING) & (Proposal.create_time <= cutoff(now))


def gone_dormant() -> peewee.Expression:
    """The dormant drafts whose creating proposal expired (a condition on Draft): gone."""
    creator_expired = Proposal.select(fn.COUNT(Proposal.id)).where(
        (Proposal.draft_id == Draft.id) & Proposal.created_draft & expired()
    )
    return (Draft.state == DraftState.DORMANT) & (creator_expired > 0)


def is_gone(draft: Draft) -> bool:
    """Whether draft is a dormant draft whose creating proposal expired (one query, for
    dormant drafts with proposals staged only)."""
    if PROPOSALS.ttl is None or draft.state != DraftState.DORMANT or not draft.staged_proposals:
        return False
    return (
        Proposal.select()
        .where((Proposal.draft_id == draft.id) & Proposal.created_draft & expired())
        .exists()
    )


def refuse_ack(key: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the proposal {key!r} expired: it was pending longer than {PROPOSALS.ttl} and the service "
        "rejected it; stage it again to propose it anew",
        reason=PROPOSAL_EXPIRED,
    )
