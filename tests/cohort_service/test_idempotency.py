"""Idempotency keys (rule 8): a repeat gets the first response; nothing is applied twice."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.cohort_service.conftest import Catalog
from tests.cohort_service.support import details
from tests.support import snapshot


def test_every_response_carries_an_idempotency_key_the_server_picks_when_none_is_given(alice):
    response = alice.patch(name="Q1")
    assert uuid.UUID(response.idempotency_key)
    # The picked key works for retries like a caller's own.
    again = alice.patch(name="Q1", idempotency_key=response.idempotency_key)
    assert again == response


def test_a_retry_with_the_same_key_returns_the_first_response_and_applies_nothing(alice, server):
    draft_id = alice.patch(name="Q1").draft_id
    first = alice.patch(draft_id=draft_id, description="d", idempotency_key="k-1")
    before = snapshot(server.database)
    second = alice.patch(draft_id=draft_id, description="d", idempotency_key="k-1")
    assert second == first
    assert second.form_state.revision == 2
    assert snapshot(server.database) == before
    assert alice.get(draft_id).revision == 2


def test_a_repeated_create_makes_one_draft(alice):
    first = alice.patch(name="Q1", idempotency_key="create-1")
    second = alice.patch(name="Q1", idempotency_key="create-1")
    assert second.draft_id == first.draft_id
    assert len(alice.list().drafts) == 1


def test_the_same_key_with_a_different_request_is_invalid(alice, server):
    alice.patch(name="Q1", idempotency_key="k-1")
    before = snapshot(server.database)
    with pytest.raises(grpc.RpcError) as caught:
        alice.patch(name="Q2", idempotency_key="k-1")
    reason, violations = details(caught.value)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason == "IDEMPOTENCY_KEY_REUSED"
    assert set(violations) == {"idempotency_key"}
    assert snapshot(server.database) == before


def test_keys_are_per_principal(alice, bob):
    mine = alice.patch(name="Alice's", idempotency_key="shared")
    theirs = bob.patch(name="Bob's", idempotency_key="shared")
    assert theirs.draft_id != mine.draft_id
    assert theirs.form_state.name.value == "Bob's"


def test_a_failed_call_does_not_use_up_its_key(alice):
    with pytest.raises(grpc.RpcError):
        alice.patch(departments=["Nope"], idempotency_key="k-1")
    assert alice.patch(name="Q1", idempotency_key="k-1").success


def test_twenty_concurrent_calls_with_one_key_create_one_draft_and_agree(alice, catalog: Catalog):
    def call(_):
        return alice.patch(name="Q1", departments=["Sales"], idempotency_key="burst")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(call, range(20)))
    assert all(response == responses[0] for response in responses)
    drafts = alice.list().drafts
    assert [d.draft_id for d in drafts] == [responses[0].draft_id]
    assert drafts[0].revision == 1


def test_concurrent_retries_of_a_patch_apply_it_once(alice):
    draft_id = alice.patch(name="Q1").draft_id

    def call(_):
        return alice.patch(draft_id=draft_id, description="once", idempotency_key="p-1")

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(call, range(10)))
    assert {r.form_state.revision for r in responses} == {2}
    assert alice.get(draft_id).revision == 2
