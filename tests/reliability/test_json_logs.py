"""--log-format json: every line a real service process writes is a JSON object, and the
access line of each call carries its fields; no line, text or JSON, holds a bearer token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import grpc
import pytest

from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.auth import mint_token
from shared.config import AuthSettings
from tests.processes import free_port, service_process
from tests.support import ALL_PERMISSIONS, TEST_AUTH, TEST_SECRET

_D = draft_service_pb2
LIST = "/cohort_service.v1.CohortDraftService/ListCohortDrafts"
PATCH = "/cohort_service.v1.CohortDraftService/PatchCohortDraft"
# The second patch that reaches the commit raises: the one way to an INTERNAL in a process.
FAILPOINTS = "cohort.patch.before_commit=raise#2"
TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
ACCESS_TEXT = re.compile(
    r"^\S+ \S+ INFO shared\.access rpc method=(\S+) principal=(\S+) code=([A-Z_]+) "
    r"duration_ms=\d+\.\d\d$"
)


@dataclass(frozen=True)
class Call:
    method: str
    request: object
    metadata: list[tuple[str, str]]
    code: grpc.StatusCode


def _sequence(token: str, forged: str) -> list[Call]:
    """Calls whose access lines are known in advance: one code or field of interest each."""
    alice = [("authorization", f"Bearer {token}")]
    traced = [*alice, ("traceparent", TRACEPARENT)]
    # All-zero trace id: not a trace context (W3C), so no ids are logged.
    untraceable = [*alice, ("traceparent", f"00-{'0' * 32}-{SPAN_ID}-01")]
    code = grpc.StatusCode
    listing, patch = _D.ListCohortDraftsRequest, _D.PatchCohortDraftRequest
    return [
        Call(LIST, listing(), traced, code.OK),
        Call(LIST, listing(page_size=-1), alice, code.INVALID_ARGUMENT),
        Call(LIST, listing(), [("authorization", f"Bearer {forged}")], code.UNAUTHENTICATED),
        Call(PATCH, patch(name="Logged", idempotency_key="key-1"), alice, code.OK),
        Call(PATCH, patch(name="Long", idempotency_key="k" * 300), alice, code.INVALID_ARGUMENT),
        Call(PATCH, patch(name="Boom", idempotency_key="key-2"), traced, code.INTERNAL),
        Call(LIST, listing(), untraceable, code.OK),
    ]


def _run(channel: grpc.Channel, calls: list[Call]) -> None:
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
    for call in calls:
        rpc = getattr(stub, call.method.rsplit("/", 1)[1])
        try:
            rpc(call.request, metadata=call.metadata, timeout=30)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        assert code == call.code, call


def _tokens() -> tuple[str, str]:
    token = mint_token(TEST_AUTH, "user:alice", ALL_PERMISSIONS)
    forged = mint_token(AuthSettings(secret="another-secret-" + "y" * 32), "user:alice", ["x"])
    return token, forged


def _json_lines(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # every line: a line that is not JSON fails here
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


def _assert_no_token(text: str, *tokens: str) -> None:
    for token in tokens:
        assert token not in text
        assert token.rsplit(".", 1)[1] not in text  # not even its signature


def _logged_sequence(tmp_path, log_format: str) -> tuple[str, str]:
    """The test sequence's calls to a cohort-service process logging in log_format: its
    stdout and its stderr, once it stopped cleanly and wrote no token."""
    url = f"sqlite:///{tmp_path / 'cohort.db'}"
    token, forged = _tokens()
    with service_process(
        "cohort-service",
        url,
        tmp_path / "service.log",
        args=("--log-format", log_format),
        failpoints=FAILPOINTS,
    ) as running:
        with running.channel() as channel:
            _run(channel, _sequence(token, forged))
        assert running.stop() == 0
        stdout = "".join(running.stdout())
    stderr = running.log()
    _assert_no_token(stdout + stderr, token, forged)
    return stdout, stderr


def test_a_json_process_logs_one_json_object_per_line_with_each_calls_fields(tmp_path):
    stdout, stderr = _logged_sequence(tmp_path, "json")
    out, records = _json_lines(stdout), _json_lines(stderr)
    assert [r["message"] for r in out if r["message"].startswith("listening on ")] != []
    assert any(r["message"] == "failpoints armed: cohort.patch.before_commit" for r in records)

    access = [r for r in records if r["logger"] == "shared.access"]
    assert [(r["method"], r["code"], r["principal"]) for r in access] == [
        (LIST, "OK", "user:alice"),
        (LIST, "INVALID_ARGUMENT", "user:alice"),
        (LIST, "UNAUTHENTICATED", None),
        (PATCH, "OK", "user:alice"),
        (PATCH, "INVALID_ARGUMENT", "user:alice"),
        (PATCH, "INTERNAL", "user:alice"),
        (LIST, "OK", "user:alice"),
    ]
    for record in access:
        assert record["level"] == "INFO"
        assert record["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:"))
        assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
    traced = [(r.get("trace_id"), r.get("span_id")) for r in access]
    assert traced == [(TRACE_ID, SPAN_ID), *[(None, None)] * 4, (TRACE_ID, SPAN_ID), (None, None)]
    keys = [r.get("idempotency_key") for r in access]
    assert keys == [None, None, None, "key-1", "k" * 200, "key-2", None]  # quoted up to 200

    # The unexpected error: logged once, with its traceback and the call it broke.
    with_trace = [r for r in records if "traceback" in r]
    assert len(with_trace) == 1, with_trace
    (error,) = with_trace
    assert error["level"] == "ERROR" and error["logger"] == "shared.errors"
    assert "FailpointError: failpoint cohort.patch.before_commit fired" in error["traceback"]
    assert (error["method"], error["principal"], error["idempotency_key"]) == (
        PATCH,
        "user:alice",
        "key-2",
    )
    assert (error["trace_id"], error["span_id"]) == (TRACE_ID, SPAN_ID)
    assert sum("FailpointError" in line for line in stderr.splitlines()) == 1


def test_log_format_text_keeps_the_access_lines_as_they_were_and_logs_no_token(tmp_path):
    stdout, stderr = _logged_sequence(tmp_path, "text")
    assert stdout.splitlines()[1].startswith("listening on 127.0.0.1:")
    access = [m.groups() for m in map(ACCESS_TEXT.match, stderr.splitlines()) if m]
    assert [code for _, _, code in access] == [
        "OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "OK", "INVALID_ARGUMENT", "INTERNAL", "OK"
    ]  # fmt: skip
    assert access[2][1] == "-"  # no principal before the token is verified
    assert stderr.count("FailpointError: failpoint cohort.patch.before_commit fired") == 1


def test_json_logs_reach_the_workers_processes_too(tmp_path):
    url = f"sqlite:///{tmp_path / 'report.db'}"
    with service_process(
        "report-service",
        url,
        tmp_path / "service.log",
        port=free_port(),
        workers=2,
        env={"REPORT_LOG_FORMAT": "json"},
    ) as running:
        token, _ = _tokens()
        with running.channel() as channel:
            report_service_pb2_grpc.ReportServiceStub(channel).ListReports(
                report_service_pb2.ListReportsRequest(),
                metadata=[("authorization", f"Bearer {token}"), ("traceparent", TRACEPARENT)],
                timeout=30,
            )
        assert running.stop() == 0
        stdout = "".join(running.stdout())
    records = _json_lines(running.log())
    _json_lines(stdout)
    (access,) = [r for r in records if r["logger"] == "shared.access"]
    assert (access["method"], access["code"], access["trace_id"]) == (
        "/report_service.v1.ReportService/ListReports",
        "OK",
        TRACE_ID,
    )
    assert sum(r["message"].startswith("listening on ") for r in records) == 2  # each worker


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--log-format", "xml"), {}, "--log-format"),
        ((), {"COHORT_LOG_FORMAT": "yaml"}, "COHORT_LOG_FORMAT"),
    ],
)
def test_an_unknown_log_format_stops_the_start_naming_its_flag_or_variable(
    args, env, named, tmp_path
):
    environment = {
        **os.environ,
        "AUTH_JWT_SECRET": TEST_SECRET,
        "COHORT_DATABASE_URL": f"sqlite:///{tmp_path / 'cohort.db'}",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "cohort_service", "serve", "--port", "0", *args],
        env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert re.fullmatch(
        rf"cohort-service: error: {named} must be one of text, json, got '\w+'\n", result.stderr
    ), result.stderr
