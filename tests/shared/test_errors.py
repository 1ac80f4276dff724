"""Domain errors map to google.rpc.Status in one place, for every status code."""

from __future__ import annotations

import grpc
import peewee
import pytest
from google.rpc import code_pb2, error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from shared import errors
from tests.support import assert_summarised

ERROR_CLASSES = [
    cls
    for cls in vars(errors).values()
    if isinstance(cls, type)
    and issubclass(cls, errors.ServiceError)
    and cls is not errors.ServiceError
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_each_error_class_maps_to_its_code_with_error_info(cls):
    status = errors.to_status(cls("what went wrong", metadata={"k": "v"}), "test-service")
    assert status.code == getattr(code_pb2, cls.code.name)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        cls.code.name,
        "test-service",
        {"k": "v"},
    )


def test_every_client_facing_status_code_has_an_error_class():
    covered = {cls.code for cls in ERROR_CLASSES}
    needed = {c for c in grpc.StatusCode} - {
        grpc.StatusCode.OK,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
    }
    assert needed <= covered, needed - covered


def test_violations_become_one_bad_request_listing_every_field():
    violations = errors.Violations()
    violations.add("departments[1]", 'no department named "Sales"')
    violations.add("name", "at most 200 characters")
    with pytest.raises(errors.InvalidArgument) as caught:
        violations.raise_if_any()
    status = errors.to_status(caught.value, "cohort-service")
    bad_request = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == list(violations)


def test_unexpected_errors_are_internal_and_reveal_nothing():
    status = errors.to_status(RuntimeError("SELECT secret FROM t"), "svc")
    assert status.code == code_pb2.INTERNAL
    assert "SELECT" not in status.message and "secret" not in str(status)


def test_does_not_exist_is_not_found_without_sql():
    status = errors.to_status(peewee.DoesNotExist("SELECT * FROM report WHERE id = 1"), "svc")
    assert status.code == code_pb2.NOT_FOUND and "SELECT" not in status.message


def test_the_message_of_an_invalid_argument_sums_up_its_first_violations():
    violations = errors.Violations()
    violations.add("departments[1]", 'no department named "Salse"')
    violations.add("name", "longer than 200 characters")
    for index in range(4):
        violations.add(f"profiles[{index}]", "is empty")
    with pytest.raises(errors.InvalidArgument) as caught:
        violations.raise_if_any()
    status = errors.to_status(caught.value, "cohort-service")
    assert status.message == (
        'the request has invalid fields: departments[1]: no department named "Salse"; '
        "name: longer than 200 characters; profiles[0]: is empty (and 3 more)"
    )
    bad_request = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad_request)
    assert len(bad_request.field_violations) == 6  # the details stay as they were


TEXT = st.text(st.characters(codec="utf-8"), max_size=400)


@given(
    message=TEXT,
    violations=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=50),
)
def test_any_violations_put_their_first_in_a_message_of_bounded_size(message, violations):
    status = errors.to_status(errors.InvalidArgument(message, violations), "svc")
    assert len(status.message.encode()) <= 512
    assert_summarised(status.message, violations)
