"""Random patch sequences, checked against a small model of the form written from SPEC 5."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import field_mask_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cohort_service.conftest import Catalog

DEPARTMENTS = ["Sales", "Engineering", "Finance"]

# One operation: what the request carries, and how the model expects the form to change.
picks = st.lists(st.tuples(st.sampled_from(DEPARTMENTS), st.booleans(), st.booleans()), max_size=4)
operations = st.one_of(
    st.tuples(st.just("departments"), picks.filter(bool)),
    st.tuples(st.just("clear_departments")),
    st.tuples(
        st.just("name"), st.text(alphabet="abc XYZ", min_size=1, max_size=12).filter(str.strip)
    ),
    st.tuples(st.just("clear_name")),
    st.tuples(st.just("active"), st.booleans()),
    st.tuples(
        st.just("flags"),
        st.sampled_from([None, "high", "low"]),
        st.sets(st.sampled_from(["email", "chat"])),
    ),
    st.tuples(st.just("unknown_department")),
)
sequences = st.lists(
    st.tuples(operations, st.sampled_from(["apply", "accept", "reject"])), min_size=1, max_size=6
)


@dataclass
class FormModel:
    """The form as the spec describes it, kept apart from the server's implementation."""

    name: str | None = None
    departments: list[str] = field(default_factory=list)  # ids, in order
    flags: list[str] = field(default_factory=list)  # option ids, in order
    pending: set[str] = field(default_factory=set)
    revision: int = 0


def request_and_expectation(op, model: FormModel, catalog: Catalog):
    """(request fields, the model after the op, or None if the server must refuse it)."""
    kind = op[0]
    after = FormModel(
        model.name, list(model.departments), list(model.flags), set(model.pending), model.revision
    )
    cohort = {catalog.option("cohort_active", "true"), catalog.option("cohort_active", "false")}
    if kind == "departments":
        by_id = [catalog.departments[n] for n, named, _ in op[1] if not named]
        by_name = [f"  {n.upper()} " for n, named, _ in op[1] if named]
        marked = [catalog.departments[n] for n, _, pending in op[1] if pending]
        # Ids first, then names, each once (rule 3).
        after.departments = list(
            dict.fromkeys(by_id + [catalog.departments[n.strip().title()] for n in by_name])
        )
        if marked:
            after.pending = set(marked)
        fields = {"department_ids": by_id, "departments": by_name, "pending_ids": marked}
    elif kind == "clear_departments":
        after.departments = []
        fields = {"update_mask": field_mask_pb2.FieldMask(paths=["department_ids"])}
    elif kind == "name":
        after.name = op[1].strip()
        fields = {"name": op[1]}
    elif kind == "clear_name":
        after.name = None
        fields = {"update_mask": field_mask_pb2.FieldMask(paths=["name"])}
    elif kind == "active":
        chosen = catalog.option("cohort_active", "true" if op[1] else "false")
        if chosen not in after.flags:
            after.flags = [f for f in after.flags if f not in cohort] + [chosen]
        fields = {"active": op[1]}
    elif kind == "flags":
        after.flags = [catalog.option("priority", op[1])] if op[1] else []
        after.flags += [catalog.option("channels", v) for v in sorted(op[2])]
        fields = {"flag_ids": after.flags}
        if not after.flags:
            fields = {"update_mask": field_mask_pb2.FieldMask(paths=["flags"])}
    else:
        return {"departments": ["No such department"]}, None
    after.pending &= set(after.departments)
    return fields, after


def assert_matches(form, model: FormModel) -> None:
    assert [d.id for d in form.departments] == model.departments
    assert (form.name.value if form.HasField("name") else None) == model.name
    assert [f.option_id for f in form.flags] == model.flags
    assert {d.id for d in form.departments if d.pending} == model.pending
    assert set(form.pending_ids) == model.pending
    assert form.revision == model.revision


def test_random_patch_sequences_keep_the_form_the_model_predicts(alice, catalog: Catalog):
    @settings(
        max_examples=25,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(sequences)
    def run(steps):
        draft_id = alice.patch(name="start").draft_id
        model = FormModel(name="start", revision=1)
        for op, mode in steps:
            fields, expected = request_and_expectation(op, model, catalog)
            soft = mode != "apply"
            try:
                response = alice.patch(draft_id=draft_id, soft=soft, **fields)
            except grpc.RpcError as error:
                assert expected is None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert_matches(alice.get(draft_id), model)
                continue
            assert expected is not None
            expected.revision += 1
            if soft:
                assert_matches(
                    response.form_state,
                    FormModel(**{**expected.__dict__, "revision": model.revision}),
                )
                assert_matches(alice.get(draft_id), model)  # live form unchanged until accepted
                response = alice.patch(
                    idempotency_key=response.idempotency_key, accept=mode == "accept"
                )
            if mode != "reject":
                model = expected
            assert_matches(response.form_state, model)
            assert_matches(alice.get(draft_id), model)

    run()
