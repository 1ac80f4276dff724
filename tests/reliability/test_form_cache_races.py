"""The form bytes on a draft row (cohort_service.form_cache) under forced interleavings.

Each test holds the draft's row lock from a connection of its own (tests.reliability.races)
so that write A provably waits mid-transaction while write B starts; afterwards the row's
bytes must be current and equal to a rebuild from the links, and hold both writes: a write
that built its form from bytes read before it held the row would lose the other's change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from cohort_service.server import SERVICE as COHORT
from tests.cohort_service.conftest import make_catalog
from tests.cohort_service.support import Client, assert_current
from tests.reliability.races import Served, served_on_postgres
from tests.support import bearer

pytestmark = pytest.mark.postgres
OK = grpc.StatusCode.OK


@pytest.fixture(scope="module")
def cohorts(postgres_admin) -> Iterator[Served]:
    with served_on_postgres(postgres_admin, COHORT, "race_form_cache") as served:
        admin = Client(served.running, bearer("user:alice"))
        make_catalog(admin.catalog, admin.metadata)
        yield served


@pytest.fixture
def alice(cohorts) -> Client:
    return Client(cohorts.running, bearer("user:alice"))


def _race(cohorts: Served, draft_id: str, first, second):
    result = cohorts.race(cohorts.lock("draft", "id", draft_id), first, second)
    assert result.forced, "the first call did not wait on the test's lock"
    assert (result.first.code, result.second.code) == (OK, OK), result
    return result


def test_two_patches_of_different_slots_both_reach_the_stored_form(cohorts, alice):
    draft_id = alice.patch(name="Before", departments=["Sales"]).draft_id
    _race(
        cohorts,
        draft_id,
        lambda: alice.patch(draft_id=draft_id, name="From A"),
        lambda: alice.patch(draft_id=draft_id, departments=["Finance", "Engineering"]),
    )
    form = assert_current(alice, draft_id)
    assert form.name.value == "From A" and form.revision == 3
    assert [d.name for d in form.departments] == ["Finance", "Engineering"]


def test_a_patch_and_a_soft_patch_staged_meanwhile_are_both_shown(cohorts, alice):
    draft_id = alice.patch(name="Before").draft_id
    key = f"soft-{uuid.uuid4().hex}"
    _race(
        cohorts,
        draft_id,
        lambda: alice.patch(draft_id=draft_id, departments=["Sales"]),
        lambda: alice.patch(draft_id=draft_id, name="Proposed", soft=True, idempotency_key=key),
    )
    form = assert_current(alice, draft_id)
    assert [d.name for d in form.departments] == ["Sales"] and form.name.value == "Before"
    assert [p.idempotency_key for p in form.proposals] == [key]


def test_an_accept_and_a_patch_meanwhile_both_reach_the_stored_form(cohorts, alice):
    draft_id = alice.patch(name="Before").draft_id
    key = f"soft-{uuid.uuid4().hex}"
    alice.patch(draft_id=draft_id, description="Proposed", soft=True, idempotency_key=key)
    _race(
        cohorts,
        draft_id,
        lambda: alice.patch(idempotency_key=key, accept=True),
        lambda: alice.patch(draft_id=draft_id, departments=["Sales"]),
    )
    form = assert_current(alice, draft_id)
    assert form.description.value == "Proposed" and [d.name for d in form.departments] == ["Sales"]
    assert not form.proposals
