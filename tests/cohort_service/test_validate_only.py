"""validate_only (AIP-163) on every cohort write: patches, soft patches, acks, deletes and catalog
creates answer as the call would and leave every table byte for byte as it was."""

from __future__ import annotations

import grpc
import pytest

from cohort_service.v1 import catalog_pb2, catalog_service_pb2, draft_service_pb2
from tests.cohort_service.conftest import Catalog
from tests.cohort_service.support import details
from tests.support import snapshot

_D = draft_service_pb2
_C = catalog_service_pb2


def _answer(call):
    try:
        return call()
    except grpc.RpcError as error:
        return (error.code(), *details(error))


def _same_form(checked, real) -> None:
    """A validate_only patch's answer against the real one's: the same form, but for the ids
    and times the real call makes anew (value resources, new drafts, keys picked)."""
    for response in (checked, real):
        state = response.form_state
        state.ClearField("update_time")
        for proposal in state.proposals:
            proposal.ClearField("create_time")
            proposal.ClearField("expire_time")
    assert checked.form_state.name.value == real.form_state.name.value
    assert checked.form_state.revision == real.form_state.revision
    assert checked.form_state.state == real.form_state.state
    assert [d.id for d in checked.form_state.departments] == [
        d.id for d in real.form_state.departments
    ]
    assert (checked.message, checked.success) == (real.message, real.success)


def test_a_patch_checked_only_shows_the_result_and_writes_nothing(alice, server, catalog: Catalog):
    draft_id = alice.patch(name="Q1", departments=["Sales"]).draft_id
    fields = dict(draft_id=draft_id, name="Q2", departments=["Finance"], idempotency_key="k-2")
    before = snapshot(server.database)

    checked = alice.patch(validate_only=True, **fields)

    assert snapshot(server.database) == before
    real = alice.patch(**fields)  # the key was not spent: this runs
    assert real.form_state.revision == 2
    _same_form(checked, real)
    assert checked.draft_id == real.draft_id == draft_id


@pytest.mark.parametrize("soft", [False, True], ids=["create", "soft create"])
def test_a_create_checked_only_makes_no_draft(alice, server, catalog: Catalog, soft):
    before = snapshot(server.database)
    checked = alice.patch(name="New", departments=["Sales"], soft=soft, validate_only=True)
    assert snapshot(server.database) == before
    assert alice.list(include_dormant=True).drafts == []
    _same_form(checked, alice.patch(name="New", departments=["Sales"], soft=soft))


@pytest.mark.parametrize("accept", [True, False])
def test_an_ack_checked_only_decides_nothing(alice, server, catalog: Catalog, accept):
    staged = alice.patch(name="Proposed", soft=True, idempotency_key="soft-1")
    before = snapshot(server.database)
    checked = alice.patch(idempotency_key="soft-1", accept=accept, validate_only=True)
    assert snapshot(server.database) == before
    real = alice.patch(idempotency_key="soft-1", accept=accept)
    assert (checked.message, checked.draft_id) == (real.message, staged.draft_id)
    # a repeat of the decided ack, checked only, answers as a repeat does
    assert alice.patch(idempotency_key="soft-1", accept=accept, validate_only=True) == real


def test_a_patch_checked_only_refuses_what_the_patch_refuses(alice, server, catalog: Catalog):
    before = snapshot(server.database)
    checked = _answer(lambda: alice.patch(departments=["Nope"], validate_only=True))
    assert checked[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert snapshot(server.database) == before
    assert _answer(lambda: alice.patch(departments=["Nope"])) == checked


def test_a_patch_with_a_used_key_checked_only_replays_the_first_response(alice, server):
    first = alice.patch(name="Q1", idempotency_key="k-1")
    before = snapshot(server.database)
    assert alice.patch(name="Q1", idempotency_key="k-1", validate_only=True) == first
    reused = _answer(lambda: alice.patch(name="Q9", idempotency_key="k-1", validate_only=True))
    assert reused[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REUSED")
    assert snapshot(server.database) == before


def test_a_delete_checked_only_keeps_the_draft(alice, bob, server):
    draft_id = alice.patch(name="Q1").draft_id
    before = snapshot(server.database)
    alice.drafts.DeleteCohortDraft(
        _D.DeleteCohortDraftRequest(draft_id=draft_id, validate_only=True), metadata=alice.metadata
    )
    theirs = _answer(
        lambda: bob.drafts.DeleteCohortDraft(
            _D.DeleteCohortDraftRequest(draft_id=draft_id, validate_only=True),
            metadata=bob.metadata,
        )
    )
    assert theirs[0] == grpc.StatusCode.NOT_FOUND
    assert snapshot(server.database) == before
    assert alice.get(draft_id).name.value == "Q1"


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("CreateDepartment", _C.CreateDepartmentRequest(name="Legal")),
        ("CreateSimulation", _C.CreateSimulationRequest(name="Escalation")),
        ("CreateProfile", _C.CreateProfileRequest(name="Analyst")),
        (
            "CreateFlag",
            _C.CreateFlagRequest(
                key="tier",
                type=catalog_pb2.FLAG_TYPE_SINGLE_SELECT,
                options=[catalog_pb2.FlagOption(value="gold", label="Gold")],
            ),
        ),
    ],
)
def test_a_catalog_create_checked_only_creates_nothing(alice, server, rpc, request_):
    call = getattr(alice.catalog, rpc)
    before = snapshot(server.database)
    checked_request = type(request_)()
    checked_request.CopyFrom(request_)
    checked_request.validate_only = True

    checked = call(checked_request, metadata=alice.metadata)

    assert snapshot(server.database) == before
    created = call(request_, metadata=alice.metadata)
    checked.ClearField("id")
    created.ClearField("id")
    for option in (*getattr(checked, "options", ()), *getattr(created, "options", ())):
        option.ClearField("id")
    assert checked == created
    # now that it exists, checking it again answers ALREADY_EXISTS, as creating it would
    again = _answer(lambda: call(checked_request, metadata=alice.metadata))
    assert again[0] == grpc.StatusCode.ALREADY_EXISTS
