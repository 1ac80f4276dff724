"""Clients that own their data: every acknowledged write logged, every read checked against it.

An actor is one principal working on its own report (report-service) or its own cohort
draft (cohort-service). Nobody else writes there, so the state after the last write it got
acknowledged is the state the service must show: the actor's own reads check that at once,
and `verify` checks it for every actor at the end, from the acknowledged-write log alone.

The log is JSON lines, one per acknowledged write: {"service", "key", "sub", "write",
"state"}; the last line of a key is what the store must hold, and the counts must match
too: a cohort draft's revision is its number of lines (each applied patch adds one,
idempotent repeats none), a report has one activity per acknowledged commit.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

import grpc
from google.protobuf import struct_pb2
from grpc_status import rpc_status

from bench.scenarios import department
from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.report_service.support import struct
from tests.support import bearer, failure

TOKEN_SECONDS = 6 * 3600
CALL_TIMEOUT = 30.0
DEPARTMENTS = 8  # the catalog the cohort actors pick from: department(0) .. department(7)


Caller = Callable[[Any, str, Any], Any]  # (stub, method name, request) -> response


class Inconsistent(AssertionError):
    """A successful response, or the store, disagrees with the acknowledged writes."""


@dataclass(frozen=True)
class Call:
    """One call as its client saw it (wall-clock times, comparable across processes)."""

    actor: str
    method: str
    started: float
    ended: float
    code: str  # "OK" or the grpc.StatusCode name
    reason: str = ""  # ErrorInfo reason of a failed call, when it has one
    details: str = ""


def _reason(error: grpc.RpcError) -> str:
    # A call refused by the transport (listener closed) carries no google.rpc.Status.
    return failure(error).reason if rpc_status.from_call(error) is not None else ""


class AckLog:
    """Where an actor records each write the service acknowledged (a line, flushed at once)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, service: str, key: str, sub: str, write: str, state: dict) -> None:
        entry = {"service": service, "key": key, "sub": sub, "write": write, "state": state}
        line = json.dumps(entry)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def read_ack_logs(texts: Iterable[str]) -> dict[tuple[str, str], list[dict]]:
    """(service, key) -> its acknowledged writes in order, from the logs' contents."""
    writes: dict[tuple[str, str], list[dict]] = {}
    for text in texts:
        for line in text.splitlines():
            entry = json.loads(line)
            writes.setdefault((entry["service"], entry["key"]), []).append(entry)
    return writes


class Actor:
    """One principal and the entity it alone writes; `step` makes one call or one sequence."""

    service = ""

    def __init__(self, name: str, log: AckLog, calls: Callable[[Call], None]) -> None:
        self.name = name
        self.sub = f"user:{name}"
        self.metadata = tuple(bearer(self.sub, ttl_seconds=TOKEN_SECONDS))
        self._log = log
        self._record = calls

    def call(self, stub, method: str, request):
        """Call stub.method, record the outcome; RpcError propagates to the step."""
        started = time.time()
        try:
            response = getattr(stub, method)(request, metadata=self.metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            self._record(
                Call(
                    self.name,
                    method,
                    started,
                    time.time(),
                    error.code().name,
                    _reason(error),
                    error.details() or "",
                )
            )
            raise
        self._record(Call(self.name, method, started, time.time(), "OK"))
        return response

    # A write made by one call, which a test can keep in flight by locking `row` (table, id).
    row: tuple[str, str]

    def prepare_single_write(self, channel: grpc.Channel) -> None:
        """The calls the single write needs first."""

    def single_write(self, channel: grpc.Channel) -> None:
        raise NotImplementedError

    def acknowledged(self, key: str, write: str, state: dict) -> None:
        self._log.write(self.service, key, self.sub, write, state)

    def check(self, what: str, seen, expected) -> None:
        if seen != expected:
            raise Inconsistent(f"{self.name}: {what} is {seen!r}, expected {expected!r}")


# ---------------------------------------------------------------------------
# report-service: Edit -> Put -> Commit of a new definition, view settings, reads
# ---------------------------------------------------------------------------


class ReportActor(Actor):
    """Owns report `team:<name>`; writes defn {"seq": n} by commits and view settings."""

    service = "report"

    def __init__(self, name, log, calls, *, report_type: str = "dashboard") -> None:
        super().__init__(name, log, calls)
        self.report_id = f"team:{name}"
        self.report_type = report_type
        self.seq = 0
        self.state = {"defn_seq": 0, "settings_seq": None}

    def setup(self, channel: grpc.Channel) -> None:
        report = report_pb2.Report(
            id=self.report_id, type=self.report_type, name=self.name, defn=struct({"seq": 0})
        )
        self.call(self.stub(channel), "CreateReport", _request("CreateReport", report=report))
        self.acknowledged(self.report_id, "create", self.state)

    @staticmethod
    def stub(channel: grpc.Channel) -> report_service_pb2_grpc.ReportServiceStub:
        return report_service_pb2_grpc.ReportServiceStub(channel)

    def step(self, channel: grpc.Channel, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.4:
            self.read(channel)
        elif roll < 0.85:
            self.commit(channel)
        else:
            self.update_settings(channel)

    def commit(self, channel: grpc.Channel) -> report_pb2.Report:
        """The seed's workflow with a new definition; the response must carry it."""
        self.prepare_commit(channel)
        return self.finish_commit(channel)

    def prepare_commit(self, channel: grpc.Channel) -> None:
        """EditReport and PutReportDraft with the next definition (steps 1 and 2)."""
        stub = self.stub(channel)
        self.seq += 1
        self.call(stub, "EditReport", _request("EditReport", id=self.report_id))
        draft = report_pb2.ReportDraftInput(defn=struct(self._defn()))
        self.call(
            stub, "PutReportDraft", _request("PutReportDraft", id=self.report_id, draft=draft)
        )

    def finish_commit(self, channel: grpc.Channel) -> report_pb2.Report:
        """CommitReportDraft (step 3): one call, which the shutdown test keeps in flight."""
        report = self.call(
            self.stub(channel),
            "CommitReportDraft",
            _request("CommitReportDraft", id=self.report_id),
        )
        self.check("the committed report's id", report.id, self.report_id)
        self.check("the committed defn", _defn(report), self._defn())
        # Commit removes every user's view settings of the report.
        self.state = {"defn_seq": self.seq, "settings_seq": None}
        self.acknowledged(self.report_id, "commit", self.state)
        return report

    def _defn(self) -> dict:
        return {"seq": self.seq, "actor": self.name}

    @property
    def row(self) -> tuple[str, str]:
        return "report", self.report_id

    def prepare_single_write(self, channel: grpc.Channel) -> None:
        self.prepare_commit(channel)

    def single_write(self, channel: grpc.Channel) -> None:
        self.finish_commit(channel)

    def update_settings(self, channel: grpc.Channel) -> None:
        self.seq += 1
        request = _request(
            "UpdateUserReportSettings",
            report_id=self.report_id,
            settings=struct({"seq": self.seq}),
        )
        reply = self.call(self.stub(channel), "UpdateUserReportSettings", request)
        self.check("the updated settings", _seq(reply.settings), self.seq)
        self.state = {**self.state, "settings_seq": self.seq}
        self.acknowledged(self.report_id, "settings", self.state)

    def read(self, channel: grpc.Channel) -> None:
        found = read_report(self.call, channel, self.report_id)
        self.check("what the store holds", found, self.state)


def _request(rpc: str, **fields):
    return getattr(report_service_pb2, f"{rpc}Request")(**fields)


def _seq(message: struct_pb2.Struct) -> int | None:
    value = dict(message).get("seq")
    return None if value is None else int(value)


def _defn(report: report_pb2.Report) -> dict:
    values = dict(report.defn)
    return {"seq": int(values.get("seq", -1)), "actor": values.get("actor")}


def read_report(call: Caller, channel: grpc.Channel, report_id: str) -> dict:
    stub = report_service_pb2_grpc.ReportServiceStub(channel)
    report = call(stub, "GetReport", _request("GetReport", id=report_id))
    settings = call(
        stub, "GetUserReportSettings", _request("GetUserReportSettings", report_id=report_id)
    )
    return {"defn_seq": _seq(report.defn), "settings_seq": _seq(settings.settings)}


# ---------------------------------------------------------------------------
# cohort-service: patches by name with idempotency keys, repeats, reads
# ---------------------------------------------------------------------------


class CohortActor(Actor):
    """Owns one cohort draft; patches its name and departments (by name), repeats keys."""

    service = "cohort"

    def __init__(self, name, log, calls) -> None:
        super().__init__(name, log, calls)
        self.seq = 0
        self.draft_id = ""
        self.state: dict = {}
        self.last: tuple[draft_service_pb2.PatchCohortDraftRequest, bytes] | None = None

    @staticmethod
    def stub(channel: grpc.Channel) -> draft_service_pb2_grpc.CohortDraftServiceStub:
        return draft_service_pb2_grpc.CohortDraftServiceStub(channel)

    def setup(self, channel: grpc.Channel) -> None:
        self.patch(channel, random.Random(self.name))

    def step(self, channel: grpc.Channel, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.45:
            self.read(channel)
        elif roll < 0.9 or self.last is None:
            self.patch(channel, rng)
        else:
            self.repeat(channel)

    def patch(self, channel: grpc.Channel, rng: random.Random) -> None:
        names = [department(n) for n in rng.sample(range(DEPARTMENTS), rng.randint(1, 3))]
        request = draft_service_pb2.PatchCohortDraftRequest(
            draft_id=self.draft_id,
            name=f"{self.name} #{self.seq + 1}",
            departments=names,
            idempotency_key=uuid.uuid4().hex,
        )
        reply = self.call(self.stub(channel), "PatchCohortDraft", request)
        self.seq += 1
        expected = {
            "draft_id": self.draft_id or reply.draft_id,
            "revision": self.state.get("revision", 0) + 1,
            "name": request.name,
            "departments": names,
        }
        self.check("the patched form", form(reply.form_state), expected)
        self.draft_id, self.state = reply.draft_id, expected
        self.last = (request, reply.SerializeToString())
        self.acknowledged(self.sub, "patch", self.state)

    @property
    def row(self) -> tuple[str, str]:
        return "draft", self.draft_id

    def single_write(self, channel: grpc.Channel) -> None:
        self.patch(channel, random.Random(self.seq))

    def repeat(self, channel: grpc.Channel) -> None:
        """The last patch again, same key: the first response again, nothing applied."""
        request, first = self.last
        reply = self.call(self.stub(channel), "PatchCohortDraft", request)
        self.check("a repeated patch's response", reply.SerializeToString(), first)

    def read(self, channel: grpc.Channel) -> None:
        self.check("what the store holds", read_cohort(self.call, channel), self.state)


def form(state) -> dict:
    return {
        "draft_id": state.draft_id,
        "revision": state.revision,
        "name": state.name.value,
        "departments": [item.name for item in state.departments],
    }


def read_cohort(call: Caller, channel: grpc.Channel) -> dict:
    """The principal's one draft; its list holding anything else is an inconsistency."""
    stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
    listed = call(stub, "ListCohortDrafts", draft_service_pb2.ListCohortDraftsRequest(page_size=10))
    if len(listed.drafts) != 1:
        return {"drafts": [d.draft_id for d in listed.drafts]}
    request = draft_service_pb2.GetCohortDraftRequest(draft_id=listed.drafts[0].draft_id)
    return form(call(stub, "GetCohortDraft", request))


# ---------------------------------------------------------------------------
# Verifying a store against the log
# ---------------------------------------------------------------------------


def plain_caller(sub: str) -> Caller:
    """Calls as `sub`, recording nothing: for checks made after a run."""
    metadata = tuple(bearer(sub))

    def call(stub, method: str, request):
        return getattr(stub, method)(request, metadata=metadata, timeout=CALL_TIMEOUT)

    return call


def count_activities(call: Caller, channel: grpc.Channel, report_id: str) -> int:
    stub = report_service_pb2_grpc.ReportServiceStub(channel)
    count, token = 0, ""
    while True:
        request = _request(
            "ListReportActivities", report_id=report_id, page_size=1000, page_token=token
        )
        page = call(stub, "ListReportActivities", request)
        count += len(page.activities)
        token = page.next_page_token
        if not token:
            return count


def verify(
    writes: dict[tuple[str, str], list[dict]], channels: dict[str, grpc.Channel]
) -> tuple[int, list[str]]:
    """(entities checked, mismatches): each one's store state against its logged writes."""
    mismatches = []
    for (service, key), entries in sorted(writes.items()):
        expected = entries[-1]["state"]
        call = plain_caller(entries[-1]["sub"])
        if service == "report":
            found = read_report(call, channels[service], key)
            counts = (
                count_activities(call, channels[service], key),
                sum(entry["write"] == "commit" for entry in entries),
            )
            what = "activities, acknowledged commits"
        else:
            found = read_cohort(call, channels[service])
            counts = (found.get("revision"), len(entries))
            what = "revision, acknowledged patches"
        if found != expected:
            mismatches.append(f"{service} {key}: store has {found}, last acknowledged {expected}")
        if counts[0] != counts[1]:
            mismatches.append(f"{service} {key}: {what} = {counts}")
    return len(writes), mismatches


# ---------------------------------------------------------------------------
# Driving actors
# ---------------------------------------------------------------------------


class Recorder:
    """Every call of a run, thread-safe: counts by "method code", seconds by method."""

    def __init__(self, keep: bool = True) -> None:
        self.calls: list[Call] = []  # when keep: each Call, for the shutdown test's checks
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, list[float]] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def __call__(self, call: Call) -> None:
        with self._lock:
            key = f"{call.method} {call.code}"
            self.counts[key] = self.counts.get(key, 0) + 1
            self.seconds.setdefault(call.method, []).append(call.ended - call.started)
            if self._keep:
                self.calls.append(call)


def own_channel(address: str) -> grpc.Channel:
    """A channel with a connection of its own (channels share connections by default), so
    that the actors of one process spread over the workers of a --workers service."""
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def drive(
    actors: list[Actor],
    channels: dict[str, grpc.Channel],
    stop: threading.Event,
    *,
    seed: int,
    on_error: Callable[[Actor, Exception], bool],
) -> list[threading.Thread]:
    """A thread per actor stepping until stop is set; on_error says whether to go on.

    channels: by actor name.
    """

    def run(actor: Actor, rng: random.Random) -> None:
        while not stop.is_set():
            try:
                actor.step(channels[actor.name], rng)
            except (grpc.RpcError, Inconsistent) as error:
                if not on_error(actor, error):
                    return

    threads = [
        threading.Thread(target=run, args=(actor, random.Random(seed * 1000 + n)), daemon=True)
        for n, actor in enumerate(actors)
    ]
    for thread in threads:
        thread.start()
    return threads
