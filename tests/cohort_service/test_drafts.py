"""GetCohortDraft, ListCohortDrafts, DeleteCohortDraft: own drafts only, newest first."""

from __future__ import annotations

import grpc
import pytest

from tests.cohort_service.support import details


def test_list_returns_the_callers_active_drafts_newest_first_page_by_page(alice, bob):
    ids = [alice.patch(name=f"Q{n}").draft_id for n in range(5)]
    bob.patch(name="not alice's")
    alice.patch(name="dormant", soft=True)
    seen, token = [], ""
    while True:
        page = alice.list(page_size=2, page_token=token)
        seen += [d.draft_id for d in page.drafts]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]


def test_list_includes_dormant_drafts_when_asked(alice):
    active = alice.patch(name="live").draft_id
    dormant = alice.patch(name="staged", soft=True).draft_id
    assert [d.draft_id for d in alice.list(include_dormant=True).drafts] == [dormant, active]


def test_a_forged_page_token_is_invalid(alice):
    with pytest.raises(grpc.RpcError) as caught:
        alice.list(page_token="bm90IGEgdG9rZW4")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details(caught.value)[1]) == {"page_token"}


def test_get_with_a_malformed_id_is_invalid(alice):
    with pytest.raises(grpc.RpcError) as caught:
        alice.get("42")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_removes_the_draft_and_its_pending_proposals(alice):
    draft_id = alice.patch(name="Q1").draft_id
    staged = alice.patch(draft_id=draft_id, name="Q2", soft=True)
    alice.delete(draft_id)
    for call, kwargs in (
        (alice.get, {"draft_id": draft_id}),
        (alice.delete, {"draft_id": draft_id}),
        (alice.patch, {"idempotency_key": staged.idempotency_key, "accept": True}),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(**kwargs)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert alice.list(include_dormant=True).drafts == []


def test_deleted_drafts_value_resources_stay_selectable(alice):
    form = alice.patch(name="Keep me").form_state
    alice.delete(form.draft_id)
    assert alice.patch(name_id=form.name.id).form_state.name.value == "Keep me"
