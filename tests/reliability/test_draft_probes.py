"""No answer depends on another principal's drafts: every id-taking RPC, probed three ways.

The RPCs that take a report id, and where in the request, come from the descriptors
(`id_paths`), so a new one is probed as soon as it exists; one the derivation misses must be
listed in TAKES_NO_REPORT_ID or test_every_rpc_is_probed_or_takes_no_report_id fails. Each
probe gets a fresh original, in one of three worlds: the other principal has nothing; has
drafts (of that original, and of one whose id under the old draft id rule was the prober's
draft id), changed and with view settings; or tried to create originals with the prober's
and its own draft ids. The prober's answer (code, message, details, or the response) must be
the same in all three, ids and timestamps aside. Long run: DRAFT_PROBE_EXAMPLES=N draws
principals and original ids with `:`, `~`, `%`, URL syntax and unicode (hypothesis).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import descriptor, descriptor_pool, text_format, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # noqa: F401  (ErrorInfo/BadRequest in the pool)
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from report_service.ids import draft_id
from report_service.v1 import report_pb2, report_service_pb2
from tests.reliability.rpc import DEFINITIONS, invoke, methods_of
from tests.reliability.servers import AUTH
from tests.reliability.worlds import World, valid_request
from tests.support import bearer, failure

REPORT = report_pb2.Report.DESCRIPTOR.full_name
# RPCs with no report id in their request; any other RPC must have one id_paths finds.
TAKES_NO_REPORT_ID = {"ListReports"}
METHODS = {method.name: method for method in methods_of(DEFINITIONS["report"])}
SCENARIOS = ("nothing", "drafts", "squatting")


def id_paths(message: descriptor.Descriptor, prefix: str = "") -> list[str]:
    """Where a request of this type names a report: `id`, `report_id`, or a Report's `id`."""
    paths = []
    for field in message.fields:
        if field.is_repeated:
            continue
        if field.type == field.TYPE_STRING and field.name in ("id", "report_id"):
            paths.append(f"{prefix}{field.name}")
        elif field.message_type is not None and field.message_type.full_name == REPORT:
            paths.append(f"{prefix}{field.name}.id")
    return paths


def _with_id(request: Message, path: str, value: str) -> Message:
    *parents, name = path.split(".")
    target = request
    for parent in parents:
        target = getattr(target, parent)
    setattr(target, name, value)
    return request


def _old_draft_id(principal: str, original_id: str) -> str:
    """The draft id rule before this change: the squatter's guess of a victim's draft id."""
    _, colon, rest = original_id.partition(":")
    return f"{principal}:{rest if colon else original_id}-draft"


PROBED = [
    (name, path) for name, method in sorted(METHODS.items()) for path in id_paths(method.input_type)
]


# ---------------------------------------------------------------------------
# One probe
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    """Who probes, who else acts, and the original they meet at (with `{t}` for a fresh tag)."""

    prober: str
    other: str
    original: str
    # Originals the other drafts besides `original`: ones whose draft id, by the old rule,
    # was the prober's draft id of `original` (principal `user` editing `x:bob:sales` and
    # `user:bob` editing `team:sales`).
    twins: tuple[str, ...] = ()


CASTS = (
    Cast("user:alice", "user:bob", "team:mkt-{t}"),
    Cast("user:bob", "user", "team:sales-{t}", twins=("x:bob:sales-{t}",)),
)


# Random per write: they differ between the worlds whatever the other principal did.
_RANDOM = ("etag", "original_etag", "revision_id", "base_revision_id")
# The one documented exception (ReportEvent.event_id in report.proto): a watch cursor is a
# position among every event of the report, other principals' draft events counted.
_POSITIONS = ("event_id",)


def _clear_timestamps(message: Message) -> None:
    """Clear every timestamp of message, and the random etags and revision ids."""
    for field, value in message.ListFields():
        if field.message_type is None:
            if field.name in _RANDOM or field.name in _POSITIONS:
                message.ClearField(field.name)
            continue
        if field.message_type.full_name == timestamp_pb2.Timestamp.DESCRIPTOR.full_name:
            message.ClearField(field.name)
        elif field.is_repeated:
            if not field.message_type.GetOptions().map_entry:
                for item in value:
                    _clear_timestamps(item)
        else:
            _clear_timestamps(value)


def _answer(channel, method, request, metadata) -> tuple:
    """What the caller learns: the code, and the response or the message and details."""
    try:
        response = invoke(channel, method, request, metadata)
    except grpc.RpcError as error:
        status = rpc_status.from_call(error)
        details = text_format.MessageToString(
            status, as_utf8=True, descriptor_pool=descriptor_pool.Default()
        )
        assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), details
        return error.code(), error.details(), details
    _clear_timestamps(response)
    return grpc.StatusCode.OK, text_format.MessageToString(response, as_utf8=True)


def _ignore_refusal(call, *args) -> None:
    try:
        call(*args)
    except grpc.RpcError as error:
        assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), error


def probe(channel, cast: Cast, scenario: str, method_name: str, path: str, target: str) -> tuple:
    """The prober's answer to one call naming `target` of a fresh world, tag replaced."""
    tag = uuid.uuid4().hex[:10]
    original = cast.original.replace("{t}", tag)
    twins = [twin.replace("{t}", tag) for twin in cast.twins]
    prober, other = bearer(cast.prober, auth=AUTH), bearer(cast.other, auth=AUTH)
    R = report_service_pb2

    def call(name, metadata, request):
        return invoke(channel, METHODS[name], request, metadata)

    for report_id in (original, *twins):
        call("CreateReport", prober, R.CreateReportRequest(report=_report(report_id)))
    if scenario == "drafts":
        for report_id in (original, *twins):
            draft = call("EditReport", other, R.EditReportRequest(id=report_id))
            call(
                "UpdateReport",
                other,
                R.UpdateReportRequest(report=report_pb2.Report(id=draft.id, name="mine")),
            )
            call(
                "UpdateUserReportSettings",
                other,
                R.UpdateUserReportSettingsRequest(report_id=draft.id),
            )
    elif scenario == "squatting":
        squats = {
            rule(who, original)
            for rule in (draft_id, _old_draft_id)
            for who in (cast.prober, cast.other)
        }
        for squat in sorted(squats):
            _ignore_refusal(
                call, "CreateReport", other, R.CreateReportRequest(report=_report(squat))
            )
    ids = _targets(cast, original)
    (revision,) = call(
        "ListReportRevisions", prober, R.ListReportRevisionsRequest(report_id=original)
    ).revisions
    world = World(
        "report",
        tag,
        ids={"original": original, "draft": ids[target], "revision": revision.revision_id},
    )
    request = _with_id(valid_request("report", method_name, world), path, ids[target])
    answer = _answer(channel, METHODS[method_name], request, prober)
    return tuple(
        part.replace(tag, "<t>").replace(revision.revision_id, "<r>")
        if isinstance(part, str)
        else part
        for part in answer
    )


def _report(report_id: str) -> report_pb2.Report:
    return report_pb2.Report(id=report_id, type="dashboard", name="Marketing")


def _targets(cast: Cast, original: str) -> dict[str, str]:
    """The ids a probe names: the original and the draft ids around it (each id once)."""
    targets = {
        "original": original,
        "prober's draft": draft_id(cast.prober, original),
        "other's draft": draft_id(cast.other, original),
        "prober's old draft": _old_draft_id(cast.prober, original),
        "other's old draft": _old_draft_id(cast.other, original),
    }
    seen: set[str] = set()
    return {
        name: value for name, value in targets.items() if not (value in seen or seen.add(value))
    }


def assert_answers_do_not_depend_on_other_drafts(channel, cast: Cast) -> int:
    """Every probe in every scenario; returns the number of calls compared."""
    compared = 0
    for method_name, path in PROBED:
        for target in _targets(cast, cast.original):
            answers = {
                scenario: probe(channel, cast, scenario, method_name, path, target)
                for scenario in SCENARIOS
            }
            for scenario in SCENARIOS[1:]:
                assert answers[scenario] == answers["nothing"], (
                    f"{method_name} {path}={target} ({cast}): the answer with the other "
                    f"principal's {scenario} differs from the answer without:\n"
                    f"{answers[scenario]}\n  vs\n{answers['nothing']}"
                )
            compared += len(SCENARIOS)
    return compared


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


def test_every_rpc_is_probed_or_takes_no_report_id():
    probed = {name for name, _ in PROBED}
    assert probed | TAKES_NO_REPORT_ID == set(METHODS), sorted(set(METHODS) - probed)
    assert not probed & TAKES_NO_REPORT_ID, sorted(probed & TAKES_NO_REPORT_ID)
    # What the derivation must find today (so that a broken derivation cannot pass as empty).
    assert {"CreateReport", "UpdateReport", "GetReport", "ListReportActivities"} <= probed


@pytest.mark.parametrize("cast", CASTS, ids=lambda cast: f"{cast.prober}-vs-{cast.other}")
def test_no_answer_depends_on_another_principals_drafts(servers, cast):
    server, _ = servers.get("report")
    assert assert_answers_do_not_depend_on_other_drafts(server.channel, cast) > 0


@pytest.mark.parametrize(("method_name", "path"), PROBED)
def test_every_report_id_field_refuses_ids_outside_the_grammar(servers, method_name, path):
    server, world = servers.get("report")
    for bad in ("", "x" * 513, "team:a\nb", "team:\u202eevil", "team:a\x7f", " team:a", "team:a "):
        request = _with_id(valid_request("report", method_name, world), path, bad)
        with pytest.raises(grpc.RpcError) as caught:
            invoke(server.channel, METHODS[method_name], request, bearer(auth=AUTH))
        error = failure(caught.value)
        assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [path]), (
            method_name,
            repr(bad),
            error,
        )


# ---------------------------------------------------------------------------
# Long run: DRAFT_PROBE_EXAMPLES=200 .venv/bin/python -m pytest -s <this file>
# ---------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("DRAFT_PROBE_EXAMPLES", "0"))
_ODD = st.sampled_from([":", "~", "%", "?", "#", "/", " ", "-draft", "é", "名", "\U0001f600"])
_WORD = st.text(
    st.characters(categories=("L", "N", "P", "S"), exclude_characters=" "), min_size=1, max_size=8
)
_PIECES = st.lists(st.one_of(_WORD, _ODD), min_size=1, max_size=6).map("".join)
_PRINCIPAL = _PIECES.map(lambda text: text.replace(" ", "_")[:200])
_ORIGINAL = st.tuples(st.sampled_from(["team:", "org:", "", "x:"]), _PIECES).map(
    lambda parts: (parts[0] + parts[1]).strip(" ")[:200] + "-{t}"
)


@pytest.mark.skipif(not EXAMPLES, reason="long run: set DRAFT_PROBE_EXAMPLES")
def test_no_answer_depends_on_another_principals_drafts_for_drawn_principals_and_ids(servers):
    server, _ = servers.get("report")
    totals = {"casts": 0, "compared": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        prober=_PRINCIPAL,
        other=st.one_of(_PRINCIPAL, st.just("")),
        original=_ORIGINAL,
        twin=_ORIGINAL,
    )
    def check(prober, other, original, twin):
        other = other or prober.rpartition(":")[0] or "user"  # "": the prober's prefix
        if prober == other or original == twin:
            return
        twins = [twin]
        if prober.startswith(other + ":"):  # a twin whose old draft id was the prober's
            slug = original.partition(":")[2] or original  # holds the tag: fresh per probe
            twins.append(f"x:{prober[len(other) + 1 :]}:{slug}")
        cast = Cast(prober, other, original, twins=tuple(twins))
        totals["compared"] += assert_answers_do_not_depend_on_other_drafts(server.channel, cast)
        totals["casts"] += 1

    check()
    print(f"draft probes: {totals['casts']} casts, {totals['compared']} answers compared")
