"""Request limits: oversized messages and lists are refused by name, and memory stays bounded.

Every list field of every request of both services is found through the descriptors, so a
new RPC or field is covered without an edit here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from shared.server import MAX_MESSAGE_BYTES
from tests.reliability.rpc import DEFINITIONS, all_methods, invoke, request_type
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
    oversized = b"\x0a" + _varint(MAX_MESSAGE_BYTES) + b"x" * MAX_MESSAGE_BYTES

    with pytest.raises(grpc.RpcError) as caught:
        invoke(channels[service], method, oversized, bearer())

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
