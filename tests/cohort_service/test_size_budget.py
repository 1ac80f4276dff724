"""Size budgets (shared.budget): no patch makes a form over 1 MiB, even by re-linking value
resources by id from a small request; ListCohortDrafts pages end at 2 MiB."""

from __future__ import annotations

import tracemalloc

import grpc
import pytest

from cohort_service import lookups
from cohort_service.v1 import catalog_pb2, catalog_service_pb2, draft_pb2
from shared.budget import PAGE_MAX_BYTES, RESOURCE_MAX_BYTES, SIZE_BUDGET_EXCEEDED
from tests.support import failure, snapshot

POSITIONS = 90  # of 10,000-character descriptions: about 0.9 MB of form
DESCRIPTION = "d" * 10_000
WIDE = "\U0001f389"  # 4 bytes in UTF-8


def _big_draft(alice, simulation: str, key: str):
    """A draft whose form is just under the budget; returns the patch's response."""
    return alice.patch(
        name=f"Big {key}",
        simulation_ids=[simulation],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(
                simulation_id=simulation, title=f"{key} {index}", description=DESCRIPTION
            )
            for index in range(POSITIONS)
        ],
        idempotency_key=key,
    )


def _position_ids(*responses) -> list[str]:
    return [item.id for r in responses for item in r.form_state.simulation_positions]


def test_a_small_patch_relinking_large_values_by_id_is_refused_naming_the_field(
    alice, catalog, server
):
    simulation = catalog.simulations["Onboarding"]
    first, second = (_big_draft(alice, simulation, key) for key in ("big-1", "big-2"))
    assert first.form_state.ByteSize() < RESOURCE_MAX_BYTES
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.patch(
            draft_id=first.draft_id,
            simulation_position_ids=_position_ids(first, second),
            idempotency_key="relink",
        )

    assert snapshot(server.database) == before  # no idempotency record either
    error = failure(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error.message
    assert error.reason == SIZE_BUDGET_EXCEEDED
    assert error.fields == ["simulation_position_ids"]
    assert f"{RESOURCE_MAX_BYTES:,}" in error.violations[0][1]
    # The key was not spent on the refused request: a fitting one may use it.
    assert alice.patch(draft_id=first.draft_id, name="fits", idempotency_key="relink").success


def test_a_soft_patch_whose_preview_is_over_the_budget_is_refused(alice, catalog, server):
    simulation = catalog.simulations["Onboarding"]
    first, second = (_big_draft(alice, simulation, key) for key in ("big-1", "big-2"))
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.patch(
            draft_id=first.draft_id,
            simulation_position_ids=_position_ids(first, second),
            soft=True,
            idempotency_key="soft-relink",
        )

    assert snapshot(server.database) == before
    assert failure(caught.value).fields == ["simulation_position_ids"]


def test_list_cohort_drafts_pages_end_early_at_the_byte_budget_and_lose_nothing(alice, catalog):
    simulation = catalog.simulations["Onboarding"]
    created = [_big_draft(alice, simulation, f"big-{index}").draft_id for index in range(4)]

    seen, token, pages = [], "", 0
    while True:
        page = alice.list(page_size=50, page_token=token)
        assert page.ByteSize() <= PAGE_MAX_BYTES
        seen += [draft.draft_id for draft in page.drafts]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert sorted(seen) == sorted(created)
    assert pages >= 2


def test_list_flags_pages_end_early_at_the_byte_budget_and_lose_nothing(alice):
    """Twenty flags of 100 options with 200-character values and labels in 4-byte characters:
    ~160 KB each, one 3.3 MB page before."""
    keys = [f"wide_{index:02d}" for index in range(20)]
    for key in keys:
        alice.catalog.CreateFlag(
            catalog_service_pb2.CreateFlagRequest(
                key=key,
                type=catalog_pb2.FLAG_TYPE_MULTI_SELECT,
                options=[
                    catalog_pb2.FlagOption(value=f"{n:03d}" + "🎉" * 197, label="🎉" * 200)
                    for n in range(100)
                ],
            ),
            metadata=alice.metadata,
        )

    seen, token = [], ""
    while True:
        page = alice.catalog.ListFlags(
            catalog_service_pb2.ListFlagsRequest(page_size=1000, page_token=token),
            metadata=alice.metadata,
        )
        assert page.ByteSize() <= PAGE_MAX_BYTES
        seen += [flag.key for flag in page.flags]
        token = page.next_page_token
        if not token:
            break

    assert [key for key in seen if key.startswith("wide_")] == keys


def test_relinking_many_large_values_is_refused_before_their_rows_are_read(alice, catalog):
    """504 positions of 10,000 four-byte characters: ~20 MB of rows and ~20 MB of form were
    read and built only to be refused; their lengths are counted in the database."""
    simulation = catalog.simulations["Onboarding"]
    ids = []
    for batch in range(21):  # 24 such positions fit in one form
        created = alice.patch(
            simulation_ids=[simulation],
            simulation_positions=[
                draft_pb2.DraftSimulationPositionValue(
                    simulation_id=simulation, title="t", description=WIDE * 10_000
                )
                for _ in range(24)
            ],
            idempotency_key=f"batch-{batch}",
        )
        ids += _position_ids(created)
    target = created.draft_id

    tracemalloc.start()  # it traces the server's threads too: the server is in-process
    try:
        with pytest.raises(grpc.RpcError) as caught:
            alice.patch(draft_id=target, simulation_position_ids=ids, idempotency_key="relink")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert failure(caught.value).fields == ["simulation_position_ids"]
    assert peak < 10 * 1024 * 1024, f"the refused patch allocated {peak:,} bytes at its peak"


def test_the_value_row_cache_is_bounded_in_characters_not_only_in_rows(alice, catalog):
    """4,096 cached rows of 10,000-character descriptions were ~160 MB of process memory."""
    simulation = catalog.simulations["Onboarding"]
    for batch in range(6):
        created = alice.patch(
            simulation_ids=[simulation],
            simulation_positions=[
                draft_pb2.DraftSimulationPositionValue(
                    simulation_id=simulation, title="t", description=DESCRIPTION
                )
                for _ in range(POSITIONS)
            ],
            idempotency_key=f"cache-{batch}",
        )
        alice.get(created.draft_id)  # reads the rows, and caches them

    limit = lookups.OWNED_ROWS_MAX_CHARS
    assert sum(map(lookups._chars, lookups._OWNED_ROWS._columns.values())) <= limit


def test_stored_idempotent_responses_stay_within_the_budget(alice, catalog, server):
    """A stored response is the patch's answer, whose form is budgeted: the re-link that
    made a 4.4 MiB form stored a 4.4 MiB response, kept for as long as the key."""
    simulation = catalog.simulations["Onboarding"]
    first, second = (_big_draft(alice, simulation, key) for key in ("big-1", "big-2"))
    with pytest.raises(grpc.RpcError):
        alice.patch(
            draft_id=first.draft_id,
            simulation_position_ids=_position_ids(first, second),
            idempotency_key="relink",
        )

    sizes = [
        length
        for (length,) in server.database.execute_sql(
            "SELECT LENGTH(response) FROM idempotency_record"
        ).fetchall()
    ]
    assert len(sizes) == 2
    assert max(sizes) <= RESOURCE_MAX_BYTES


def test_accepting_a_proposal_that_no_longer_fits_the_budget_is_refused(alice, catalog, server):
    """Staged when it fitted; the draft grew since: the accept is refused, the proposal stays."""
    simulation, profile = catalog.simulations["Onboarding"], catalog.profiles["Account Executive"]
    first, second = (_big_draft(alice, simulation, key) for key in ("big-1", "big-2"))
    draft = alice.patch(name="small", idempotency_key="small").draft_id
    alice.patch(
        draft_id=draft,
        simulation_ids=[simulation],
        simulation_position_ids=_position_ids(first)[:45] + _position_ids(second)[:40],
        soft=True,
        idempotency_key="soft",
    )
    alice.patch(
        draft_id=draft,
        profile_ids=[profile],
        profile_personas=[
            draft_pb2.DraftProfilePersonaValue(
                profile_id=profile, persona=f"p{index}", description=DESCRIPTION
            )
            for index in range(30)
        ],
        idempotency_key="grow",
    )
    before = snapshot(server.database)

    with pytest.raises(grpc.RpcError) as caught:
        alice.patch(draft_id=draft, idempotency_key="soft", accept=True)

    assert snapshot(server.database) == before
    error = failure(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, SIZE_BUDGET_EXCEEDED)
    assert error.fields == ["accept"]
    assert alice.patch(draft_id=draft, idempotency_key="soft", accept=False).success
