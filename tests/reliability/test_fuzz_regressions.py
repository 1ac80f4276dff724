"""The defects the fuzzer found, one test each: all were INTERNAL, or an error the client lost."""

from __future__ import annotations

import base64

import grpc
import pytest
from google.protobuf import struct_pb2

from cohort_service.v1 import draft_pb2, draft_service_pb2
from report_service.v1 import report_pb2, report_service_pb2
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of, request_type
from tests.reliability.servers import AUTH
from tests.reliability.worlds import OWNER
from tests.support import bearer, failure, snapshot


def _method(service: str, name: str):
    return next(m for m in methods_of(DEFINITIONS[service]) if m.name == name)


def _refused(server, service: str, name: str, request, metadata=None):
    """The failure of a call that must change nothing."""
    metadata = bearer(OWNER, auth=AUTH) if metadata is None else metadata
    before = snapshot(server.database)
    with pytest.raises(grpc.RpcError) as caught:
        invoke(server.channel, _method(service, name), request, metadata)
    assert snapshot(server.database) == before
    return failure(caught.value)


def _deep_struct(depth: int) -> struct_pb2.Struct:
    root = struct_pb2.Struct()
    current = root
    for _ in range(depth):
        current = current.fields["a"].struct_value
    return root


# ---------------------------------------------------------------------------
# Request bytes the server cannot decode: grpc answered INTERNAL before any of our code ran
# ---------------------------------------------------------------------------

CORRUPT = b"\n\xff\xff\xff\xff\xff"  # field 1, with a length that is no valid varint


def _not_utf8(method) -> bytes | None:
    """The method's first string field, holding bytes that are not UTF-8."""
    for field in method.input_type.fields:
        if field.type == field.TYPE_STRING:
            return bytes([field.number << 3 | 2, 2, 0xC3, 0x28])
    return None


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_undecodable_request_bytes_are_invalid_argument_on_every_method(servers, service):
    server, _ = servers.get(service)
    for method in methods_of(DEFINITIONS[service]):
        for raw in filter(None, (CORRUPT, _not_utf8(method))):
            found = _refused(server, service, method.name, raw)
            assert (found.code, found.reason) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_REQUEST",
            ), (method.name, raw)


def test_a_struct_nested_deeper_than_protobuf_decodes_is_invalid_argument(servers):
    server, world = servers.get("report")
    request = report_service_pb2.UpdateUserReportSettingsRequest(report_id=world.ids["original"])
    request.settings.CopyFrom(_deep_struct(60))  # the constructor would refuse it client-side
    found = _refused(server, "report", "UpdateUserReportSettings", request)
    assert (found.code, found.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    assert "nested" in found.message


def test_an_undecodable_request_without_a_token_is_unauthenticated_first(servers):
    server, _ = servers.get("report")
    found = _refused(server, "report", "GetReport", CORRUPT, [])
    assert found.code == grpc.StatusCode.UNAUTHENTICATED


# ---------------------------------------------------------------------------
# NUL characters: PostgreSQL text refuses them (INTERNAL), SQLite stored them
# ---------------------------------------------------------------------------


def test_nul_in_a_report_id_or_a_struct_is_invalid_argument_naming_each_field(servers):
    server, _ = servers.get("report")
    report = report_pb2.Report(id="team:a\x00b", type="dashboard", name="Sales\x00")
    report.settings.update({"theme\x00": "dark", "ok": ["x\x00"]})
    found = _refused(
        server, "report", "CreateReport", report_service_pb2.CreateReportRequest(report=report)
    )
    assert (found.code, found.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "NUL_IN_TEXT")
    assert sorted(found.fields) == [  # map entries come in no particular order
        "report.id",
        "report.name",
        "report.settings.fields['ok'].list_value.values[0].string_value",
        "report.settings.fields['theme\\x00']",
    ]
    found = _refused(server, "report", "GetReport", report_service_pb2.GetReportRequest(id="\x00"))
    assert found.fields == ["id"]


def test_nul_in_cohort_names_values_and_keys_is_invalid_argument_naming_each_field(servers):
    server, world = servers.get("cohort")
    request = draft_service_pb2.PatchCohortDraftRequest(
        draft_id=world.ids["draft"],
        name="Q3\x00",
        departments=["Sales", "\x00"],
        simulation_positions=[
            draft_pb2.DraftSimulationPositionValue(
                simulation_id=world.ids["simulation"], title="\x00"
            )
        ],
        idempotency_key="k\x00",
    )
    found = _refused(server, "cohort", "PatchCohortDraft", request)
    assert (found.code, found.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "NUL_IN_TEXT")
    assert found.fields == [
        "name",
        "departments[1]",
        "simulation_positions[0].title",
        "idempotency_key",
    ]


# ---------------------------------------------------------------------------
# Errors too large for the trailers: the client got RESOURCE_EXHAUSTED and lost the error
# ---------------------------------------------------------------------------


def test_a_thousand_bad_ids_and_a_huge_value_still_get_a_readable_bad_request(servers):
    server, world = servers.get("cohort")
    request = draft_service_pb2.PatchCohortDraftRequest(
        draft_id=world.ids["draft"],
        department_ids=["x" * 100_000] + ["not-a-uuid"] * 999,
    )
    found = _refused(server, "cohort", "PatchCohortDraft", request)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT
    assert found.fields[:2] == ["department_ids[0]", "department_ids[1]"]
    assert len(found.violations[0][1]) <= 160
    assert "more invalid fields are not listed" in found.violations[-1][1]


def test_a_summary_of_four_byte_characters_still_fits_the_trailers(servers):
    # grpc-message is percent-encoded: each byte of U+1F600 costs 3 characters of trailer.
    server, world = servers.get("cohort")
    request = draft_service_pb2.PatchCohortDraftRequest(
        draft_id=world.ids["draft"],
        department_ids=["\U0001f600" * 100_000] + ["\U0001f600" * 200] * 999,
        departments=["\U0001f600" * 200] * 999,
    )
    found = _refused(server, "cohort", "PatchCohortDraft", request)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT  # not RESOURCE_EXHAUSTED: received
    assert found.message.startswith("the request has invalid fields: department_ids[0]: ")
    assert len(found.message.encode()) <= 512


# ---------------------------------------------------------------------------
# Forged page tokens: a NUL reached PostgreSQL, a 65-bit integer SQLite, deep JSON recursion
# ---------------------------------------------------------------------------


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED_TOKENS = {
    "NUL in a string": _token(b'["reports", "a\\u0000b"]'),
    "NUL alone": _token(b'["a\\u0000"]'),
    "NUL in a key": _token(b'["a\\u0000", "00000000-0000-0000-0000-000000000000"]'),
    "integer past 64 bits": _token(b'["activities", 18446744073709551616]'),
    "nested lists": _token(b"[[1]]"),
    "JSON nested too deep for the parser": _token(b"[" * 100_000),
}


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_forged_page_tokens_are_invalid_argument_on_every_list(servers, service):
    server, world = servers.get(service)
    for method in methods_of(DEFINITIONS[service]):
        if "page_token" not in method.input_type.fields_by_name:
            continue
        for label, token in FORGED_TOKENS.items():
            request = request_type(method)(page_token=token)
            if "report_id" in method.input_type.fields_by_name:
                request.report_id = world.ids["original"]
            found = _refused(server, service, method.name, request)
            assert (found.code, found.fields) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                ["page_token"],
            ), (method.name, label)
