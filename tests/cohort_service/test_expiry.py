"""Expiry of soft proposals (COHORT_PROPOSAL_TTL) and the purging of what outlived its retention.

The clock moves through a setting: the same store is served again with `clock_offset` (the
test-only COHORT_CLOCK_OFFSET), so the service believes days have passed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import grpc
import pytest

from cohort_service.models import Draft, IdempotencyRecord, Proposal, ProposalDecision
from cohort_service.server import SERVICE
from tests.cohort_service.support import Client, details
from tests.support import DAY, RunningService, bearer, days_ahead, snapshot, watch_log

At = Callable[..., AbstractContextManager[RunningService]]


@pytest.fixture
def at(database_url) -> At:
    """The service on this test's store, its clock `days` ahead of now."""
    return days_ahead(SERVICE, database_url)


def _alice(server: RunningService) -> Client:
    return Client(server, bearer("user:alice"))


def _refused(call) -> tuple:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return (caught.value.code(), details(caught.value)[0])


@dataclass(frozen=True)
class Staged:
    active: str  # an active draft with the pending soft patch "soft-a"
    dormant: str  # the dormant draft the soft patch "soft-new" created
    active_etag: str  # the active draft's etag once the soft patch was staged


def _stage(at: At, **overrides) -> Staged:
    with at(**overrides) as server:
        alice = _alice(server)
        active = alice.patch(name="Q1").draft_id
        alice.patch(draft_id=active, description="proposed", soft=True, idempotency_key="soft-a")
        dormant = alice.patch(name="Dormant", soft=True, idempotency_key="soft-new").draft_id
        form = alice.get(active)
        proposal = form.proposals[0]
        assert proposal.expire_time.ToSeconds() == proposal.create_time.ToSeconds() + 7 * DAY
    return Staged(active, dormant, form.etag)


def test_an_expired_proposal_is_gone_before_any_purge(at):
    staged = _stage(at)
    with at(days=6.9) as server:  # not yet: listed, and the dormant draft is there
        alice = _alice(server)
        assert [p.idempotency_key for p in alice.get(staged.active).proposals] == ["soft-a"]
        assert alice.get(staged.dormant).name.value == ""
    with at(days=7.01) as server:
        alice = _alice(server)
        before = snapshot(server.database)
        assert list(alice.get(staged.active).proposals) == []
        assert [d.draft_id for d in alice.list(include_dormant=True).drafts] == [staged.active]
        expired = (grpc.StatusCode.FAILED_PRECONDITION, "PROPOSAL_EXPIRED")
        acks = [(key, accept) for key in ("soft-a", "soft-new") for accept in (True, False)]
        for key, accept in acks:
            ack = {"idempotency_key": key, "accept": accept}
            assert _refused(lambda ack=ack: alice.patch(**ack)) == expired
        gone = (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")
        assert _refused(lambda: alice.get(staged.dormant)) == gone
        assert _refused(lambda: alice.patch(draft_id=staged.dormant, name="x")) == gone
        assert _refused(lambda: alice.delete(staged.dormant)) == gone
        assert snapshot(server.database) == before  # the answers did not wait for a purge
        # the active draft itself lives on
        assert alice.patch(draft_id=staged.active, name="Q2").form_state.revision == 2


def test_the_service_rejects_expired_proposals_and_deletes_the_dormant_drafts_they_made(at):
    staged = _stage(at)
    with (
        watch_log("shared.purge") as purged,
        at(days=7.01, purge_interval=0.05) as server,
    ):
        purged.wait_for("purged 2 expired proposals")
        alice = _alice(server)
        decisions = {p.key: p.decision for p in Proposal.select()}
        assert decisions == {
            "soft-a": ProposalDecision.EXPIRED,
            "soft-new": ProposalDecision.EXPIRED,
        }
        assert {str(d.id) for d in Draft.select()} == {staged.active}
        # The active draft's form lists one proposal fewer: a new etag, as after a reject.
        assert alice.get(staged.active).etag != staged.active_etag
        expired = (grpc.StatusCode.FAILED_PRECONDITION, "PROPOSAL_EXPIRED")
        assert _refused(lambda: alice.patch(idempotency_key="soft-a", accept=True)) == expired


def test_keys_and_decided_proposals_are_kept_a_day_then_purged(at):
    _stage(at)
    with at(days=7.01) as server:
        # the create's key is a week old; the soft patches' stay with their proposals
        assert server.purger.run_once() == {
            "decided proposals": 0,
            "idempotency keys": 1,
            "expired proposals": 2,
            "expired events": 3,  # the patch's and the two soft patches' (72 h retention)
        }
        assert {r.key for r in IdempotencyRecord.select()} == {"soft-a", "soft-new"}
    with at(days=8.0) as server:  # decided 0.99 days ago: kept, for repeated acks
        assert server.purger.run_once() == {
            "decided proposals": 0,
            "idempotency keys": 0,
            "expired proposals": 0,
            "expired events": 0,  # the expiry's own, a day old
        }
    with at(days=8.02) as server:
        alice = _alice(server)
        purged = server.purger.run_once()
        assert (purged["decided proposals"], purged["idempotency keys"]) == (2, 2)
        # the key is free again: a new soft patch may use it
        assert alice.patch(name="Again", soft=True, idempotency_key="soft-a").success


def test_with_a_ttl_of_zero_proposals_never_expire(at):
    staged = _stage(at, proposal_ttl=0) if False else None
    with at(proposal_ttl=0) as server:
        alice = _alice(server)
        draft = alice.patch(name="Q1").draft_id
        staged = alice.patch(draft_id=draft, description="p", soft=True, idempotency_key="k")
        assert not staged.form_state.proposals[0].HasField("expire_time")
    with at(days=400, proposal_ttl=0) as server:
        assert "expired proposals" not in server.purger.run_once()
        accepted = _alice(server).patch(idempotency_key="k", accept=True)
        assert accepted.form_state.description.value == "p"
