"""DraftFormState.etag (AIP-154): new on every change of a draft, checked for patches and acks."""

from __future__ import annotations

import grpc
import pytest

from tests.cohort_service.support import details
from tests.support import snapshot

STALE = "W/0000000000000000"


def _refused(call, **fields) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(**fields)
    return (caught.value.code(), *details(caught.value))


def test_every_change_of_a_draft_gives_it_a_new_etag_and_reads_keep_it(alice):
    created = alice.patch(name="Q1").form_state
    etags = [created.etag]
    etags.append(alice.patch(draft_id=created.draft_id, name="Q2").form_state.etag)
    staged = alice.patch(draft_id=created.draft_id, name="Q3", soft=True)
    etags.append(staged.form_state.etag)  # the preview carries the draft's etag after staging
    assert alice.get(created.draft_id).etag == etags[-1]
    etags.append(alice.patch(idempotency_key=staged.idempotency_key, accept=True).form_state.etag)
    rejected_key = alice.patch(draft_id=created.draft_id, name="Q4", soft=True).idempotency_key
    etags.append(alice.get(created.draft_id).etag)
    etags.append(alice.patch(idempotency_key=rejected_key, accept=False).form_state.etag)

    assert len(set(etags)) == len(etags), etags
    assert alice.get(created.draft_id).etag == etags[-1]
    assert alice.list().drafts[0].etag == etags[-1]
    assert all(etag.startswith("W/") for etag in etags)


@pytest.mark.parametrize("kind", ["patch", "soft patch", "accept", "reject"])
def test_a_patch_or_ack_with_a_stale_etag_is_aborted_and_changes_nothing(alice, server, kind):
    draft_id = alice.patch(name="Q1").draft_id
    key = alice.patch(draft_id=draft_id, name="Proposed", soft=True).idempotency_key
    current = alice.get(draft_id).etag
    request = {
        "patch": {"draft_id": draft_id, "name": "Q2"},
        "soft patch": {"draft_id": draft_id, "name": "Q2", "soft": True},
        "accept": {"idempotency_key": key, "accept": True},
        "reject": {"idempotency_key": key, "accept": False},
    }[kind]
    before = snapshot(server.database)

    code, reason, _ = _refused(alice.patch, etag=STALE, **request)

    assert (code, reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert snapshot(server.database) == before  # the idempotency key is not spent either
    alice.patch(etag=current, **request)  # the current etag goes through


def test_a_repeated_request_gets_its_first_response_whatever_the_etag_is_now(alice):
    draft_id = alice.patch(name="Q1").draft_id
    etag = alice.get(draft_id).etag
    first = alice.patch(draft_id=draft_id, name="Q2", etag=etag, idempotency_key="k-1")
    key = alice.patch(draft_id=draft_id, name="Q3", soft=True).idempotency_key
    stale = alice.get(draft_id).etag
    accepted = alice.patch(idempotency_key=key, accept=True, etag=stale)

    assert alice.patch(draft_id=draft_id, name="Q2", etag=etag, idempotency_key="k-1") == first
    assert alice.patch(idempotency_key=key, accept=True, etag=stale) == accepted


def test_an_etag_on_a_patch_that_creates_a_draft_is_invalid(alice, server):
    before = snapshot(server.database)

    code, _, violations = _refused(alice.patch, name="Q1", etag=STALE)

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "etag" in violations
    assert snapshot(server.database) == before
