"""Reflection answers as grpc.reflection.v1 and as v1alpha (issue 10, item 7).

grpcio-reflection serves only v1alpha; a tool that speaks only v1 got UNIMPLEMENTED. The
Python check sends v1 requests as bytes on the v1 method (v1's messages are v1alpha's, field
for field); `buf curl --reflect-protocol grpc-v1`, a client of its own, lists the methods.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from report_service.server import SERVICE as REPORT
from shared.reflection import V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME
from tests.support import serve

BUF = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "buf"


def _ask(channel: grpc.Channel, service: str, request: reflection_pb2.ServerReflectionRequest):
    info = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (response,) = info(iter([request]), timeout=5)
    return response


@pytest.mark.parametrize("service", [V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME])
def test_reflection_lists_the_services_as_v1_and_v1alpha(sqlite_url, service):
    with serve(REPORT, sqlite_url) as server:
        response = _ask(
            server.channel, service, reflection_pb2.ServerReflectionRequest(list_services="")
        )
    names = {entry.name for entry in response.list_services_response.service}
    assert names == {
        "report_service.v1.ReportService",
        "grpc.health.v1.Health",
        V1_SERVICE_NAME,
        V1ALPHA_SERVICE_NAME,
    }


def test_reflection_v1_describes_itself_in_its_own_package(sqlite_url):
    with serve(REPORT, sqlite_url) as server:
        response = _ask(
            server.channel,
            V1_SERVICE_NAME,
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=V1_SERVICE_NAME),
        )
    (serialized,) = response.file_descriptor_response.file_descriptor_proto
    described = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    assert (described.name, described.package) == (
        "grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1",
    )
    (method,) = described.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming


def test_a_client_speaking_only_reflection_v1_lists_the_methods(sqlite_url):
    if not BUF.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{BUF} is missing: scripts/test installs it")
        pytest.skip("buf is not installed (scripts/test installs it)")
    with serve(REPORT, sqlite_url) as server:
        listed = subprocess.run(
            [
                shutil.which(str(BUF)) or str(BUF),
                "curl",
                "--protocol",
                "grpc",
                "--http2-prior-knowledge",
                "--reflect-protocol",
                "grpc-v1",
                "--list-methods",
                f"http://{server.address}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert listed.returncode == 0, listed.stderr
    assert "report_service.v1.ReportService/GetReport" in listed.stdout.split()
