"""SIGTERM under load: accepted calls finish, new ones get UNAVAILABLE, health NOT_SERVING, exit 0.

A service process (the production CLI, PostgreSQL) serves client threads that each own a
report or a cohort draft and log every write acknowledged to them (tests.reliability.workload).
The test holds row locks on the entities of a few more clients and starts one write call
for each: PostgreSQL shows those calls waiting on the test's locks, so they are provably
running inside the server when SIGTERM arrives. The locks are released only once a health
probe (a new connection each time, like a load balancer's) has read NOT_SERVING and every
load client has been refused; a refused client stops calling, as it would move to another
instance (one that kept calling could meet grpc's CANCELLED race as the listener closes:
see shared/drain.py).

Then: the held calls answered OK with the values they wrote; every other call answered OK
or UNAVAILABLE (never CANCELLED, INTERNAL, UNKNOWN), UNAVAILABLE only after the signal; with
one process every refusal is the service's own SHUTTING_DOWN (the listener stayed open
through the drain); the exit status is 0; and a fresh server on the same database shows,
for every client, exactly the state of its last acknowledged write, with matching counts —
so no refused call changed anything and no acknowledged one was lost.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import psycopg2
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.scenarios import seed_catalog
from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.drain import SHUTTING_DOWN
from tests.conftest import _postgres_test_url
from tests.processes import free_port, service_process
from tests.reliability.workload import (
    DEPARTMENTS,
    AckLog,
    Actor,
    CohortActor,
    Recorder,
    ReportActor,
    drive,
    own_channel,
    read_ack_logs,
    verify,
)
from tests.support import serve

LOAD_ACTORS = 6
HELD_ACTORS = 2  # of the 4 RPC threads a process has: the others keep serving load and probes
WAIT = 30.0  # seconds for anything the test waits on before it gives up
SERVICES = {"report-service": (REPORT, ReportActor), "cohort-service": (COHORT, CohortActor)}


# ---------------------------------------------------------------------------
# Health probes and held calls
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    started: float
    ended: float
    status: str  # SERVING, NOT_SERVING, or the failure's status code name


class Prober:
    """Health checks in a loop, each on a new connection, as a load balancer's probe makes them."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.probes: list[Probe] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set() and not self.saw("NOT_SERVING"):
            started = time.time()
            try:
                with grpc.insecure_channel(self.address) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                status = error.code().name
            self.probes.append(Probe(started, time.time(), status))
            time.sleep(0.02)

    def saw(self, status: str) -> bool:
        return any(probe.status == status for probe in self.probes)


@contextlib.contextmanager
def row_locks(url: str, rows: list[tuple[str, str]]) -> Iterator[psycopg2.extensions.connection]:
    """A transaction of the test's holding rows (table, id) FOR UPDATE until the block ends."""
    connection = psycopg2.connect(url, application_name="shutdown-test-locks")
    try:
        with connection.cursor() as cursor:
            for table, key in rows:
                cursor.execute(f'SELECT id FROM "{table}" WHERE id::text = %s FOR UPDATE', (key,))
                assert cursor.rowcount == 1
        yield connection
    finally:
        connection.rollback()
        connection.close()


def waiting_on(admin, locks: psycopg2.extensions.connection) -> int:
    """How many server connections wait on the test's locks: calls provably in flight."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (locks.get_backend_pid(),),
        )
        return cursor.fetchone()[0]


def until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT}s waiting for {what}")
        time.sleep(0.02)


def start_single_write(actor: Actor, channel: grpc.Channel, outcomes: dict) -> threading.Thread:
    """The actor's one-call write, in a thread; outcomes[actor.name] says how it ended."""

    def run() -> None:
        try:
            actor.single_write(channel)
            outcomes[actor.name] = "OK"
        except Exception as error:  # recorded; the test fails on anything but OK
            outcomes[actor.name] = repr(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_sigterm_under_load_finishes_accepted_calls_and_refuses_new_ones(
    service, workers, postgres_admin, tmp_path
):
    definition, actor_type = SERVICES[service]
    url = _postgres_test_url(postgres_admin)
    if service == "cohort-service":
        seed_catalog(url, DEPARTMENTS, tmp_path)
    log = io.StringIO()
    acks, recorder = AckLog(log), Recorder()
    port = free_port() if workers > 1 else 0
    with service_process(
        service, url, tmp_path / "service.log", port=port, workers=workers
    ) as running:
        actors = [actor_type(f"load-{n}", acks, recorder) for n in range(LOAD_ACTORS)]
        held = [actor_type(f"held-{n}", acks, recorder) for n in range(HELD_ACTORS)]
        channels = {actor.name: own_channel(running.address) for actor in actors + held}
        for actor in actors + held:
            actor.setup(channels[actor.name])
        for actor in held:
            actor.prepare_single_write(channels[actor.name])

        stop, errors = threading.Event(), []

        def on_error(actor, error) -> bool:
            errors.append((actor.name, error))
            # A refused client goes elsewhere; one that went on calling could meet grpc's
            # CANCELLED race when the listener closes (see shared.drain).
            return False

        threads = drive(actors, channels, stop, seed=1, on_error=on_error)
        prober = Prober(running.address)
        outcomes: dict[str, str] = {}
        with row_locks(url, [actor.row for actor in held]) as locks:
            held_threads = [
                start_single_write(actor, channels[actor.name], outcomes) for actor in held
            ]
            until(lambda: waiting_on(postgres_admin, locks) == HELD_ACTORS, "the held calls")
            until(lambda: prober.saw("SERVING"), "a SERVING probe")
            until(
                lambda: recorder.counts.get(_first_write(service) + " OK", 0) > LOAD_ACTORS, "load"
            )
            signalled = time.time()
            running.process.send_signal(signal.SIGTERM)
            until(lambda: prober.saw("NOT_SERVING"), "a NOT_SERVING probe during the drain")
            until(lambda: not any(t.is_alive() for t in threads), "every client refused")
            assert not outcomes, "held calls answered while their rows were locked"
        code = running.stop(timeout=WAIT)
        stop.set()
        prober.stop.set()
        for thread in [*threads, *held_threads, prober.thread]:
            thread.join(timeout=WAIT)
        for channel in channels.values():
            channel.close()

    assert code == 0, running.log()[-3000:]
    assert outcomes == {actor.name: "OK" for actor in held}
    calls = recorder.calls
    unexpected = [call for call in calls if call.code not in ("OK", "UNAVAILABLE")]
    assert not unexpected, unexpected[:5]
    assert not [e for _, e in errors if not isinstance(e, grpc.RpcError)], errors[:5]
    refused = [call for call in calls if call.code == "UNAVAILABLE"]
    assert refused and all(call.ended > signalled for call in refused)
    assert {probe.status for probe in prober.probes} <= {"SERVING", "NOT_SERVING", "UNAVAILABLE"}
    assert any(call.reason == SHUTTING_DOWN for call in refused)
    if workers == 1:
        # The listener stayed open through the drain: every refusal is the service's own.
        assert {call.reason for call in refused} == {SHUTTING_DOWN}
        assert prober.probes[-1].status == "NOT_SERVING"
    assert "drained in" in running.log()

    # A fresh server on the same database: each client's last acknowledged write, nothing else.
    writes = read_ack_logs([log.getvalue()])
    with serve(definition, url) as fresh:
        checked, mismatches = verify(writes, {actor_type.service: fresh.channel})
    assert checked == LOAD_ACTORS + HELD_ACTORS
    assert not mismatches, mismatches[:5]


def _first_write(service: str) -> str:
    return "CommitReportDraft" if service == "report-service" else "PatchCohortDraft"


def test_a_health_watch_reads_not_serving_and_then_ends_ok_when_the_drain_begins(tmp_path):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    with service_process(
        "report-service", url, tmp_path / "service.log", grace_period=5
    ) as running:
        seen, ended = [], []

        def watch() -> None:
            with grpc.insecure_channel(running.address) as channel:
                stream = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(), timeout=WAIT
                )
                try:
                    for reply in stream:
                        seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
                    ended.append("OK")
                except grpc.RpcError as error:
                    ended.append(error.code().name)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        until(lambda: seen == ["SERVING"], "the watch's first status")
        running.process.send_signal(signal.SIGTERM)
        watcher.join(timeout=WAIT)
        code = running.stop(timeout=WAIT)

    # Left open, the stream held the drain for the whole grace period and ended CANCELLED.
    assert (seen, ended, code) == (["SERVING", "NOT_SERVING"], ["OK"], 0)
