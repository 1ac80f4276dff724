"""shared.logs: the fields a call gives its log lines, and tokens kept out of every line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from shared.auth import mint_token
from shared.logs import bind_call, call_fields, log_handler, unbind_call
from tests.support import TEST_AUTH

TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _logged(log_format: str, message: str, *args, **extra) -> str:
    """What a handler of log_format writes for one record."""
    stream = io.StringIO()
    logger = logging.getLogger(f"tests.shared.test_logs.{log_format}")
    logger.propagate = False
    handler = log_handler(stream, log_format)
    logger.addHandler(handler)
    try:
        logger.warning(message, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_bearer_token_in_any_part_of_a_record_is_redacted(log_format):
    token = mint_token(TEST_AUTH, "user:alice", ["cohort:read"])
    line = _logged(log_format, "quoted %s", f"Bearer {token}", idempotency_key=token)
    assert token not in line
    assert token.rsplit(".", 1)[1] not in line
    assert line.count("[token redacted]") == (2 if log_format == "json" else 1)


def test_a_json_line_carries_the_fields_of_the_call_being_served_and_no_other():
    fields = {"method": "/x.v1.S/M", "principal": "user:alice", **call_fields("ipv4:1", [], None)}
    bound = bind_call(fields)
    try:
        inside = json.loads(_logged("json", "in the call"))
    finally:
        unbind_call(bound)
    outside = json.loads(_logged("json", "after it"))
    assert (inside["method"], inside["principal"], inside["peer"]) == (
        "/x.v1.S/M",
        "user:alice",
        "ipv4:1",
    )
    assert "method" not in outside and "principal" not in outside
    assert {"time", "level", "logger", "message"} <= outside.keys()


@pytest.mark.parametrize(
    "metadata",
    [
        [("traceparent", f"ff-{TRACE_ID}-{SPAN_ID}-01")],  # version ff is invalid
        [("traceparent", f"00-{TRACE_ID}-{'0' * 16}-01")],  # all-zero span id
        [("traceparent", f"00-{TRACE_ID.upper()}-{SPAN_ID}-01")],  # hex is lowercase
        [("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-01-extra")],  # version 00 has 4 parts
        [("traceparent", "garbage")],
        [("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-01")] * 2,  # which one? neither
    ],
)
def test_a_traceparent_that_is_not_one_valid_w3c_header_gives_no_trace_ids(metadata):
    assert call_fields("peer", metadata, None) == {"peer": "peer"}


def test_a_valid_traceparent_gives_the_callers_trace_and_span_ids():
    fields = call_fields("peer", [("traceparent", f"01-{TRACE_ID}-{SPAN_ID}-00-future")], None)
    assert (fields["trace_id"], fields["span_id"]) == (TRACE_ID, SPAN_ID)


def _message_with(*fields: tuple[str, int]):
    """A request type of its own, with the given (name, label) string fields."""
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(name="logged.proto", package="logged")
    message = proto.message_type.add(name="Request")
    for number, (name, label) in enumerate(fields, 1):
        message.field.add(
            name=name,
            number=number,
            label=label,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        )
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logged.Request"))


def test_request_ids_are_found_by_field_name_in_any_request_type():
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    request_type = _message_with(("request_id", optional), ("idempotency_key", optional))
    fields = call_fields("peer", [], request_type(request_id="r-1", idempotency_key="k" * 500))
    assert fields == {"peer": "peer", "request_id": "r-1", "idempotency_key": "k" * 200}
    assert call_fields("peer", [], request_type()) == {"peer": "peer"}  # unset: not logged


def test_a_repeated_request_id_field_is_not_an_id():
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    request_type = _message_with(("request_id", repeated))
    assert call_fields("peer", [], request_type(request_id=["a", "b"])) == {"peer": "peer"}
