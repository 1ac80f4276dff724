"""PatchCohortDraft rule by rule (SPEC 5, rules 1-7, 11, 12): a passing and a failing case."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from cohort_service.v1 import draft_pb2
from tests.cohort_service.conftest import Catalog
from tests.cohort_service.support import details
from tests.support import snapshot


def stamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def rejected(call, *args, **kwargs) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return (caught.value.code(), *details(caught.value))


def names(items) -> list[str]:
    return [item.name for item in items]


# ---------------------------------------------------------------------------
# Rule 1: creation, draft_id and its legacy alias
# ---------------------------------------------------------------------------


def test_a_patch_without_a_draft_id_creates_a_draft_owned_by_the_caller(alice, bob):
    created = alice.patch(name="Q1")
    assert created.success and created.message == "draft created"
    assert created.form_state.draft_id == created.draft_id
    assert created.form_state.state == draft_pb2.DRAFT_STATE_ACTIVE
    assert created.form_state.revision == 1
    assert alice.get(created.draft_id).name.value == "Q1"
    assert rejected(bob.get, created.draft_id)[0] == grpc.StatusCode.NOT_FOUND


def test_input_draft_id_is_read_exactly_like_draft_id(alice):
    draft_id = alice.patch(name="Q1").draft_id
    updated = alice.patch(input_draft_id=draft_id, name="Q2")
    assert updated.draft_id == draft_id and updated.form_state.name.value == "Q2"
    same = alice.patch(draft_id=draft_id, input_draft_id=draft_id, name="Q3")
    assert same.form_state.revision == 3


def test_a_draft_id_and_a_different_input_draft_id_are_invalid(alice, server):
    first, second = alice.patch(name="A").draft_id, alice.patch(name="B").draft_id
    before = snapshot(server.database)
    code, _, violations = rejected(alice.patch, draft_id=first, input_draft_id=second, name="C")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "input_draft_id" in violations
    assert snapshot(server.database) == before


def test_an_unknown_draft_is_not_found(alice):
    code, reason, _ = rejected(alice.patch, draft_id=str(uuid.uuid4()), name="Q1")
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "DRAFT_NOT_FOUND")


def test_another_principals_draft_is_not_found_for_get_patch_delete_and_ack(alice, bob):
    staged = alice.patch(name="Q1", soft=True)
    draft_id = staged.draft_id
    assert rejected(bob.get, draft_id)[0] == grpc.StatusCode.NOT_FOUND
    assert rejected(bob.patch, draft_id=draft_id, name="mine")[0] == grpc.StatusCode.NOT_FOUND
    assert rejected(bob.delete, draft_id)[0] == grpc.StatusCode.NOT_FOUND
    ack = rejected(bob.patch, idempotency_key=staged.idempotency_key, accept=True)
    assert ack[0] == grpc.StatusCode.NOT_FOUND
    assert alice.get(draft_id).state == draft_pb2.DRAFT_STATE_DORMANT


# ---------------------------------------------------------------------------
# Rule 2: populated slots are replaced, empty ones kept, masked empty ones cleared
# ---------------------------------------------------------------------------


def test_a_populated_slot_is_replaced_and_an_empty_one_is_unchanged(alice, catalog: Catalog):
    draft_id = alice.patch(
        name="Q1", departments=["Sales", "Finance"], simulations=["Renewal"]
    ).draft_id
    form = alice.patch(draft_id=draft_id, departments=["Engineering"]).form_state
    assert names(form.departments) == ["Engineering"]
    assert names(form.simulations) == ["Renewal"]
    assert form.name.value == "Q1"


def test_an_update_mask_path_left_empty_clears_its_slot(alice, catalog: Catalog):
    draft_id = alice.patch(
        name="Q1",
        description="about",
        departments=["Sales"],
        profiles=["Team Lead", "Support Engineer"][1:],
    ).draft_id
    form = alice.patch(
        draft_id=draft_id,
        update_mask=mask("departments", "name", "description_id"),
        profile_ids=[catalog.profiles["Account Executive"]],
    ).form_state
    assert list(form.departments) == []
    assert not form.HasField("name") and not form.HasField("description")
    assert names(form.profiles) == ["Account Executive"]  # populated and named: replaced


def test_an_unknown_update_mask_path_is_invalid(alice):
    code, _, violations = rejected(alice.patch, name="Q1", update_mask=mask("departments", "owner"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations) == ["update_mask.paths[1]"]


def test_an_empty_name_without_the_mask_is_invalid_rather_than_a_silent_clear(alice):
    draft_id = alice.patch(name="Q1").draft_id
    _, _, violations = rejected(alice.patch, draft_id=draft_id, name="")
    assert "update_mask" in violations["name"]
    assert not alice.patch(
        draft_id=draft_id, name="", update_mask=mask("name")
    ).form_state.HasField("name")


# ---------------------------------------------------------------------------
# Rule 3: ids and names are unioned; names resolved trimmed and case-insensitively
# ---------------------------------------------------------------------------


def test_ids_and_names_of_a_slot_are_unioned_and_names_resolved_loosely(alice, catalog: Catalog):
    form = alice.patch(
        department_ids=[catalog.departments["Finance"], catalog.departments["Sales"]],
        departments=["  sales ", "ENGINEERING"],
    ).form_state
    assert names(form.departments) == ["Finance", "Sales", "Engineering"]


def test_bad_uuids_unknown_ids_and_unknown_names_are_each_reported(alice, catalog: Catalog):
    unknown = str(uuid.uuid4())
    code, _, violations = rejected(
        alice.patch,
        department_ids=["not-a-uuid", unknown],
        departments=["Sales", "Marketing"],
        simulations=["Nope"],
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations) == {
        "department_ids[0]",
        "department_ids[1]",
        "departments[1]",
        "simulations[0]",
    }
    assert violations["departments[1]"].startswith('no department named "Marketing"; see ')
    assert unknown in violations["department_ids[1]"]


# ---------------------------------------------------------------------------
# Rule 4: name / name_id, description / description_id
# ---------------------------------------------------------------------------


def test_name_creates_a_resource_that_name_id_can_select_again(alice):
    first = alice.patch(name="  Shared name ", description="Long text").form_state
    assert first.name.value == "Shared name"
    second = alice.patch(name_id=first.name.id, description_id=first.description.id).form_state
    assert (second.name.id, second.name.value) == (first.name.id, "Shared name")
    assert second.description.value == "Long text"


def test_name_with_name_id_and_description_with_description_id_are_invalid(alice, bob):
    form = alice.patch(name="A", description="B").form_state
    _, _, violations = rejected(
        alice.patch,
        name="C",
        name_id=form.name.id,
        description="D",
        description_id=form.description.id,
    )
    assert set(violations) == {"name_id", "description_id"}
    # A name resource is private to its creator.
    _, _, violations = rejected(bob.patch, name_id=form.name.id)
    assert set(violations) == {"name_id"}


# ---------------------------------------------------------------------------
# Rule 5: flags
# ---------------------------------------------------------------------------


def test_active_alone_changes_only_the_cohort_active_selection(alice, catalog: Catalog):
    high, email = catalog.option("priority", "high"), catalog.option("channels", "email")
    draft_id = alice.patch(flag_ids=[high, email], active=True).draft_id
    form = alice.patch(draft_id=draft_id, active=False).form_state
    assert form.HasField("active") and form.active is False
    assert [(f.flag_key, f.value) for f in form.flags] == [
        ("priority", "high"),
        ("channels", "email"),
        ("cohort_active", "false"),
    ]


def test_flag_ids_are_canonical_and_replace_the_whole_selection(alice, catalog: Catalog):
    draft_id = alice.patch(flag_ids=[catalog.option("priority", "high")], active=True).draft_id
    chat, email = catalog.option("channels", "chat"), catalog.option("channels", "email")
    form = alice.patch(draft_id=draft_id, flag_ids=[chat, email]).form_state
    assert [f.option_id for f in form.flags] == [chat, email]  # multi-select takes both
    assert not form.HasField("active")


def test_two_options_of_a_single_select_or_boolean_flag_are_invalid(alice, catalog: Catalog):
    _, _, violations = rejected(
        alice.patch,
        flag_ids=[
            catalog.option("priority", "high"),
            catalog.option("priority", "low"),
            catalog.option("needs_review", "true"),
            catalog.option("needs_review", "false"),
        ],
    )
    assert set(violations) == {"flag_ids[1]", "flag_ids[3]"}
    assert "SINGLE_SELECT" in violations["flag_ids[1]"] and "BOOLEAN" in violations["flag_ids[3]"]


def test_active_that_contradicts_a_cohort_active_option_in_flag_ids_is_invalid(
    alice, catalog: Catalog
):
    false_option = catalog.option("cohort_active", "false")
    _, _, violations = rejected(alice.patch, flag_ids=[false_option], active=True)
    assert set(violations) == {"active"}
    agreeing = alice.patch(flag_ids=[false_option], active=False).form_state
    assert [f.option_id for f in agreeing.flags] == [false_option]


# ---------------------------------------------------------------------------
# Rule 6: value resources and the selections they belong to
# ---------------------------------------------------------------------------


def test_value_resources_are_created_and_can_be_selected_again_by_id(alice, catalog: Catalog):
    form = alice.patch(
        simulations=["Onboarding"],
        profiles=["Support Engineer"],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(simulation="onboarding", title="Lead")
        ],
        simulation_availability=[
            draft_pb2.DraftSimulationAvailabilityValue(
                simulation_id=catalog.simulations["Onboarding"],
                start_time=stamp(100),
                end_time=stamp(200),
            )
        ],
        profile_personas=[
            draft_pb2.DraftProfilePersonaValue(profile="Support Engineer", persona="Calm")
        ],
    ).form_state
    position, window, persona = (
        form.simulation_positions[0],
        form.simulation_availability[0],
        form.profile_personas[0],
    )
    assert (position.simulation, position.title) == ("Onboarding", "Lead")
    assert (window.start_time.seconds, window.end_time.seconds) == (100, 200)
    assert (persona.profile_id, persona.persona) == (catalog.profiles["Support Engineer"], "Calm")
    again = alice.patch(
        simulation_ids=[catalog.simulations["Onboarding"]],
        profile_ids=[catalog.profiles["Support Engineer"]],
        simulation_position_ids=[position.id],
        simulation_availability_ids=[window.id],
        profile_persona_ids=[persona.id],
    ).form_state
    assert [
        again.simulation_positions[0].id,
        again.simulation_availability[0].id,
        again.profile_personas[0].id,
    ] == [
        position.id,
        window.id,
        persona.id,
    ]


def test_another_principals_value_resource_stays_unknown_after_its_owner_read_it(
    alice, bob, catalog: Catalog
):
    # The owner's reads keep the row in the process (lookups._OwnedRows); the owner check
    # must still apply to every later use of it.
    draft = alice.patch(
        simulations=["Onboarding"],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title="Lead")
        ],
        name="Mine",
    )
    position = draft.form_state.simulation_positions[0].id
    name_id = draft.form_state.name.id
    alice.get(draft.draft_id)
    code, _, violations = rejected(
        bob.patch, simulations=["Onboarding"], simulation_position_ids=[position], name_id=name_id
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations) == {"simulation_position_ids[0]", "name_id"}
    assert alice.get(draft.draft_id).simulation_positions[0].title == "Lead"


def test_a_value_whose_simulation_or_profile_is_not_selected_is_invalid(alice, catalog: Catalog):
    _, _, violations = rejected(
        alice.patch,
        simulations=["Renewal"],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title="Lead")
        ],
        profile_personas=[draft_pb2.DraftProfilePersonaValue(profile="Team Lead", persona="Calm")],
    )
    assert set(violations) == {"simulation_positions[0]", "profile_personas[0].profile"}


def test_a_position_selected_by_id_without_its_simulation_is_invalid_and_names_it(
    alice, catalog: Catalog
):
    # The position's simulation is neither in the draft nor in the request: the store reads
    # it apart from the slot's rows, to name it.
    position = (
        alice.patch(
            simulations=["Onboarding"],
            simulation_positions=[
                draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title="Lead")
            ],
        )
        .form_state.simulation_positions[0]
        .id
    )
    _, _, violations = rejected(
        alice.patch, simulations=["Renewal"], simulation_position_ids=[position]
    )
    assert set(violations) == {"simulation_position_ids[0]"}
    assert "'Onboarding'" in violations["simulation_position_ids[0]"]


def test_dropping_the_simulation_a_linked_position_needs_is_invalid(alice, catalog: Catalog):
    draft_id = alice.patch(
        simulations=["Onboarding"],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(simulation="Onboarding", title="Lead")
        ],
    ).draft_id
    _, _, violations = rejected(alice.patch, draft_id=draft_id, simulations=["Renewal"])
    assert set(violations) == {"simulations"}
    cleared = alice.patch(
        draft_id=draft_id, simulations=["Renewal"], update_mask=mask("simulation_positions")
    ).form_state
    assert list(cleared.simulation_positions) == []


def test_an_availability_window_must_start_before_it_ends(alice, catalog: Catalog):
    _, _, violations = rejected(
        alice.patch,
        simulations=["Onboarding"],
        simulation_availability=[
            draft_pb2.DraftSimulationAvailabilityValue(
                simulation="Onboarding", start_time=stamp(200), end_time=stamp(200)
            ),
            draft_pb2.DraftSimulationAvailabilityValue(
                simulation="Onboarding", start_time=stamp(1)
            ),
        ],
    )
    assert set(violations) == {
        "simulation_availability[0].end_time",
        "simulation_availability[1].end_time",
    }


# ---------------------------------------------------------------------------
# Rule 7: pending_ids
# ---------------------------------------------------------------------------


def test_pending_ids_mark_items_of_the_resulting_form(alice, catalog: Catalog):
    sales = catalog.departments["Sales"]
    form = alice.patch(departments=["Sales", "Finance"], pending_ids=[sales]).form_state
    assert [(d.name, d.pending) for d in form.departments] == [("Sales", True), ("Finance", False)]
    assert list(form.pending_ids) == [sales]
    # Left empty, the marks stay on the items that remain; a mask path clears them.
    kept = alice.patch(draft_id=form.draft_id, name="Q1").form_state
    assert list(kept.pending_ids) == [sales]
    cleared = alice.patch(draft_id=form.draft_id, update_mask=mask("pending_ids")).form_state
    assert list(cleared.pending_ids) == []


def test_a_pending_id_that_is_not_in_the_resulting_form_is_invalid(alice, catalog: Catalog):
    _, _, violations = rejected(
        alice.patch, departments=["Sales"], pending_ids=[catalog.departments["Finance"], "x"]
    )
    assert set(violations) == {"pending_ids[0]", "pending_ids[1]"}


# ---------------------------------------------------------------------------
# Rule 11: the revision counts applied patches
# ---------------------------------------------------------------------------


def test_each_applied_patch_increments_the_revision(alice):
    draft_id = alice.patch(name="Q1").draft_id
    for expected in (2, 3):
        assert (
            alice.patch(draft_id=draft_id, description="x" * expected).form_state.revision
            == expected
        )
    assert alice.get(draft_id).revision == 3


# ---------------------------------------------------------------------------
# Rule 12 and the error model: limits, and every problem in one BadRequest
# ---------------------------------------------------------------------------


def test_lists_names_and_descriptions_over_their_limits_are_invalid(alice, catalog: Catalog):
    ok = alice.patch(name="n" * 200, description="d" * 10_000, departments=["Sales"] * 1000)
    assert len(ok.form_state.departments) == 1
    _, _, violations = rejected(
        alice.patch, name="n" * 201, description="d" * 10_001, departments=["Sales"] * 1001
    )
    assert set(violations) == {"name", "description", "departments"}


def test_an_invalid_request_reports_every_problem_at_once_and_changes_nothing(
    alice, server, catalog: Catalog
):
    draft_id = alice.patch(name="Q1", departments=["Sales"]).draft_id
    before = snapshot(server.database)
    code, reason, violations = rejected(
        alice.patch,
        draft_id=draft_id,
        name="n" * 300,
        departments=["Sales", "Sales Team"],
        simulation_ids=["nope"],
        simulation_positions=[draft_pb2.DraftSimulationPositionValue(title="")],
        flag_ids=[catalog.option("priority", "high"), catalog.option("priority", "low")],
        pending_ids=[str(uuid.uuid4())],
        update_mask=mask("colour"),
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert set(violations) == {
        "name",
        "departments[1]",
        "simulation_ids[0]",
        "simulation_positions[0]",
        "simulation_positions[0].title",
        "flag_ids[1]",
        "pending_ids[0]",
        "update_mask.paths[0]",
    }
    assert violations["departments[1]"].startswith('no department named "Sales Team"; see ')
    assert snapshot(server.database) == before
    assert alice.get(draft_id).revision == 1
