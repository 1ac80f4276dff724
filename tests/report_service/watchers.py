"""A WatchReport client for tests (tests.watchers.StreamWatcher)."""

from __future__ import annotations

import grpc

from report_service.v1 import report_pb2, report_service_pb2, report_service_pb2_grpc
from tests.watchers import StreamWatcher, reason_of

__all__ = ["Type", "Watcher", "reason_of"]

Type = report_pb2.ReportEvent.Type


class Watcher(StreamWatcher):
    """An open WatchReport stream."""

    def __init__(
        self,
        channel: grpc.Channel,
        metadata,
        report_id: str,
        start_after: str = "",
        *,
        timeout: float | None = None,
    ) -> None:
        stub = report_service_pb2_grpc.ReportServiceStub(channel)
        super().__init__(
            stub.WatchReport(
                report_service_pb2.WatchReportRequest(id=report_id, start_after=start_after),
                metadata=metadata,
                timeout=timeout,
            )
        )

    @staticmethod
    def unread(channel: grpc.Channel, metadata, report_id: str):
        """A stream whose first event (the snapshot) is read, and nothing after it."""
        call = report_service_pb2_grpc.ReportServiceStub(channel).WatchReport(
            report_service_pb2.WatchReportRequest(id=report_id), metadata=metadata
        )
        next(call)
        return call
