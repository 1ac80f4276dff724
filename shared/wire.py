"""Protobuf wire format written by hand: a field around bytes that are already serialized.

The protobuf runtime serializes messages, not a message around bytes it did not make; a
response assembled from stored bytes (cohort_service.patches) frames them itself.
"""

from __future__ import annotations

_LENGTH_DELIMITED = 2  # the wire type of sub-messages, strings and bytes


def field_head(field_number: int, length: int) -> bytes:
    """What precedes length bytes of payload in field field_number of wire type 2: its tag
    and the length. (Not the payload too: the caller joins the parts, copying them once.)"""
    return _varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(length)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
