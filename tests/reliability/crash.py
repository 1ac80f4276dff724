"""Crash harness: SIGKILL a real service process at random moments and at its failpoints.

Each round starts the service on the same database and port — every other round armed at
all of its failpoints (`kill@p`, see shared/failpoints.py), the others plain production —
while client threads drive writes and log what was acknowledged; the process dies at a
failpoint or by the harness's SIGKILL at a random moment (seeded). After every kill, and
once more through an unarmed process at the end, the workload checks its invariants: no
acknowledged write lost, nothing half-applied, idempotency records consistent with the data.

    CRASH_ROUNDS=50 CRASH_SEED=7 .venv/bin/python -m pytest -s \\
        tests/reliability/test_crash_consistency.py
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import peewee
from google.protobuf import field_mask_pb2, struct_pb2

from cohort_service.v1 import draft_service_pb2, draft_service_pb2_grpc
from report_service.revisions import REVISIONS_KEPT
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from shared import failpoints
from shared.db import open_database
from tests.processes import ServiceProcess, free_port, start_service
from tests.support import bearer, failure, snapshot

# A call that was cut off by a crash (or by the end of the run): its outcome is unknown.
INTERRUPTED = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)
CALL_TIMEOUT = 30.0  # a call waits for the next process while the service is down
# Reconnect quickly to the restarted process (the default back-off grows to minutes).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class Interrupted(Exception):
    """The call's outcome is unknown: the process died under it, or the run is ending."""


@dataclass
class Figures:
    rounds: int = 0
    failpoint_kills: collections.Counter = field(default_factory=collections.Counter)
    random_kills: int = 0
    attempted: int = 0  # writes sent (each retry of one write counts once)
    acknowledged: int = 0
    interrupted: int = 0  # calls cut off by a kill
    checked: int = 0  # invariant checks that passed
    unexpected: list[str] = field(default_factory=list)

    def line(self, title: str) -> str:
        at_failpoints = sum(self.failpoint_kills.values())
        where = ", ".join(f"{name} {n}" for name, n in sorted(self.failpoint_kills.items()))
        return (
            f"{title}: {self.rounds} rounds, {at_failpoints + self.random_kills} kills "
            f"({self.random_kills} at random moments, {at_failpoints} at failpoints: "
            f"{where or 'none'}), {self.attempted} writes attempted, {self.acknowledged} "
            f"acknowledged, {self.interrupted} calls interrupted, {self.checked} invariant "
            "checks passed"
        )


# ---------------------------------------------------------------------------
# Calls that survive the service's deaths
# ---------------------------------------------------------------------------


class Calls:
    """Stub calls on one channel to the fixed port, waiting for the service while it is down."""

    def __init__(self, address: str, figures: Figures) -> None:
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stopping = threading.Event()
        self.figures = figures
        self._lock = threading.Lock()

    def __call__(self, method: Callable, request, metadata):
        if self.stopping.is_set():
            raise Interrupted()
        try:
            return method(request, metadata=metadata, timeout=CALL_TIMEOUT, wait_for_ready=True)
        except grpc.RpcError as error:
            if error.code() in INTERRUPTED:
                with self._lock:
                    self.figures.interrupted += 1
                raise Interrupted() from None
            raise
        except ValueError:  # the channel was closed: the run is over
            if self.stopping.is_set():
                raise Interrupted() from None
            raise

    def unexpected(self, text: str) -> None:
        with self._lock:
            self.figures.unexpected.append(text)

    def count(self, *, attempted: int = 0, acknowledged: int = 0) -> None:
        with self._lock:
            self.figures.attempted += attempted
            self.figures.acknowledged += acknowledged

    def close(self) -> None:
        self.stopping.set()
        self.channel.close()


# ---------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------


class Workload:
    """What the client threads do, and what must hold afterwards."""

    service: str
    points: tuple[str, ...]  # the failpoints of this service

    def setup(self, calls: Calls) -> None:
        """What the threads need before they start (no process is killed before it ends)."""

    def drive(self, index: int, calls: Calls) -> None:
        raise NotImplementedError

    def check_store(self, database: peewee.Database, figures: Figures) -> None:
        """Invariants of the stored data, checked after every kill (nothing is running)."""
        raise NotImplementedError

    def check_service(
        self, database: peewee.Database, channel: grpc.Channel, figures: Figures
    ) -> None:
        """Invariants seen through the restarted service, checked once at the end."""


@dataclass(frozen=True)
class CrashPlan:
    rounds: int = 3
    seed: int = 1
    threads: int = 4
    kill_probability: float = 0.1  # of each armed failpoint, at each hit
    uptime: tuple[float, float] = (0.3, 1.0)  # seconds before the harness's SIGKILL


def run(workload: Workload, url: str, directory: Path, plan: CrashPlan) -> Figures:
    """Drive workload through plan.rounds crashes, restart on url once more, check it."""
    rng = random.Random(plan.seed)
    figures = Figures()
    port = free_port()
    calls = Calls(f"127.0.0.1:{port}", figures)
    threads = [
        threading.Thread(target=_drive, args=(workload, index, calls), daemon=True)
        for index in range(plan.threads)
    ]
    started, process = False, None
    try:
        for number in range(plan.rounds):
            # Even rounds arm every failpoint of the service (the first to fire kills);
            # odd ones run the production entry point, killed at a random moment.
            spec = None
            if number % 2 == 0:
                spec = ",".join(f"{p}=kill@{plan.kill_probability}" for p in workload.points)
            process = _start(workload, url, directory, port, number, spec, rng)
            if not started:
                workload.setup(calls)
                for thread in threads:
                    thread.start()
                started = True
            _await_kill_moment(process, figures, rng.uniform(*plan.uptime))
            _kill(process)
            fired = _FIRED.search(process.log())
            if fired:
                figures.failpoint_kills[fired.group(1)] += 1
            else:
                figures.random_kills += 1
            figures.rounds += 1
            # Checked at every crash: a later write could otherwise hide a half-applied one.
            with _inspect(url) as database:
                workload.check_store(database, figures)
    finally:
        if process is not None:
            process.kill()  # a no-op unless a round failed while it ran
        calls.close()
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=CALL_TIMEOUT)
    assert figures.unexpected == [], figures.unexpected
    final = start_service(workload.service, url, directory / "final.log", port=port)
    try:
        with final.channel() as channel, _inspect(url) as database:
            workload.check_store(database, figures)
            workload.check_service(database, channel, figures)
    finally:
        code = final.stop()
    assert code == 0, final.log()
    return figures


@contextlib.contextmanager
def _inspect(url: str):
    """A connection of the test's own to the service's database, closed after the block."""
    database = open_database(url)
    try:
        with database.connection_context():
            yield database
    finally:
        if hasattr(database, "close_all"):  # a pool keeps connections otherwise
            database.close_all()


_FIRED = re.compile(r"failpoint (\S+) fired")
STUCK_AFTER = 60.0  # seconds of a round with no write acknowledged: the service is stuck


def _await_kill_moment(process: ServiceProcess, figures: Figures, uptime: float) -> None:
    """Until a failpoint kills the process, or uptime has passed and a write got through.

    Waiting for a write as well as for the time keeps every round useful on a loaded
    machine, where a fixed time may pass before the clients' first call is answered.
    """
    start, acknowledged = time.monotonic(), figures.acknowledged
    while process.process.poll() is None:
        elapsed = time.monotonic() - start
        if elapsed >= uptime and figures.acknowledged > acknowledged:
            return
        assert elapsed < STUCK_AFTER, f"no write acknowledged in {STUCK_AFTER} s:\n{process.log()}"
        time.sleep(0.01)


def _start(workload, url, directory, port, number, spec, rng) -> ServiceProcess:
    return start_service(
        workload.service,
        url,
        directory / f"round-{number}.log",
        port=port,
        failpoints=spec,
        failpoint_seed=rng.randrange(1 << 30),
    )


def _kill(process: ServiceProcess) -> None:
    code = process.kill()
    assert code == -9, f"the service exited with {code}, not by SIGKILL:\n{process.log()}"


def _drive(workload: Workload, index: int, calls: Calls) -> None:
    try:
        workload.drive(index, calls)
    except Interrupted:
        pass
    except Exception as error:  # any other failure is a finding
        calls.unexpected(f"thread {index}: {type(error).__name__}: {error}")


def check(figures: Figures, condition: bool, message: str) -> None:
    assert condition, message
    figures.checked += 1


def _struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


# ---------------------------------------------------------------------------
# report-service: Edit → Put → Update → Commit, each version marked in every field
# ---------------------------------------------------------------------------

DRAFT_COMMITTED = report_pb2.ReportRevision.REASON_DRAFT_COMMITTED
ROLLED_BACK = report_pb2.ReportRevision.REASON_ROLLED_BACK


def _datasets(version: str) -> list[dict[str, str]]:
    """The dataset list a version writes: its count and ids both tell the version."""
    count = 1 + int(version.rsplit(".", 1)[1]) % 3
    return [{"dataset_id": f"ds-{version}-{k}", "alias": f"a{k}"} for k in range(count)]


@dataclass
class ReportLog:
    """One thread's commits: every version it sent (in order) and those acknowledged."""

    attempted: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    answers: dict = field(default_factory=dict)  # version -> (commit request, its answer)


class ReportWorkload(Workload):
    """Threads in pairs, each pair two principals drafting and committing one report; now and
    then a thread rebases its draft and commits it only if nobody committed since (the
    original's etag), or rolls the report back to the revision before its last change."""

    service = "report-service"
    points = tuple(name for name in failpoints.FAILPOINTS if name.startswith("report."))
    WRITERS = 2  # principals per report: concurrent drafts, the last commit wins
    GUARDED_EVERY = 3  # every third commit of a thread is rebased and guarded by the etag
    ROLLBACK_EVERY = 4  # every fourth round of a thread rolls its report back first

    def __init__(self, threads: int) -> None:
        self.logs = [ReportLog() for _ in range(threads)]
        self.reports = range((threads + self.WRITERS - 1) // self.WRITERS)

    def report_id(self, index: int) -> str:
        """The report thread index writes."""
        return f"team:crash-{index // self.WRITERS}"

    @staticmethod
    def principal(index: int) -> str:
        return f"user:crash-{index}"

    @staticmethod
    def _initial(report: int) -> str:
        return f"c{report}.0"

    def setup(self, calls: Calls) -> None:
        """Create the reports, every field marked with their first version."""
        stub = report_service_pb2_grpc.ReportServiceStub(calls.channel)
        metadata = bearer("user:crash-owner", ("report:write",))
        for report in self.reports:
            version = self._initial(report)
            marked = _struct({"marker": version})
            report_message = report_pb2.Report(
                id=f"team:crash-{report}",
                type="dashboard",
                name=f"name {version}",
                defn=marked,
                settings=marked,
                datasource_id=version,
                datasets=[report_pb2.ReportDataset(**d) for d in _datasets(version)],
            )
            calls(
                stub.CreateReport,
                report_service_pb2.CreateReportRequest(report=report_message),
                metadata,
            )

    def drive(self, index: int, calls: Calls) -> None:
        log, report_id = self.logs[index], self.report_id(index)
        metadata = bearer(self.principal(index), ("report:read", "report:write"), ttl_seconds=3600)
        stub = report_service_pb2_grpc.ReportServiceStub(calls.channel)
        draft_id = f"{self.principal(index)}:{report_id.partition(':')[2]}-draft"
        sequence = 0
        while True:
            sequence += 1
            version = f"{index}.{sequence}"
            try:
                calls(stub.EditReport, report_service_pb2.EditReportRequest(id=report_id), metadata)
                marked = _struct({"marker": version})
                calls(
                    stub.PutReportDraft,
                    report_service_pb2.PutReportDraftRequest(
                        id=report_id,
                        draft=report_pb2.ReportDraftInput(
                            defn=marked, settings=marked, datasource_id=version
                        ),
                    ),
                    metadata,
                )
                calls(
                    stub.UpdateReport,
                    report_service_pb2.UpdateReportRequest(
                        report=report_pb2.Report(
                            id=draft_id,
                            name=f"name {version}",
                            datasets=[report_pb2.ReportDataset(**d) for d in _datasets(version)],
                        ),
                        update_mask=field_mask_pb2.FieldMask(paths=["name", "datasets"]),
                    ),
                    metadata,
                )
                # View settings marked with the version: its commit must remove them.
                calls(
                    stub.UpdateUserReportSettings,
                    report_service_pb2.UpdateUserReportSettingsRequest(
                        report_id=report_id, settings=marked
                    ),
                    metadata,
                )
                if sequence % self.ROLLBACK_EVERY == 0:
                    self._roll_back(calls, stub, metadata, report_id)
                etag = ""
                if sequence % self.GUARDED_EVERY == 0:
                    rebased = calls(
                        stub.RebaseReportDraft,
                        report_service_pb2.RebaseReportDraftRequest(id=report_id),
                        metadata,
                    )
                    etag = rebased.draft.original_etag
            except Interrupted:
                if calls.stopping.is_set():
                    return
                continue  # unknown outcome: start the next version from EditReport
            # The commit carries a request_id and is retried with it until answered: a commit
            # that went through before the crash answers again, though its draft is gone.
            commit = report_service_pb2.CommitReportDraftRequest(
                id=report_id, etag=etag, request_id=str(uuid.uuid4())
            )
            log.attempted.append(version)
            calls.count(attempted=1)
            try:
                committed = self._answered(calls, stub.CommitReportDraft, commit, metadata)
            except grpc.RpcError as error:
                if failure(error).reason != "ETAG_MISMATCH":
                    raise
                continue  # another commit came first: the draft stays, the next version replaces it
            if committed.defn["marker"] != version or committed.name != f"name {version}":
                calls.unexpected(f"commit of {version} answered {committed}")
            log.answers[version] = (commit, committed)
            log.acknowledged.append(version)
            calls.count(acknowledged=1)

    @staticmethod
    def _answered(calls: Calls, method, request, metadata):
        while True:
            try:
                return calls(method, request, metadata)
            except Interrupted:
                if calls.stopping.is_set():
                    raise

    def _roll_back(self, calls: Calls, stub, metadata, report_id: str) -> None:
        """Roll report_id back to its revision before the newest, unless it changes meanwhile."""
        newest = calls(
            stub.ListReportRevisions,
            report_service_pb2.ListReportRevisionsRequest(report_id=report_id, page_size=2),
            metadata,
        ).revisions
        if len(newest) < 2:
            return
        try:
            calls(
                stub.RollbackReport,
                report_service_pb2.RollbackReportRequest(
                    id=report_id, revision_id=newest[1].revision_id, etag=newest[0].snapshot.etag
                ),
                metadata,
            )
        except grpc.RpcError as error:  # a commit came first (or pruned the revision)
            if failure(error).reason not in ("ETAG_MISMATCH", "REVISION_NOT_FOUND"):
                raise

    # -- invariants ----------------------------------------------------------

    def check_store(self, database: peewee.Database, figures: Figures) -> None:
        reports = {
            row[0]: row
            for row in database.execute_sql(
                "SELECT id, name, defn, settings, datasource_id, editing_id, owner_id FROM report"
            )
        }
        datasets: dict[str, list[tuple]] = {}
        for report_id, dataset_id, alias, position in database.execute_sql(
            "SELECT report_id, dataset_id, alias, position FROM report_dataset "
            "ORDER BY report_id, position"
        ):
            datasets.setdefault(report_id, []).append((dataset_id, alias, position))
        activities: dict[str, list[dict]] = {}
        for report_id, activity_type, details in database.execute_sql(
            "SELECT report_id, type, details FROM activity ORDER BY id"
        ):
            check(
                figures,
                activity_type in ("reportUpdated", "reportRolledBack"),
                f"activity type {activity_type}",
            )
            activities.setdefault(report_id, []).append(
                {"type": activity_type, **json.loads(details)}
            )
        revisions: dict[str, list[tuple]] = {}
        for row in database.execute_sql(
            "SELECT report_id, reason, name, defn, settings, datasource_id, etag, datasets "
            "FROM report_revision ORDER BY id"
        ):
            revisions.setdefault(row[0], []).append(row[1:])
        etags = dict(database.execute_sql("SELECT id, etag FROM report"))

        for report_id, settings in database.execute_sql(
            "SELECT report_id, settings FROM user_report_settings"
        ):
            marker = json.loads(settings).get("marker")
            check(
                figures,
                json.loads(reports[report_id][2]).get("marker") != marker,
                f"{report_id}: the view settings of {marker} outlived its commit",
            )
        for report_id, (_, name, defn, settings, source, editing, _) in reports.items():
            version = json.loads(defn).get("marker")
            check(
                figures,
                editing is None or (editing in reports and reports[editing][5] is None),
                f"draft {report_id} is an orphan: its original {editing} is gone",
            )
            stored = datasets.get(report_id, [])
            # A draft's datasets may come from an earlier version than its defn (an
            # EditReport copy whose UpdateReport never came): whole, but of some version.
            listed = stored[0][0].split("-")[1] if stored else None
            check(
                figures,
                stored == self._stored_datasets(listed if editing else version),
                f"{report_id}: datasets {stored} are not those of one version ({version})",
            )
            if editing is None:
                check(
                    figures,
                    (name, json.loads(settings).get("marker"), source)
                    == (f"name {version}", version, version),
                    f"{report_id}: name {name!r}, settings {settings}, datasource {source!r} "
                    f"do not all come from version {version}",
                )
        # Copies, acknowledged first: a thread may be appending to its log right now.
        logs = []
        for live in self.logs:
            acknowledged = list(live.acknowledged)
            logs.append(ReportLog(list(live.attempted), acknowledged))
        for report in self.reports:
            report_id = f"team:crash-{report}"
            check(figures, report_id in reports, f"{report_id} is gone")
            writers = {
                index: log for index, log in enumerate(logs) if self.report_id(index) == report_id
            }
            self._check_history(
                report, writers, reports[report_id], activities.get(report_id, []), figures
            )
            self._check_revisions(
                reports[report_id],
                etags[report_id],
                datasets.get(report_id, []),
                activities.get(report_id, []),
                revisions.get(report_id, []),
                figures,
            )
        drafts = [row for row in reports.values() if row[5] is not None]
        check(
            figures,
            len({(row[5], row[6]) for row in drafts}) == len(drafts),
            "two drafts of one report for one principal",
        )

    def _check_history(self, report, writers, row, activities, figures) -> None:
        """The commits among the activities are each a version its writer sent, in the
        writer's order, every acknowledged one among them; the last activity left the stored
        state."""
        report_id, version = row[0], json.loads(row[2]).get("marker")
        commits = [activity for activity in activities if activity["type"] == "reportUpdated"]
        committed = [activity["defn"]["marker"] for activity in commits]
        for index, log in writers.items():
            order = {v: position for position, v in enumerate(log.attempted)}
            own = [order.get(v) for v in committed if v.partition(".")[0] == str(index)]
            check(
                figures,
                None not in own and own == sorted(set(own)),
                f"{report_id}: activities {committed} are not {index}'s commits in its order",
            )
            check(
                figures,
                set(log.acknowledged) <= set(committed),
                f"{report_id}: acknowledged commits {log.acknowledged} of {index} lack an "
                f"activity: {committed}",
            )
        results = [self._result(activity) for activity in activities]
        check(
            figures,
            (results[-1] if results else self._initial(report)) == version,
            f"{report_id}: the last activity {activities[-1:]} did not leave the state {version}",
        )
        for activity, v in zip(activities, results, strict=True):
            changes = activity.get("changes", activity)
            check(
                figures,
                changes.get("name") == f"name {v}"
                and changes.get("datasets") == _datasets(v)
                and changes.get("datasource_id") == v,
                f"{report_id}: activity {activity} mixes versions",
            )

    def check_service(
        self, database: peewee.Database, channel: grpc.Channel, figures: Figures
    ) -> None:
        """Every acknowledged commit, sent again with its request_id: its first answer (the
        draft it committed is long gone), and no change to the store."""
        stub = report_service_pb2_grpc.ReportServiceStub(channel)
        before = snapshot(database)
        for index, log in enumerate(self.logs):
            metadata = bearer(self.principal(index), ("report:read", "report:write"))
            for version, (commit, answer) in dict(log.answers).items():
                again = stub.CommitReportDraft(commit, metadata=metadata, timeout=CALL_TIMEOUT)
                check(figures, again == answer, f"retry of the commit of {version}: {again}")
        check(figures, snapshot(database) == before, "a retried commit changed the store")

    @staticmethod
    def _result(activity: dict) -> str:
        """The version an activity left: a commit's, or the one a rollback restored (versions
        are unique, so a rollback always changes every marked field)."""
        return activity.get("changes", activity)["defn"]["marker"]

    def _check_revisions(self, row, etag, stored, activities, revisions, figures) -> None:
        """One revision per change (recorded and pruned with it), the newest being the stored
        state, each one whole."""
        report_id = row[0]
        kept = REVISIONS_KEPT.default
        check(
            figures,
            len(revisions) == min(kept, 1 + len(activities)),
            f"{report_id}: {len(revisions)} revisions for {len(activities)} activities",
        )
        versions = []
        for reason, name, defn, settings, source, revision_etag, triples in revisions:
            v = json.loads(defn).get("marker")
            datasets = [(d, a, position) for position, d, a in sorted(json.loads(triples))]
            check(
                figures,
                (name, json.loads(settings).get("marker"), source, datasets)
                == (f"name {v}", v, v, self._stored_datasets(v)),
                f"{report_id}: revision {name!r} {defn} {settings} {source!r} mixes versions",
            )
            versions.append((reason, v, revision_etag))
        reason, v, newest_etag = versions[-1]
        check(
            figures,
            (v, newest_etag) == (json.loads(row[2]).get("marker"), etag)
            and self._stored_datasets(v) == stored,
            f"{report_id}: the newest revision {versions[-1]} is not the stored state",
        )
        expected = {"reportUpdated": DRAFT_COMMITTED, "reportRolledBack": ROLLED_BACK}
        recent = activities[len(activities) - len(versions) + 1 :] if activities else []
        check(
            figures,
            [(expected[a["type"]], self._result(a)) for a in recent]
            == [(reason, v) for reason, v, _ in versions[len(versions) - len(recent) :]],
            f"{report_id}: revisions {versions} do not follow the activities {activities}",
        )

    @staticmethod
    def _stored_datasets(version: str | None) -> list[tuple]:
        if version is None:
            return []
        return [
            (d["dataset_id"], d["alias"], position) for position, d in enumerate(_datasets(version))
        ]


# ---------------------------------------------------------------------------
# cohort-service: keyed patches, soft patches and their acks, each retried until answered
# ---------------------------------------------------------------------------

Request = draft_service_pb2.PatchCohortDraftRequest
Response = draft_service_pb2.PatchCohortDraftResponse


@dataclass
class Op:
    """One write a thread sent, retried with the same request until it was answered."""

    kind: str  # "create", "patch", "soft", "accept", "soft_new", "reject"
    request: Request
    response: Response | None = None  # the acknowledged answer


class CohortWorkload(Workload):
    service = "cohort-service"
    points = tuple(name for name in failpoints.FAILPOINTS if name.startswith("cohort."))
    # The cycle of writes after the create: kinds, in order.
    CYCLE = ("patch", "soft", "accept", "patch", "soft_new", "reject", "patch")

    def __init__(self, threads: int) -> None:
        self.ops: list[list[Op]] = [[] for _ in range(threads)]
        self.run_id = uuid.uuid4().hex[:8]  # keys never collide with an earlier run's

    @staticmethod
    def principal(index: int) -> str:
        return f"user:crash-{index}"

    def drive(self, index: int, calls: Calls) -> None:
        metadata = bearer(self.principal(index), ("cohort:read", "cohort:write"), ttl_seconds=3600)
        stub = draft_service_pb2_grpc.CohortDraftServiceStub(calls.channel)
        key = f"{self.run_id}-{index}-0"
        created = self._send(
            calls, stub, metadata, index, Op("create", Request(name="c", idempotency_key=key))
        )
        draft_id = created.draft_id
        step = 0
        while True:
            step += 1
            kind = self.CYCLE[(step - 1) % len(self.CYCLE)]
            key = f"{self.run_id}-{index}-{step}"
            if kind == "patch":
                request = Request(
                    draft_id=draft_id, name=f"n{step}", description=f"d{step}", idempotency_key=key
                )
            elif kind == "soft":
                request = Request(
                    draft_id=draft_id, description=f"s{step}", soft=True, idempotency_key=key
                )
            elif kind == "soft_new":
                request = Request(name=f"dormant{step}", soft=True, idempotency_key=key)
            else:  # the ack of the previous step's soft patch
                previous = f"{self.run_id}-{index}-{step - 1}"
                request = Request(idempotency_key=previous, accept=kind == "accept")
            self._send(calls, stub, metadata, index, Op(kind, request))

    def _send(self, calls: Calls, stub, metadata, index: int, op: Op) -> Response:
        self.ops[index].append(op)
        calls.count(attempted=1)
        while True:
            try:
                op.response = calls(stub.PatchCohortDraft, op.request, metadata)
                calls.count(acknowledged=1)
                return op.response
            except Interrupted:
                if calls.stopping.is_set():
                    raise
                # retried with the same key: the first outcome, if there was one, comes back

    # -- invariants ----------------------------------------------------------

    def _stored(self, database: peewee.Database):
        """(idempotency records, proposals, draft revisions) as they are stored now."""
        records = {
            (principal, key): None if response is None else Response.FromString(bytes(response))
            for principal, key, response in database.execute_sql(
                "SELECT principal, key, response FROM idempotency_record"
            )
        }
        proposals = {
            (principal, key): (uuid.UUID(str(draft_id)), created, decision, response)
            for principal, key, draft_id, created, decision, response in database.execute_sql(
                "SELECT principal, key, draft_id, created_draft, decision, decision_response "
                "FROM proposal"
            )
        }
        drafts = {
            uuid.UUID(str(draft_id)): revision
            for draft_id, revision in database.execute_sql("SELECT id, revision FROM draft")
        }
        return records, proposals, drafts

    def check_store(self, database: peewee.Database, figures: Figures) -> None:
        records, proposals, drafts = self._stored(database)
        for (principal, key), response in records.items():
            check(figures, response is not None, f"key {key} claimed without a stored response")
            draft_id = uuid.UUID(response.draft_id)
            proposal = proposals.get((principal, key))
            if draft_id not in drafts:
                check(
                    figures,
                    proposal is not None and proposal[1] and proposal[2] == 2,  # REJECTED
                    f"key {key} answered draft {draft_id}, which is gone with no rejection",
                )
            else:
                check(
                    figures,
                    drafts[draft_id] >= response.form_state.revision,
                    f"key {key} answered revision {response.form_state.revision} of a draft "
                    f"now at {drafts[draft_id]}",
                )
        named = {uuid.UUID(r.draft_id) for r in records.values() if r is not None}
        check(figures, set(drafts) <= named, f"drafts no key created: {set(drafts) - named}")
        for (principal, key), (draft_id, _, decision, response) in proposals.items():
            check(figures, (principal, key) in records, f"proposal {key} without its key record")
            check(
                figures,
                (decision == 0) == (response is None),
                f"proposal {key}: decision {decision} with response {response is not None}",
            )
            if decision == 0:
                check(figures, draft_id in drafts, f"pending proposal {key} on a deleted draft")
        for index, ops in enumerate(self.ops):
            self._check_thread(index, list(ops), records, proposals, drafts, figures)

    def check_service(
        self, database: peewee.Database, channel: grpc.Channel, figures: Figures
    ) -> None:
        records, proposals, _ = self._stored(database)
        stub = draft_service_pb2_grpc.CohortDraftServiceStub(channel)
        for index, ops in enumerate(self.ops):
            self._check_form(index, ops, records, proposals, stub, figures)
        self._check_retries(database, stub, records, proposals, figures)

    def _applied(self, index: int, op: Op, records, proposals) -> Response | None:
        """The stored first answer to op, if it was applied; None if it never was."""
        key = (self.principal(index), op.request.idempotency_key)
        if op.kind in ("accept", "reject"):
            proposal = proposals.get(key)
            if proposal is None or proposal[3] is None:
                return None
            return Response.FromString(bytes(proposal[3]))
        return records.get(key)

    def _changes(self, index, ops, records, proposals) -> list[Response]:
        """The first answers of the thread's applied writes that changed its draft, in order."""
        applied = [(op, self._applied(index, op, records, proposals)) for op in ops]
        return [
            stored
            for op, stored in applied
            if stored is not None
            and (op.kind in ("create", "patch") or stored.message == "proposal accepted")
        ]

    def _check_thread(self, index, ops, records, proposals, drafts, figures) -> None:
        applied = [(op, self._applied(index, op, records, proposals)) for op in ops]
        for op, stored in applied:
            if op.response is not None:
                check(
                    figures,
                    stored == op.response,
                    f"thread {index}: acknowledged {op.kind} {op.request.idempotency_key} "
                    f"stored {stored}, answered {op.response}",
                )
        if not applied or applied[0][1] is None:
            return  # the create never got through
        draft_id = applied[0][1].draft_id
        changing = self._changes(index, ops, records, proposals)
        check(
            figures,
            drafts.get(uuid.UUID(draft_id)) == len(changing),
            f"thread {index}: revision {drafts.get(uuid.UUID(draft_id))}, but "
            f"{len(changing)} applied changes",
        )

    def _check_form(self, index, ops, records, proposals, stub, figures) -> None:
        """The live form is what the last applied change answered."""
        changing = self._changes(index, ops, records, proposals)
        if not changing:
            return
        metadata = bearer(self.principal(index), ("cohort:read", "cohort:write"))
        live = stub.GetCohortDraft(
            draft_service_pb2.GetCohortDraftRequest(draft_id=changing[0].draft_id),
            metadata=metadata,
        )
        last = changing[-1].form_state
        check(
            figures,
            (live.revision, live.name.value, live.description.value)
            == (last.revision, last.name.value, last.description.value),
            f"thread {index}: the draft is {live}, the last applied change answered {last}",
        )

    def _check_retries(self, database, stub, records, proposals, figures) -> None:
        """Every applied write, sent again: its first answer, and no change to the store."""
        before = snapshot(database)
        for index, ops in enumerate(self.ops):
            metadata = bearer(self.principal(index), ("cohort:read", "cohort:write"))
            for op in ops:
                stored = self._applied(index, op, records, proposals)
                if stored is None:
                    continue
                again = stub.PatchCohortDraft(op.request, metadata=metadata, timeout=CALL_TIMEOUT)
                check(
                    figures,
                    again == stored,
                    f"retry of {op.kind} {op.request.idempotency_key}: {again}, first {stored}",
                )
        check(figures, snapshot(database) == before, "a retry of an applied write changed data")
