"""Verified tokens are remembered for speed, never past their expiry or for another signature."""

from __future__ import annotations

import dataclasses
import time

import grpc
import pytest

from report_service.server import SERVICE
from report_service.v1 import report_service_pb2, report_service_pb2_grpc
from shared.config import AuthSettings
from tests.support import TEST_AUTH, bearer, serve


def _list(channel, metadata):
    stub = report_service_pb2_grpc.ReportServiceStub(channel)
    return stub.ListReports(report_service_pb2.ListReportsRequest(), metadata=metadata)


def test_a_token_accepted_before_is_refused_once_it_expires(sqlite_url):
    # No clock-skew leeway: with the default 30 s the token would count 30 s longer.
    with serve(SERVICE, sqlite_url, auth=dataclasses.replace(TEST_AUTH, leeway=0)) as server:
        # Minted once the server is up, and valid for at least 2 s: a server start slowed by
        # a loaded machine let a 1 s token expire before its first call.
        metadata = bearer("user:alice", ttl_seconds=3)
        _list(server.channel, metadata)
        time.sleep(4.1)  # exp has whole-second resolution
        with pytest.raises(grpc.RpcError) as caught:
            _list(server.channel, metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in caught.value.details()


def test_a_token_with_the_same_claims_but_another_signature_is_refused(sqlite_url):
    good = bearer("user:alice")
    forged = bearer("user:alice", auth=AuthSettings(secret="another-secret-" + "y" * 32))
    with serve(SERVICE, sqlite_url) as server:
        _list(server.channel, good)
        with pytest.raises(grpc.RpcError) as caught:
            _list(server.channel, forged)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
