"""Domain errors map to google.rpc.Status in one place, for every status code."""

from __future__ import annotations

import grpc
import peewee
import pytest
from google.rpc import code_pb2, error_details_pb2

from shared import errors

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
        grpc.StatusCode.OUT_OF_RANGE,
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
