"""Soft patches and their acks (rules 9 and 10)."""

from __future__ import annotations

import grpc
import pytest

from cohort_service.v1 import draft_pb2
from tests.cohort_service.conftest import Catalog
from tests.cohort_service.support import details
from tests.support import snapshot


def failure(call, **fields) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(**fields)
    return (caught.value.code(), *details(caught.value))


def test_a_soft_create_makes_a_dormant_draft_hidden_from_lists_until_accepted(
    alice, catalog: Catalog
):
    staged = alice.patch(name="Q1", departments=["Sales"], soft=True)
    preview = staged.form_state
    assert preview.state == draft_pb2.DRAFT_STATE_DORMANT
    assert preview.name.value == "Q1" and [d.name for d in preview.departments] == ["Sales"]
    assert [p.idempotency_key for p in preview.proposals] == [staged.idempotency_key]
    assert alice.list().drafts == []
    assert [d.draft_id for d in alice.list(include_dormant=True).drafts] == [staged.draft_id]
    live = alice.get(staged.draft_id)
    assert live.state == draft_pb2.DRAFT_STATE_DORMANT and not live.HasField("name")

    accepted = alice.patch(idempotency_key=staged.idempotency_key, accept=True)
    assert accepted.draft_id == staged.draft_id
    assert accepted.form_state.state == draft_pb2.DRAFT_STATE_ACTIVE
    assert accepted.form_state.name.value == "Q1"
    assert accepted.form_state.revision == 1
    assert list(accepted.form_state.proposals) == []
    assert [d.draft_id for d in alice.list().drafts] == [staged.draft_id]


def test_a_soft_patch_leaves_the_live_form_unchanged_until_accepted(alice, catalog: Catalog):
    draft_id = alice.patch(name="Q1", departments=["Sales"], active=True).draft_id
    staged = alice.patch(draft_id=draft_id, departments=["Finance"], active=False, soft=True)
    assert staged.form_state.state == draft_pb2.DRAFT_STATE_DORMANT
    assert [d.name for d in staged.form_state.departments] == ["Finance"]
    assert staged.form_state.active is False
    live = alice.get(draft_id)
    assert [d.name for d in live.departments] == ["Sales"] and live.active is True
    assert live.revision == 1 and len(live.proposals) == 1

    accepted = alice.patch(draft_id=draft_id, idempotency_key=staged.idempotency_key, accept=True)
    assert [d.name for d in accepted.form_state.departments] == ["Finance"]
    assert accepted.form_state.active is False and accepted.form_state.revision == 2
    assert alice.get(draft_id) == accepted.form_state


def test_rejecting_a_proposal_discards_it_and_deletes_the_dormant_draft_it_created(alice):
    staged = alice.patch(name="Q1", soft=True)
    rejected = alice.patch(idempotency_key=staged.idempotency_key, accept=False)
    assert rejected.success and not rejected.HasField("form_state")
    code, reason, _ = failure(alice.get, draft_id=staged.draft_id)
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")


def test_rejecting_a_proposal_on_a_live_draft_keeps_the_draft_as_it_is(alice, catalog: Catalog):
    draft_id = alice.patch(name="Q1").draft_id
    staged = alice.patch(draft_id=draft_id, name="Q2", soft=True)
    rejected = alice.patch(idempotency_key=staged.idempotency_key, accept=False)
    assert rejected.form_state.name.value == "Q1" and list(rejected.form_state.proposals) == []
    assert alice.get(draft_id) == rejected.form_state


def test_repeating_an_ack_returns_its_first_response(alice, server):
    staged = alice.patch(name="Q1", soft=True)
    first = alice.patch(idempotency_key=staged.idempotency_key, accept=True)
    before = snapshot(server.database)
    assert alice.patch(idempotency_key=staged.idempotency_key, accept=True) == first
    assert snapshot(server.database) == before
    # The soft patch itself, repeated, still answers as the first time.
    assert alice.patch(name="Q1", soft=True, idempotency_key=staged.idempotency_key) == staged


def test_the_opposite_ack_after_a_decision_is_a_failed_precondition(alice):
    staged = alice.patch(name="Q1", soft=True)
    alice.patch(idempotency_key=staged.idempotency_key, accept=False)
    code, reason, _ = failure(alice.patch, idempotency_key=staged.idempotency_key, accept=True)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PROPOSAL_ALREADY_DECIDED")


def test_an_ack_with_an_unknown_key_is_not_found(alice):
    code, reason, _ = failure(alice.patch, idempotency_key="never-staged", accept=True)
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "PROPOSAL_NOT_FOUND")


def test_an_ack_carrying_slots_is_invalid(alice, server):
    staged = alice.patch(name="Q1", soft=True)
    before = snapshot(server.database)
    code, _, violations = failure(
        alice.patch,
        idempotency_key=staged.idempotency_key,
        accept=True,
        name="Q2",
        departments=["x"],
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"name", "departments"} <= set(violations)
    code, _, violations = failure(alice.patch, accept=True)
    assert set(violations) == {"idempotency_key"}
    assert snapshot(server.database) == before


def test_accepting_revalidates_the_proposal_against_the_draft_as_it_is_now(alice, catalog: Catalog):
    draft_id = alice.patch(simulations=["Onboarding"]).draft_id
    staged = alice.patch(
        draft_id=draft_id,
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title="Lead")
        ],
        soft=True,
    )
    alice.patch(draft_id=draft_id, simulations=["Renewal"])  # the position's simulation goes away
    code, reason, violations = failure(
        alice.patch, idempotency_key=staged.idempotency_key, accept=True
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PROPOSAL_NO_LONGER_VALID")
    assert violations
    # The failed accept decided nothing: the proposal can still be rejected.
    assert alice.patch(idempotency_key=staged.idempotency_key, accept=False).success
