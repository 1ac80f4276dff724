"""The form bytes (cohort_service.form_cache) and the count of staged proposals each draft row
keeps, after every kind of write.

After each write the row's bytes must be current (written at the draft's revision, so that
reads use them) and what a read serves from them must be what the draft's links give when
the form is built from them alone (the bytes forgotten, as for a draft stored before
migration 0006). A write path that forgot to write the bytes, wrote them before its last
change, or let an expired proposal into them fails here.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from playhouse.migrations import Runner

from cohort_service.models import utcnow
from cohort_service.server import SERVICE
from cohort_service.v1 import draft_pb2
from shared.db import apply_migrations, open_database
from shared.server import close_store
from tests.cohort_service.conftest import make_catalog
from tests.cohort_service.support import Client, assert_current, forget_form_cache
from tests.support import bearer, days_ahead, serve, watch_log

Position = draft_pb2.DraftSimulationPositionValue


def test_every_write_leaves_the_stored_form_current_and_equal_to_a_rebuild(alice, catalog):
    created = alice.patch(
        name="Q1",
        description="first",
        simulations=["Onboarding"],
        profiles=["Account Executive"],
        departments=["Sales", "Finance"],
        flag_ids=[catalog.option("priority", "high"), catalog.option("channels", "email")],
        active=True,
        simulation_positions=[Position(simulation="Onboarding", title=f"P{n}") for n in range(3)],
    )
    draft_id = created.draft_id
    form = assert_current(alice, draft_id)
    assert created.form_state == form and form.active and len(form.simulation_positions) == 3
    positions = [item.id for item in form.simulation_positions]

    steps = [
        {"department_ids": [catalog.departments["Engineering"]]},  # one slot
        {"pending_ids": [positions[1], catalog.departments["Engineering"]]},  # marks only
        {"name": "Q2", "pending_ids": []},  # marks off, another slot
        {"active": False},  # the cohort_active selection within the flags
        {"simulation_position_ids": positions[:1], "pending_ids": positions[:1]},
        {"update_mask": field_mask_pb2.FieldMask(paths=["departments", "description"])},
        {"simulations": ["Onboarding", "Renewal"], "department_ids": []},
    ]
    for fields in steps:
        response = alice.patch(draft_id=draft_id, **fields)
        form = assert_current(alice, draft_id)
        assert response.form_state == form, fields

    # validate_only: answers the patched form, keeps the stored one
    preview = alice.patch(draft_id=draft_id, name="Not kept", validate_only=True)
    assert preview.form_state.name.value == "Not kept"
    assert assert_current(alice, draft_id) == form

    # a soft patch lists a proposal; its accept applies it; a reject only unlists one
    staged = alice.patch(draft_id=draft_id, name="Proposed", soft=True, idempotency_key="s-1")
    assert staged.form_state.name.value == "Proposed"
    form = assert_current(alice, draft_id)
    assert form.name.value == "Q2" and [p.idempotency_key for p in form.proposals] == ["s-1"]
    accepted = alice.patch(draft_id=draft_id, idempotency_key="s-1", accept=True)
    form = assert_current(alice, draft_id)
    assert accepted.form_state == form and form.name.value == "Proposed" and not form.proposals
    alice.patch(draft_id=draft_id, description="maybe", soft=True, idempotency_key="s-2")
    rejected = alice.patch(draft_id=draft_id, idempotency_key="s-2", accept=False)
    form = assert_current(alice, draft_id)
    assert rejected.form_state == form and not form.proposals and not form.description.value

    # a soft patch that creates a dormant draft, then its accept
    dormant = alice.patch(name="Dormant", soft=True, idempotency_key="s-3").draft_id
    assert assert_current(alice, dormant).name.value == ""
    alice.patch(idempotency_key="s-3", accept=True)
    assert assert_current(alice, dormant).name.value == "Dormant"

    # a replayed patch answers its first response, the form as it was then
    first = alice.patch(draft_id=draft_id, name="Q3", idempotency_key="k-1")
    alice.patch(draft_id=draft_id, name="Q4")
    assert alice.patch(draft_id=draft_id, name="Q3", idempotency_key="k-1") == first
    assert assert_current(alice, draft_id).name.value == "Q4"

    alice.delete(draft_id)
    with pytest.raises(grpc.RpcError) as caught:
        alice.get(draft_id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_expired_proposal_leaves_the_served_form_before_and_after_the_purge(database_url):
    at = days_ahead(SERVICE, database_url)
    with at() as server:
        alice = Client(server, bearer("user:alice"))
        make_catalog(alice.catalog, alice.metadata)
        draft_id = alice.patch(name="Q1", simulations=["Onboarding"]).draft_id
        alice.patch(draft_id=draft_id, description="d", soft=True, idempotency_key="soft-a")
        assert [p.idempotency_key for p in assert_current(alice, draft_id).proposals] == ["soft-a"]
    with at(days=7.01) as server:  # expired, not purged yet
        alice = Client(server, bearer("user:alice"))
        expired = assert_current(alice, draft_id)
        assert not expired.proposals and expired.name.value == "Q1"
    with watch_log("shared.purge") as purged, at(days=7.01, purge_interval=0.05) as server:
        purged.wait_for("purged 1 expired proposals")
        alice = Client(server, bearer("user:alice"))
        after = assert_current(alice, draft_id)
        assert not after.proposals and after.etag != expired.etag
        assert after.name == expired.name and after.revision == expired.revision


def test_a_draft_stored_before_the_bytes_is_read_from_its_links_then_patched_with_bytes(
    alice, catalog
):
    draft_id = alice.patch(
        name="Old",
        simulations=["Onboarding"],
        simulation_positions=[Position(simulation="Onboarding", title="P")],
    ).draft_id
    before = alice.get(draft_id)
    forget_form_cache(draft_id)  # as migration 0006 leaves a draft
    assert alice.get(draft_id) == before
    patched = alice.patch(draft_id=draft_id, departments=["Sales"])
    assert assert_current(alice, draft_id) == patched.form_state
    assert patched.form_state.simulation_positions == before.simulation_positions


def test_migration_0006_counts_the_pending_proposals_of_stored_drafts(database_url):
    database = open_database(database_url)
    draft_id = uuid.uuid4()
    try:
        Runner(database, directory=str(SERVICE.migrations)).up(target="0005_expiry_and_purging")
        p = database.param
        database.execute_sql(
            "INSERT INTO draft (id, owner, state, revision, created_at, update_time, etag) "
            f"VALUES ({p}, 'user:alice', 1, 1, '2026-01-01', '2026-01-01', 'W/1')",
            (draft_id.hex,),
        )
        for key, decision in (("pending", 0), ("accepted", 1)):
            database.execute_sql(
                "INSERT INTO proposal (id, principal, key, draft_id, created_draft, change,"
                " decision, create_time) VALUES"
                f" ({p}, 'user:alice', {p}, {p}, {p}, '{{}}', {p}, {p})",
                (uuid.uuid4().hex, key, draft_id.hex, False, decision, utcnow()),
            )
        assert apply_migrations(database, SERVICE.migrations) == [
            "0006_draft_form_cache",
            "0007_draft_events",
        ]
        counted = database.execute_sql("SELECT staged_proposals FROM draft").fetchall()
    finally:
        close_store(database)
    assert counted == [(1,)]
    with serve(SERVICE, database_url) as server:
        alice = Client(server, bearer("user:alice"))
        form = alice.get(str(draft_id))  # from its links: it has no form bytes yet
        assert [p.idempotency_key for p in form.proposals] == ["pending"]
        patched = alice.patch(draft_id=str(draft_id), name="Q1")
        assert assert_current(alice, str(draft_id)) == patched.form_state
