"""Watches through the edge: WatchReport as native gRPC, as gRPC-Web (a browser's sonora
client) and as REST (the transcoder's streamed JSON array), and WatchCohortDrafts as REST,
each seeing its opening event and then a change made while it waits."""

from __future__ import annotations

import asyncio
import json
import queue
import threading

import grpc
import httpx
import sonora.aio

from draft_edge import config, descriptors
from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.edge.support import BROWSER_ORIGIN, TakesStubFlags, auth, token
from tests.edge.test_rest import create_report, path_id
from tests.support import bearer

Event = report_pb2.ReportEvent


def _rename(edge, report_id: str, name: str) -> None:
    with grpc.insecure_channel(edge.address) as channel:
        report_service_pb2_grpc.ReportServiceStub(channel).UpdateReport(
            report_service_pb2.UpdateReportRequest(
                report=report_pb2.Report(id=report_id, name=name),
                update_mask={"paths": ["name"]},
            ),
            metadata=bearer("user:ann"),
            timeout=30,
        )


def test_a_native_grpc_watch_streams_through_the_edge(edge):
    with edge.client() as http:
        create_report(http, "team:watch-grpc")
    with grpc.insecure_channel(edge.address) as channel:
        stream = report_service_pb2_grpc.ReportServiceStub(channel).WatchReport(
            report_service_pb2.WatchReportRequest(id="team:watch-grpc"),
            metadata=bearer("user:bob"),
            timeout=60,
        )
        snapshot = next(stream)
        assert (snapshot.type, snapshot.report.name) == (Event.TYPE_SNAPSHOT, "Sales Dashboard")
        _rename(edge, "team:watch-grpc", "Renamed over gRPC")
        changed = next(stream)
        assert (changed.type, changed.report.name) == (
            Event.TYPE_REPORT_UPDATED,
            "Renamed over gRPC",
        )
        assert changed.actor_id == "user:ann"
        stream.cancel()


class AsyncBrowserChannel(TakesStubFlags, sonora.aio.WebChannel):
    """sonora's asyncio gRPC-Web channel. (Its synchronous client reads a response stream
    through a 16 KiB buffer that waits for the buffer to fill, so a stream's messages arrive
    only when it ends.)"""


def test_a_grpc_web_watch_streams_to_a_browser_client(edge):
    with edge.client() as http:
        create_report(http, "team:watch-web")
    metadata = [("authorization", f"Bearer {token('user:web')}"), ("origin", BROWSER_ORIGIN)]

    async def watch() -> None:
        async with AsyncBrowserChannel(edge.url) as channel:
            reports = report_service_pb2_grpc.ReportServiceStub(channel)
            stream = reports.WatchReport(
                report_service_pb2.WatchReportRequest(id="team:watch-web"),
                metadata=metadata,
                timeout=60,
            )
            snapshot = await stream.read()
            assert snapshot.type == Event.TYPE_SNAPSHOT
            assert snapshot.report.id == "team:watch-web"
            await asyncio.to_thread(_rename, edge, "team:watch-web", "Renamed for the browser")
            changed = await stream.read()
            assert (changed.type, changed.report.name) == (
                Event.TYPE_REPORT_UPDATED,
                "Renamed for the browser",
            )
            # The cursor a browser keeps resumes the stream after the snapshot, via the edge.
            resumed = reports.WatchReport(
                report_service_pb2.WatchReportRequest(
                    id="team:watch-web", start_after=snapshot.event_id
                ),
                metadata=metadata,
                timeout=60,
            )
            again = await resumed.read()
            assert (again.event_id, again.type) == (changed.event_id, changed.type)

    asyncio.run(watch())


class RestWatch:
    """A watch over REST, read on a thread until `count` events came (then it closes the
    connection): the transcoder streams a server stream as one JSON array, an element per
    message."""

    def __init__(self, url: str, headers: dict, count: int) -> None:
        self._events: queue.Queue = queue.Queue()
        self._count = count
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=60) as answer:
            assert answer.status_code == 200
            buffered = ""
            decoder = json.JSONDecoder()
            for chunk in answer.iter_text():
                buffered += chunk
                while True:
                    buffered = buffered.lstrip("[, \n")
                    try:
                        event, end = decoder.raw_decode(buffered)
                    except json.JSONDecodeError:
                        break
                    self._events.put(event)
                    buffered = buffered[end:]
                    self._count -= 1
                    if not self._count:
                        return

    def next(self, what: str) -> dict:
        try:
            return self._events.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"{what} did not arrive over REST") from None


def test_a_rest_watch_streams_a_json_array_of_events(edge):
    with edge.client() as http:
        create_report(http, "team:watch-rest")
    watch = RestWatch(
        f"{edge.url}/api/reports/{path_id('team:watch-rest')}/watch", auth("user:rest"), 2
    )
    snapshot = watch.next("the SNAPSHOT")
    _rename(edge, "team:watch-rest", "Renamed over REST")
    changed = watch.next("the change")
    assert snapshot["type"] == "TYPE_SNAPSHOT"
    assert snapshot["report"]["id"] == "team:watch-rest"
    assert (changed["type"], changed["report"]["name"]) == (
        "TYPE_REPORT_UPDATED",
        "Renamed over REST",
    )
    assert changed["eventId"] and changed["eventId"] != snapshot["eventId"]


def test_a_rest_watch_of_the_callers_cohort_drafts_sees_a_patch_made_over_rest(edge):
    headers = auth("user:cohort-watcher")
    watch = RestWatch(f"{edge.url}/cohort/drafts/watch", headers, 2)
    assert watch.next("SYNCED")["type"] == "TYPE_SYNCED"  # no drafts yet
    with edge.client() as http:
        created = http.post("/cohort/draft", json={"name": "Watched"}, headers=headers)
        assert created.status_code == 200, created.text
    patched = watch.next("the patch")
    assert patched["type"] == "TYPE_PATCHED"
    assert patched["draftId"] == created.json()["draftId"]
    assert patched["formState"]["name"]["value"] == "Watched"
    assert patched["actorId"] == "user:cohort-watcher"


def test_watches_are_routed_without_a_timeout_or_an_idle_timeout():
    """A watch may be idle for hours: neither the call timeout nor Envoy's stream idle timeout
    (5 min by default, which cut an idle watch here) may end it; keep-alive pings find dead
    clients instead."""
    streams = {rpc.path: config.route(rpc, 30)["route"] for rpc in descriptors.rpcs()}
    streams = {path: r for path, r in streams.items() if r["timeout"] == "0s"}
    assert set(streams) == {
        "/report_service.v1.ReportService/WatchReport",
        "/cohort_service.v1.CohortDraftService/WatchCohortDrafts",
    }
    for action in streams.values():
        assert action["idle_timeout"] == "0s"
        assert "max_stream_duration" not in action
    assert config.DOWNSTREAM_KEEPALIVE["interval"]
