"""Random and mutated requests to every RPC of both services, over a real channel.

For each call: the code is one a client's mistake may get (never UNKNOWN or INTERNAL), a
failure carries the service's ErrorInfo and changes nothing, health stays SERVING, and a write
that succeeds reads back unchanged through the read RPCs.

The normal suite runs 30 derandomized cases per RPC and engine. The long run draws new ones:

    FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/reliability/test_fuzz.py \
        -p no:cacheprovider --hypothesis-show-statistics

(cases per RPC and engine; 600 took 9.5 minutes on a 2-core machine, add `-k sqlite` or
`-k postgres` for one engine.)
"""

from __future__ import annotations

import logging
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from shared.server import MAX_MESSAGE_BYTES
from tests.reliability.fuzz_calls import calls
from tests.reliability.fuzz_strategies import Vocabulary, field_paths, requests
from tests.reliability.read_back import READ_BACK, READ_ONLY, Calls
from tests.reliability.rpc import DEFINITIONS, all_methods, invoke, request_type
from tests.reliability.servers import AUTH
from tests.reliability.worlds import OWNER, OWNER_SCOPED, World, valid_request
from tests.support import bearer, failure, snapshot, watch_log

_BASE = {
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
# The normal suite tries the same cases every run; the long run new ones each time.
settings.register_profile("fuzz", max_examples=30, derandomize=True, **_BASE)
settings.register_profile(
    "fuzz-long", max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 1), **_BASE
)
FUZZ_SETTINGS = settings.get_profile("fuzz-long" if os.environ.get("FUZZ_EXAMPLES") else "fuzz")
# The envelope test draws its RPC too: more cases per service, as many per RPC in the long run.
CALL_SETTINGS = settings(
    FUZZ_SETTINGS,
    max_examples=FUZZ_SETTINGS.max_examples * (10 if os.environ.get("FUZZ_EXAMPLES") else 2),
)

# The codes a request's content may earn (a request over 4 MiB gets RESOURCE_EXHAUSTED).
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}
# ABORTED only for a drawn etag that is not the resource's: a client's mistake, not contention.
ETAG_MISMATCH = (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
METHODS = [pytest.param(service, method, id=method.name) for service, method in all_methods()]


def _vocabulary(world: World, descriptor) -> Vocabulary:
    ids = (*world.ids.values(), OWNER, f"{OWNER}:", "team:", "user:bob")
    return Vocabulary(ids=ids, paths=field_paths(descriptor))


def _valid_requests(service: str, name: str, world: World) -> list:
    if name in OWNER_SCOPED[service]:
        return [build(world) for build, _ in OWNER_SCOPED[service][name]]
    return [valid_request(service, name, world)]


def _healthy(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("service", "method"), METHODS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_random_requests_get_a_client_error_or_a_result_that_reads_back(
    servers, service, method, data
):
    server, world = servers.get(service)
    owner = bearer(OWNER, auth=AUTH)
    strategy = requests(
        method.input_type,
        _valid_requests(service, method.name, world),
        _vocabulary(world, method.input_type),
    )
    raw = data.draw(strategy, label="request bytes")
    try:
        note(f"request: {request_type(method).FromString(raw)!r:.2000}")
    except Exception as exc:  # damaged bytes: the server must refuse them cleanly
        note(f"undecodable request ({exc})")
    before = snapshot(server.database)
    try:
        response = invoke(server.channel, method, raw, owner, timeout=60)
    except grpc.RpcError as error:
        if len(raw) > MAX_MESSAGE_BYTES:  # refused by grpc itself, before any of our code
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            event("RESOURCE_EXHAUSTED (over 4 MiB)")
        else:
            found = failure(error)
            event(f"{found.code.name} {found.reason}")
            assert found.code in ALLOWED or (found.code, found.reason) == ETAG_MISMATCH, found
            assert found.domain == DEFINITIONS[service].name, f"no ErrorInfo: {found}"
        assert snapshot(server.database) == before, f"a failed call changed the store: {error}"
    else:
        event("OK")
        request = request_type(method).FromString(raw)
        if _changed_nothing(service, method.name, request, response, servers.memory, OWNER):
            assert snapshot(server.database) == before, "a read or a check changed the store"
        else:
            calls = Calls(server.channel, service, owner, servers.memory)
            consumed = READ_BACK[service][method.name](calls, request, response)
            if consumed:  # the call deleted the owner's data: later examples get new data
                servers.refresh()
    assert _healthy(server.channel)


def _changed_nothing(service: str, name: str, request, response, memory: dict, principal) -> bool:
    """Whether a successful call must have left the store as it was: a read, a validate_only
    call, or a repeat of a remembered request_id (which must answer the first response)."""
    if name in READ_ONLY[service] or getattr(request, "validate_only", False):
        return True
    request_id = getattr(request, "request_id", "")
    if not request_id:
        return False
    first = memory.setdefault(("request_id", principal, request_id.lower()), response)
    if first is response:
        return False  # the first success: read it back
    assert response == first, "a repeated request_id got another response"
    return True


@pytest.fixture(scope="module")
def unexpected_errors():
    """What the services log as unexpected (every INTERNAL): seen even when the client left."""
    with watch_log("shared.errors", logging.ERROR) as watcher:
        yield watcher


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
@CALL_SETTINGS
@given(data=st.data())
def test_random_tokens_headers_and_deadlines_get_a_client_error_or_a_result_that_reads_back(
    servers, unexpected_errors, service, data
):
    """The same invariants for what surrounds a valid request: token claims, headers, deadline."""
    server, world = servers.get(service)
    method = data.draw(st.sampled_from([m for s, m in all_methods() if s == service]))
    request = data.draw(st.sampled_from(_valid_requests(service, method.name, world)))
    call = data.draw(calls(AUTH, OWNER), label="call")
    logged = len(unexpected_errors.messages)  # a late one of the previous case counts here
    before = snapshot(server.database)
    try:
        response = invoke(server.channel, method, request, list(call.metadata), call.deadline)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and call.deadline is not None:
            # The client gave up (a write may have committed just before); the server's own
            # answer, when it was INTERNAL, is in unexpected_errors.
            event(f"DEADLINE_EXCEEDED after {call.deadline} s")
            assert call.deadline <= 1.0, call.deadline
        elif call.over_grpc_limit and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            event("RESOURCE_EXHAUSTED (headers over 8 KiB)")  # refused by grpc itself
            assert snapshot(server.database) == before
        else:
            found = failure(error)
            event(f"{found.code.name} {found.reason}")
            assert (
                found.code in ALLOWED | AUTH_FAILURES or (found.code, found.reason) == ETAG_MISMATCH
            ), found
            assert found.domain == DEFINITIONS[service].name, f"no ErrorInfo: {found}"
            assert snapshot(server.database) == before, f"a failed call changed the store: {error}"
    else:
        event("OK")
        assert call.authorization is not None, "a call with no single authorization header ran"
        memory = servers.memory
        if call.claims["sub"] != OWNER:  # another principal: its own idempotency keys
            memory = memory.setdefault(("principal", call.claims["sub"]), {})
        if _changed_nothing(service, method.name, request, response, memory, call.claims["sub"]):
            assert snapshot(server.database) == before, "a read or a check changed the store"
        else:
            metadata = [("authorization", call.authorization)]
            calls_ = Calls(server.channel, service, metadata, memory)
            if READ_BACK[service][method.name](calls_, request, response):
                servers.refresh()
    assert _healthy(server.channel)
    assert not unexpected_errors.messages[logged:], "INTERNAL (logged by the service)"


AUTH_FAILURES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_every_write_method_has_a_read_back(service):
    names = {method.name for s, method in all_methods() if s == service}
    writes, reads = set(READ_BACK[service]), READ_ONLY[service]
    assert not writes & reads, f"both read-only and read back: {sorted(writes & reads)}"
    assert names == writes | reads, (
        f"unclassified: {sorted(names - writes - reads)} — give each write RPC a read-back in "
        "tests/reliability/read_back.py, or list it in READ_ONLY"
    )
