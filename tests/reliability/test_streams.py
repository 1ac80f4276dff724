"""No number of idle or slow calls stops health checks and other calls (issue 10, item 2).

Four idle reflection streams from one unauthenticated connection once took all four RPC
threads, and health Check and every other call ran into their deadlines. These tests hold
open, on real servers, every kind of idle or slow call the server has — each streaming method
(derived from the services the server lists), unary calls whose request never comes, calls
blocked on a PostgreSQL row lock or in a driver hook — and check that health Check and a
normal authenticated call still answer within a second, and that what exceeds a limit is
refused at once with RESOURCE_EXHAUSTED (shared/lanes.py).

Long runs: the churn (opens and closes streams of every kind for the given time while
probing; it also shows the deadlock of grpc_health's non-blocking Watch), and the row-lock
test at the production limit of calls (31 calls blocked, then 32):

    STREAMS_CHURN_SECONDS=60 .venv/bin/python -m pytest -s -p no:cacheprovider \\
        tests/reliability/test_streams.py -k churn
    STREAMS_LOCKED_CALLS=32 .venv/bin/python -m pytest -p no:cacheprovider \\
        tests/reliability/test_streams.py -k row_lock
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import grpc
import psycopg2
import pytest
from grpc_health.v1 import health_pb2

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from shared.lanes import TOO_MANY_CALLS, TOO_MANY_STREAMS, Limits
from shared.server import LIMITS, run_server
from tests import support
from tests.conftest import POSTGRES_URL, _postgres_test_url
from tests.reliability.streams import (
    ANSWER_WITHIN,
    assert_still_answering,
    held,
    open_watch,
    path,
    streaming_methods,
)
from tests.report_service.support import report_row_locked, valid_report
from tests.support import RunningService, bearer, failure

ORIGINAL = "team:sales-dashboard"
CHURN_SECONDS = float(os.environ.get("STREAMS_CHURN_SECONDS", "2"))
# Calls lane size for the row-lock test; STREAMS_LOCKED_CALLS=32 is the production limit.
LOCKED_CALLS = int(os.environ.get("STREAMS_LOCKED_CALLS", "8"))
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"


@contextlib.contextmanager
def serving(definition, url: str, limits: Limits = LIMITS, **overrides):
    """A real server on port 0 (production interceptor and lanes) and a channel to it."""
    settings = support.test_settings(definition, url, **overrides)
    with run_server(definition, settings, limits=limits) as running:
        address = f"127.0.0.1:{running.port}"
        with grpc.insecure_channel(address) as channel:
            yield RunningService(channel, address, running.database, settings, running.purger)


def report_stub(server: RunningService):
    return report_service_pb2_grpc.ReportServiceStub(server.channel)


def get_report(server: RunningService):
    """A normal authenticated call: GetReport of ORIGINAL (created by with_report)."""
    request = report_service_pb2.GetReportRequest(id=ORIGINAL)
    return lambda timeout: report_stub(server).GetReport(
        request, metadata=bearer("user:alice"), timeout=timeout
    )


def with_report(server: RunningService) -> None:
    report_stub(server).CreateReport(
        report_service_pb2.CreateReportRequest(report=valid_report(id=ORIGINAL)),
        metadata=bearer("user:alice"),
    )


def refused(call, reason: str) -> None:
    """call() fails RESOURCE_EXHAUSTED with ErrorInfo reason, within ANSWER_WITHIN."""
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert time.monotonic() - started < ANSWER_WITHIN
    answer = failure(caught.value)
    assert answer.code == grpc.StatusCode.RESOURCE_EXHAUSTED, answer
    assert answer.reason == reason
    assert "limit" in answer.message and answer.metadata["limit"]


def by_service(methods, name: str):
    return [m for m in methods if m.containing_service.full_name == name]


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------


def test_the_streaming_methods_are_derived_from_what_the_server_lists(sqlite_url):
    with serving(REPORT, sqlite_url) as server:
        found = {path(method) for method in streaming_methods(server.channel)}
    assert found == {
        f"/{REFLECTION_V1}/ServerReflectionInfo",
        f"/{REFLECTION_V1ALPHA}/ServerReflectionInfo",
        "/grpc.health.v1.Health/Watch",
        "/report_service.v1.ReportService/WatchReport",
    }


def test_64_idle_reflection_and_64_watch_streams_leave_health_and_calls_answering(sqlite_url):
    with serving(REPORT, sqlite_url) as server, held() as calls:
        with_report(server)
        methods = streaming_methods(server.channel)
        reflection = by_service(methods, REFLECTION_V1) + by_service(methods, REFLECTION_V1ALPHA)
        # One unauthenticated connection, as the attacker had.
        with grpc.insecure_channel(server.address) as attacker:
            for index in range(64):
                calls.stream(attacker, reflection[index % 2])
            for _ in range(64):
                calls.stream(attacker, by_service(methods, "grpc.health.v1.Health")[0])

            assert_still_answering(server.channel, get_report(server))
            # 128 streams is the process's limit: the next one is refused at once.
            assert LIMITS.streams == 64 + 64
            refused(lambda: calls.stream(attacker, reflection[0]), TOO_MANY_STREAMS)
            refused(lambda: next(open_watch(attacker)), TOO_MANY_STREAMS)
            assert_still_answering(server.channel, get_report(server))


def test_a_stream_is_admitted_again_once_open_ones_close(sqlite_url):
    limits = Limits(streams=4)
    with serving(REPORT, sqlite_url, limits) as server:
        methods = by_service(streaming_methods(server.channel), REFLECTION_V1)
        with held() as calls:
            for _ in range(4):
                calls.stream(server.channel, methods[0])
            refused(lambda: calls.stream(server.channel, methods[0]), TOO_MANY_STREAMS)
        deadline = time.monotonic() + 5
        with held() as calls:
            while True:  # the closed streams' threads finish a moment after the clients left
                try:
                    calls.stream(server.channel, methods[0])
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)


def test_an_idle_reflection_stream_is_cancelled_after_the_idle_limit(sqlite_url):
    limits = Limits(stream_idle_seconds=0.3)
    with serving(REPORT, sqlite_url, limits) as server, held() as calls:
        method = by_service(streaming_methods(server.channel), REFLECTION_V1)[0]
        calls.stream(server.channel, method)
        stream = calls._calls[-1]
        with pytest.raises(grpc.RpcError) as caught:
            next(stream)  # idle: the server ends it
        assert caught.value.code() == grpc.StatusCode.CANCELLED


def test_watch_streams_closing_while_the_drain_begins_do_not_hang_the_server(sqlite_url):
    # grpc_health's non-blocking Watch sent under its lock while grpc's polling thread waited
    # for that lock in a closing stream's callback: the process hung in its drain for good.
    server_block = serving(REPORT, sqlite_url, Limits(streams=256), grace_period=2.0)
    server = server_block.__enter__()
    watches = [open_watch(server.channel) for _ in range(200)]
    for watch in watches:
        next(watch)
    for watch in watches:
        watch.cancel()
    stopped = threading.Thread(target=server_block.__exit__, args=(None, None, None), daemon=True)
    started = time.monotonic()
    stopped.start()
    stopped.join(timeout=20)
    assert not stopped.is_alive(), "the drain hung"
    assert time.monotonic() - started < 5


def test_open_streams_do_not_hold_the_drain(sqlite_url):
    server_block = serving(REPORT, sqlite_url, grace_period=10.0)
    server = server_block.__enter__()
    with held() as calls:
        with_report(server)
        methods = streaming_methods(server.channel)
        for method in methods:
            for _ in range(5):
                calls.stream(server.channel, method)
        started = time.monotonic()
        server_block.__exit__(None, None, None)
        # The drain's notice is 0 in tests: only the streams could have held it.
        assert time.monotonic() - started < 3


# ---------------------------------------------------------------------------
# Every kind of idle or slow call
# ---------------------------------------------------------------------------


APPLICATION = f"streams-test-{os.getpid()}"  # names the server's sessions in pg_stat_activity


def blocked_on_locks() -> int:
    """The server's sessions waiting for a lock."""
    with psycopg2.connect(POSTGRES_URL) as probe, probe.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND wait_event_type = 'Lock'",
            (APPLICATION,),
        )
        return cursor.fetchone()[0]


def update_original(server: RunningService, name: str, timeout: float = 30):
    return report_stub(server).UpdateReport.future(
        report_service_pb2.UpdateReportRequest(
            report=report_pb2.Report(id=ORIGINAL, name=name), update_mask={"paths": ["name"]}
        ),
        metadata=bearer("user:alice"),
        timeout=timeout,
    )


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.postgres
def test_calls_blocked_on_a_row_lock_leave_health_and_calls_answering_and_excess_is_refused(
    postgres_admin,
):
    limits = Limits(calls=LOCKED_CALLS)
    url = f"{_postgres_test_url(postgres_admin)}&application_name={APPLICATION}"
    with serving(REPORT, url, limits) as server, held() as calls:
        with_report(server)
        with report_row_locked(ORIGINAL):
            for index in range(limits.calls - 1):
                calls.add(update_original(server, f"blocked {index}"))
            wait_until(lambda: blocked_on_locks() == limits.calls - 1)
            assert_still_answering(server.channel, get_report(server))

            calls.add(update_original(server, "the last place"))
            wait_until(lambda: blocked_on_locks() == limits.calls)
            refused(lambda: get_report(server)(timeout=ANSWER_WITHIN), TOO_MANY_CALLS)
            answer = health_pb2.HealthCheckResponse.SERVING
            assert _check(server) == answer  # health has a lane of its own


def _check(server: RunningService) -> int:
    from grpc_health.v1 import health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(server.channel)
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=ANSWER_WITHIN).status


@pytest.mark.parametrize("definition", [REPORT, COHORT], ids=["report", "cohort"])
def test_every_streaming_method_and_unary_calls_without_a_request_held_open(definition, sqlite_url):
    """The systematic check: each kind held 40 times (under every lane's limit)."""
    with serving(definition, sqlite_url) as server:
        if definition is REPORT:
            with_report(server)
            normal = get_report(server)
        else:
            normal = _list_departments(server)
        kinds = {
            path(m): (lambda c, ch, m=m: c.stream(ch, m)) for m in streaming_methods(server.channel)
        }
        kinds["/grpc.health.v1.Health/Check without its request"] = lambda c, ch: c.without_request(
            ch, "/grpc.health.v1.Health/Check"
        )
        unary = _a_unary_method(definition)
        kinds[f"{unary} without its request"] = lambda c, ch: c.without_request(
            ch, unary, metadata=bearer()
        )
        for kind, open_one in kinds.items():
            with held() as calls, grpc.insecure_channel(server.address) as attacker:
                for _ in range(min(40, LIMITS.calls - 1)):
                    open_one(calls, attacker)
                time.sleep(0.1)  # the ones without a request reach their handlers
                try:
                    assert_still_answering(server.channel, normal)
                except (AssertionError, grpc.RpcError) as error:
                    raise AssertionError(
                        f"{kind} held open stopped the service: {error}"
                    ) from error


def _a_unary_method(definition) -> str:
    from google.protobuf import descriptor_pool

    service = descriptor_pool.Default().FindServiceByName(definition.service_names[0])
    method = next(m for m in service.methods if not m.client_streaming and not m.server_streaming)
    return path(method)


def _list_departments(server: RunningService):
    from cohort_service.v1 import catalog_service_pb2, catalog_service_pb2_grpc

    stub = catalog_service_pb2_grpc.CohortCatalogServiceStub(server.channel)
    return lambda timeout: stub.ListDepartments(
        catalog_service_pb2.ListDepartmentsRequest(), metadata=bearer(), timeout=timeout
    )


def test_unary_calls_whose_request_never_comes_are_cancelled_and_excess_refused(sqlite_url):
    limits = Limits(calls=4, request_seconds=0.3)
    with serving(REPORT, sqlite_url, limits) as server, held() as calls:
        with_report(server)
        method = "/report_service.v1.ReportService/GetReport"
        for _ in range(limits.calls):
            calls.without_request(server.channel, method)
        time.sleep(0.1)
        refused(lambda: get_report(server)(timeout=ANSWER_WITHIN), TOO_MANY_CALLS)
        # Within the request limit (and the reaper's period) they are cancelled.
        wait_until(lambda: _answers(get_report(server)), timeout=3)


def _answers(call) -> bool:
    try:
        call(timeout=ANSWER_WITHIN)
        return True
    except grpc.RpcError:
        return False


def test_a_churn_of_streams_of_every_kind_leaves_health_and_calls_answering(sqlite_url):
    """The churn check (STREAMS_CHURN_SECONDS for a long run): 8 threads open and close
    streams of every streaming method while health and a unary call are probed."""
    with serving(REPORT, sqlite_url) as server:
        with_report(server)
        methods = streaming_methods(server.channel)
        stop = threading.Event()
        opened, errors = [0], []

        def churn(index: int) -> None:
            with grpc.insecure_channel(server.address) as channel:
                while not stop.is_set():
                    with held() as calls:
                        for method in methods:
                            try:
                                calls.stream(channel, method)
                                opened[0] += 1
                            except grpc.RpcError as error:
                                if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                                    errors.append(error)

        workers = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
        for worker in workers:
            worker.start()
        probes, slowest = 0, 0.0
        try:
            deadline = time.monotonic() + CHURN_SECONDS
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert_still_answering(server.channel, get_report(server))
                slowest = max(slowest, time.monotonic() - started)
                probes += 1
                time.sleep(0.05)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        print(
            f"\nchurn {CHURN_SECONDS:.0f}s: {opened[0]} streams opened and closed, "
            f"{probes} probes, slowest probe {slowest * 1000:.0f} ms"
        )
        assert not errors
        assert probes


def test_200_idle_watches_leave_health_and_calls_answering_and_all_get_the_next_change(
    sqlite_url,
):
    from tests.report_service.watchers import Watcher

    with serving(REPORT, sqlite_url) as server:
        with_report(server)
        watchers = [
            Watcher(server.channel, bearer(f"user:watcher-{index % 4}"), ORIGINAL)
            for index in range(200)
        ]
        for watcher in watchers:
            watcher.next()  # the SNAPSHOT: each is open, and idle from now on
        for _ in range(20):
            assert_still_answering(server.channel, get_report(server))
        update_original(server, "Seen by all").result()
        assert {watcher.next().report.name for watcher in watchers} == {"Seen by all"}
        for watcher in watchers:
            watcher.cancel()
