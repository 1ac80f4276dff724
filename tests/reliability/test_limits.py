"""Request limits: oversized messages and lists are refused by name, and memory stays bounded.

Every list field of every request of both services is found through the descriptors, so a
new RPC or field is covered without an edit here.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cohort_service.v1 import draft_service_pb2
from report_service.v1 import report_pb2, report_service_pb2
from shared.server import MAX_MESSAGE_BYTES
from shared.wire import field_head
from tests.processes import service_process
from tests.reliability.rpc import DEFINITIONS, all_methods, invoke, request_type
from tests.report_service.support import valid_report
from tests.support import bearer, failure, serve

LIST_LIMIT = 1000  # SPEC §5.12, and report datasets
# Well-known messages whose insides are the client's data (Struct) or a time, not our lists.
_OPAQUE = ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue")


def _list_fields(message: Descriptor, prefix: str = "") -> Iterator[tuple[str, FieldDescriptor]]:
    """(dotted path, field) of every repeated field reachable from message, maps excluded."""
    for field in message.fields:
        path = f"{prefix}{field.name}"
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if field.is_repeated:
            if not is_map:
                yield path, field
        elif field.message_type is not None and field.message_type.full_name not in _OPAQUE:
            yield from _list_fields(field.message_type, f"{path}.")


def _list_cases() -> Iterator:
    for service, method in all_methods():
        for path, field in _list_fields(method.input_type):
            yield pytest.param(service, method, path, field, id=f"{method.name}.{path}")


def _with_list(method: MethodDescriptor, path: str, field: FieldDescriptor, count: int):
    request = request_type(method)()
    *parents, name = path.split(".")
    target = request
    for parent in parents:
        target = getattr(target, parent)
    items = getattr(target, name)
    for index in range(count):
        if field.message_type is not None:
            items.add()
        elif field.type == FieldDescriptor.TYPE_STRING:
            items.append(f"item-{index}")
        else:
            items.append(index)
    return request


@pytest.fixture(scope="module")
def channels(tmp_path_factory) -> Iterator[dict[str, grpc.Channel]]:
    """A server of each service (limits do not depend on the database engine)."""
    directory = tmp_path_factory.mktemp("limits")
    with contextlib.ExitStack() as stack:
        yield {
            service: stack.enter_context(
                serve(definition, f"sqlite:///{directory / f'{service}.db'}")
            ).channel
            for service, definition in DEFINITIONS.items()
        }


@pytest.mark.parametrize(("service", "method", "path", "field"), list(_list_cases()))
def test_a_list_over_the_limit_is_invalid_argument_naming_the_field(
    service, method, path, field, channels
):
    request = _with_list(method, path, field, LIST_LIMIT + 1)

    with pytest.raises(grpc.RpcError) as caught:
        invoke(channels[service], method, request, bearer())

    error = failure(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error.message
    assert path in error.fields, error.violations


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_a_request_over_the_message_limit_is_resource_exhausted(service, channels):
    method = next(m for s, m in all_methods() if s == service)
    oversized = field_head(1, MAX_MESSAGE_BYTES) + b"x" * MAX_MESSAGE_BYTES

    with pytest.raises(grpc.RpcError) as caught:
        invoke(channels[service], method, oversized, bearer())

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# ---------------------------------------------------------------------------
# Memory under oversized requests, in a service process
# ---------------------------------------------------------------------------

NEAR_LIMIT = 3_900_000  # bytes: just under MAX_MESSAGE_BYTES, so grpc hands them to us
# Measured after a warm-up that brings the allocator's arenas and grpc's buffers to their
# working size (RSS swings by tens of MiB before that, and a leak shows only after it).
WARM_UP_CALLS = 60
# 60 keeps the normal suite quick; LIMITS_OVERSIZED_CALLS=1000 is the long variant.
OVERSIZED_CALLS = int(os.environ.get("LIMITS_OVERSIZED_CALLS", "60"))
RSS_GROWTH_LIMIT = 50 * 1024 * 1024


def _near_limit_requests(service: str) -> list:
    """Requests of about NEAR_LIMIT bytes that each fail validation: a long text, a long list."""
    text = "n" * NEAR_LIMIT
    items = [f"item-{index:07d}" for index in range(NEAR_LIMIT // 14)]
    if service == "cohort":
        return [
            draft_service_pb2.PatchCohortDraftRequest(name=text, idempotency_key="k"),
            draft_service_pb2.PatchCohortDraftRequest(departments=items, idempotency_key="k"),
        ]
    return [
        report_service_pb2.CreateReportRequest(report=valid_report(name=text)),
        report_service_pb2.CreateReportRequest(
            report=valid_report(
                datasets=[report_pb2.ReportDataset(dataset_id=item) for item in items[:243_000]]
            )
        ),
    ]


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_a_service_process_keeps_its_memory_under_a_stream_of_oversized_requests(service, tmp_path):
    name = DEFINITIONS[service].name
    method = {
        "cohort": ("cohort_service.v1.CohortDraftService", "PatchCohortDraft"),
        "report": ("report_service.v1.ReportService", "CreateReport"),
    }[service]
    descriptor = descriptor_pool.Default().FindServiceByName(method[0]).FindMethodByName(method[1])
    near_limit = [request.SerializeToString() for request in _near_limit_requests(service)]
    assert all(MAX_MESSAGE_BYTES - 400_000 < len(raw) < MAX_MESSAGE_BYTES for raw in near_limit)
    over_limit = field_head(1, MAX_MESSAGE_BYTES) + b"x" * MAX_MESSAGE_BYTES
    requests = [*near_limit, over_limit]
    metadata = bearer()

    def send(index: int) -> grpc.StatusCode:
        try:
            invoke(channel, descriptor, requests[index % len(requests)], metadata, timeout=60)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    url = f"sqlite:///{tmp_path / 'service.db'}"
    with (
        service_process(name, url, tmp_path / "service.log") as running,
        running.channel() as channel,
        futures.ThreadPoolExecutor(max_workers=6) as clients,  # more than the server's threads
    ):
        list(clients.map(send, range(WARM_UP_CALLS)))
        before = running.rss_bytes()
        codes = Counter(clients.map(send, range(OVERSIZED_CALLS)))
        after = running.rss_bytes()
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert running.stop() == 0

    print(
        f"\n{name}: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB after "
        f"{OVERSIZED_CALLS} requests of 3.6-4 MiB ({dict(codes)})"
    )
    assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert after - before < RSS_GROWTH_LIMIT
    assert health.status == health_pb2.HealthCheckResponse.SERVING
