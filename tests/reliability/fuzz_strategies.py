"""Hypothesis strategies derived from protobuf descriptors: random requests, and mutated valid ones.

`requests(descriptor, valid, vocabulary)` draws serialized request bytes: a message built from
the descriptor alone (every field type, repeated and map fields, nested messages, enums with
unknown numbers, Struct/Value nested deep with NaN and ±Infinity now and then, ids with URL syntax
and control characters, FieldMask, Timestamp), a valid request with a few
fields changed (so that calls get past the first check into the servicer's logic), or a valid
request's bytes damaged on the wire.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

_F = FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}
# Around the limits the services document: 200-character names, 512-character ids,
# 10,000-character descriptions, 1,000 items per list, 1,000 per page.
_SIZES = (199, 200, 201, 511, 512, 513, 10_000, 10_001, 100_000)
_LIST_SIZES = (1000, 1001, 3000)
_MAX_DEPTH = 3  # nested (non well-known) messages built from scratch
# Any code point protobuf can encode but NUL, which has strategies of its own (a NUL anywhere
# makes the whole request fail its first check, so it must not be everywhere).
_CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
_PLAIN = st.characters(min_codepoint=32, max_codepoint=126)
# What an id may meet on its way: URL syntax (ids become links), controls, look-alikes.
_SPECIAL = (
    ":", "?", "#", "/", "%", "%2F", "%00", "&", "=", "+", " ", "\n", "\r\n", "\t", "\x7f",
    "\x1b[31m", "\u202e", "\u200b", "\ufeff", "é", "e\u0301", "😀", "..", "\\",
)  # fmt: skip


@dataclass(frozen=True)
class Vocabulary:
    """Strings worth trying beside random ones: real ids of the world, field names for masks."""

    ids: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------


def _short_text() -> st.SearchStrategy[str]:
    return st.text(_CHARACTERS, max_size=24)


def strings(vocabulary: Vocabulary) -> st.SearchStrategy[str]:
    """Plausible values half the time (real ids, UUIDs, plain names), so that calls get past
    validation; else unicode, NUL, blanks, huge strings and almost-UUIDs."""
    plausible = [st.uuids().map(str), st.text(_PLAIN, min_size=1, max_size=20)]
    if vocabulary.ids:
        plausible += [st.sampled_from(vocabulary.ids)] * 2
    hostile = st.one_of(
        _short_text(),
        st.text("0123456789abcdefABCDEF-{} ", min_size=1, max_size=40),  # almost UUIDs
        st.builds(lambda a, b: f"{a}\x00{b}", _short_text(), _short_text()),
        st.text(" \t\n\r\u00a0\u2003\u200b", max_size=6),
        st.builds(
            lambda unit, size: (unit * size)[:size],
            st.sampled_from(["x", "é", "😀", " ", "\x00", "ab:"]),
            st.sampled_from(_SIZES),
        ),
        st.sampled_from(["", "*", ":", "null", "true", "../..", "%00", "'; DROP TABLE x; --"]),
        st.lists(st.sampled_from(_SPECIAL), min_size=1, max_size=3).map("".join),
        *(
            [
                st.builds(lambda i, s: i + s, st.sampled_from(vocabulary.ids), _short_text()),
                st.builds(  # a real id with URL syntax or a control inside or after it
                    lambda i, c, at: i[:at] + c + i[at:],
                    st.sampled_from(vocabulary.ids),
                    st.sampled_from(_SPECIAL),
                    st.integers(0, 64),
                ),
            ]
            if vocabulary.ids
            else []
        ),
    )
    return st.one_of(st.one_of(plausible), hostile)


def page_tokens() -> st.SearchStrategy[str]:
    """Forged cursors: base64 of JSON a service might decode and then trust."""
    hostile = st.one_of(
        st.integers(2**63 - 2, 2**64 + 2),
        st.sampled_from(["a\x00", "\x00", 1e308, -1e308]),
        _short_text(),
    )
    plain = st.one_of(st.none(), st.booleans(), st.integers(), st.uuids().map(str))
    scalars = st.one_of(hostile, plain)
    kinds = st.sampled_from(
        ["reports", "activities", "2026-01-01T00:00:00.000001", "a", "a\x00", "aa_key"]
    )
    cursor = st.one_of(
        st.tuples(kinds, scalars).map(list),  # the shapes the lists issue, with any values
        st.tuples(kinds).map(list),
        st.lists(scalars, max_size=4),
        scalars,
        st.dictionaries(_short_text(), scalars),
    )
    return cursor.map(
        lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    )


def _integers(field: FieldDescriptor) -> st.SearchStrategy[int]:
    low, high = _INT_RANGES[field.type]
    edges = [value for value in (0, -1, 1, 1000, 1001, low, high) if low <= value <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _scalar(field: FieldDescriptor, vocabulary: Vocabulary) -> st.SearchStrategy:
    if field.type == _F.TYPE_STRING:
        if field.name == "page_token":
            return st.sampled_from([page_tokens()] * 3 + [strings(vocabulary)]).flatmap(
                lambda strategy: strategy
            )
        return strings(vocabulary)
    if field.type == _F.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == _F.TYPE_BOOL:
        return st.booleans()
    if field.type in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        width = 32 if field.type == _F.TYPE_FLOAT else 64
        return st.floats(width=width)
    if field.type == _F.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    return _integers(field)


# ---------------------------------------------------------------------------
# Well-known types
# ---------------------------------------------------------------------------


def json_values(vocabulary: Vocabulary, max_leaves: int = 12) -> st.SearchStrategy:
    """What a google.protobuf.Value can hold, NaN and ±Infinity now and then (refused)."""
    finite = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**53), 2**53).map(float),
        strings(vocabulary),
    )
    non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
    # Rare, so that most Structs get past the request check into the servicer.
    leaves = st.sampled_from([finite] * 15 + [non_finite]).flatmap(lambda strategy: strategy)
    keys = st.one_of(_short_text(), strings(vocabulary))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _chain(depth: int, kind: str) -> struct_pb2.Struct:
    """A Struct `depth` objects deep: {"a": {"a": ...}}, or {"a": [{"a": [...]}]}.

    Built in place: the Struct constructor and update() refuse depths the server must see.
    """
    root = struct_pb2.Struct()
    current = root
    for _ in range(depth):
        if kind == "list":
            current = current.fields["a"].list_value.values.add().struct_value
        else:
            current = current.fields["a"].struct_value
    return root


def structs(vocabulary: Vocabulary) -> st.SearchStrategy[Message]:
    def build(value: dict) -> Message:
        message = struct_pb2.Struct()
        message.update(value)
        return message

    deep = st.builds(
        _chain,
        st.sampled_from([8, 16, 30, 31, 32, 33, 40, 60, 120]),
        st.sampled_from(["obj", "list"]),
    )
    wide = st.integers(1000, 5000).map(lambda n: build({f"k{i}": i for i in range(n)}))
    shallow = st.dictionaries(
        st.one_of(_short_text(), strings(vocabulary)), json_values(vocabulary), max_size=6
    )
    return st.one_of(shallow.map(build), deep, wide)


def _well_known(descriptor: Descriptor, vocabulary: Vocabulary) -> st.SearchStrategy | None:
    message_type = message_factory.GetMessageClass(descriptor)
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return structs(vocabulary)
    if name == "google.protobuf.Value":
        return structs(vocabulary).filter(len).map(lambda s: next(iter(s.fields.values())))
    if name == "google.protobuf.FieldMask":
        paths = st.one_of(
            st.sampled_from((*vocabulary.paths, "*", "", "id", "a.b"))
            if vocabulary.paths
            else st.just("*"),
            _short_text(),
        )
        return st.lists(paths, max_size=5).map(lambda p: message_type(paths=p))
    if name == "google.protobuf.Timestamp":
        seconds = st.one_of(
            st.integers(-62_135_596_800, 253_402_300_799),  # 0001-01-01 .. 9999-12-31
            st.integers(-(2**63), 2**63 - 1),
        )
        nanos = st.one_of(st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1))
        return st.builds(lambda s, n: message_type(seconds=s, nanos=n), seconds, nanos)
    if name == "google.protobuf.Empty":
        return st.just(message_type())
    return None


# ---------------------------------------------------------------------------
# Messages from descriptors
# ---------------------------------------------------------------------------


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == _F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _single(field: FieldDescriptor, vocabulary: Vocabulary, depth: int) -> st.SearchStrategy:
    if field.type == _F.TYPE_MESSAGE:
        return messages(field.message_type, vocabulary, depth + 1)
    return _scalar(field, vocabulary)


def _small(field: FieldDescriptor, vocabulary: Vocabulary) -> st.SearchStrategy:
    """A small element, for lists of thousands (of huge elements, requests would pass 4 MiB)."""
    if field.type == _F.TYPE_MESSAGE:
        return st.just(message_factory.GetMessageClass(field.message_type)())
    if field.type == _F.TYPE_STRING:
        return st.sampled_from(("", "not-a-uuid", str(uuid.UUID(int=1)), *vocabulary.ids[:4]))
    return _scalar(field, vocabulary)


def _values(field: FieldDescriptor, vocabulary: Vocabulary, depth: int) -> st.SearchStrategy:
    """What one field can be set to: a value, a list (repeated) or a dict (map)."""
    if _is_map(field):
        key, value = (
            field.message_type.fields_by_name["key"],
            field.message_type.fields_by_name["value"],
        )
        return st.dictionaries(
            _scalar(key, vocabulary), _single(value, vocabulary, depth), max_size=4
        )
    element = _single(field, vocabulary, depth)
    if not _is_repeated(field):
        return element
    huge = st.builds(
        lambda item, size: [item] * size, _small(field, vocabulary), st.sampled_from(_LIST_SIZES)
    )
    return st.one_of(st.lists(element, max_size=5), huge)


def _assign(message: Message, field: FieldDescriptor, value) -> None:
    target = (
        getattr(message, field.name)
        if field.type == _F.TYPE_MESSAGE or _is_repeated(field)
        else None
    )
    if _is_map(field):
        target.clear()
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif _is_repeated(field):
        del target[:]
        target.extend(value)
    elif field.type == _F.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def messages(
    descriptor: Descriptor, vocabulary: Vocabulary, depth: int = 0
) -> st.SearchStrategy[Message]:
    """Any message of this type: each field unset or set to a random value."""
    special = _well_known(descriptor, vocabulary)
    if special is not None:
        return special
    message_type = message_factory.GetMessageClass(descriptor)
    fields = [
        field for field in descriptor.fields if depth < _MAX_DEPTH or field.type != _F.TYPE_MESSAGE
    ]

    @st.composite
    def build(draw) -> Message:
        message = message_type()
        for field in fields:
            if draw(st.booleans()):
                _assign(message, field, draw(_values(field, vocabulary, depth)))
        return message

    return build()


# ---------------------------------------------------------------------------
# Mutations of a valid request
# ---------------------------------------------------------------------------


def _mutate_once(draw, message: Message, vocabulary: Vocabulary, depth: int) -> None:
    field = draw(st.sampled_from(list(message.DESCRIPTOR.fields)))
    nested = (
        field.type == _F.TYPE_MESSAGE
        and not _is_repeated(field)
        and _well_known(field.message_type, vocabulary) is None
    )
    if nested and depth < _MAX_DEPTH and draw(st.booleans()):
        _mutate_once(draw, getattr(message, field.name), vocabulary, depth + 1)
        return
    actions = ["set", "set", "clear"]
    if _is_repeated(field) and not _is_map(field) and len(getattr(message, field.name)):
        actions += ["append", "duplicate", "drop"]
    action = draw(st.sampled_from(actions))
    if action == "clear":
        message.ClearField(field.name)
    elif action == "set":
        _assign(message, field, draw(_values(field, vocabulary, depth)))
    else:
        items = list(getattr(message, field.name))
        if action == "append":
            items.append(draw(_single(field, vocabulary, depth)))
        elif action == "duplicate":
            items.append(draw(st.sampled_from(items)))
        else:
            items.pop(draw(st.integers(0, len(items) - 1)))
        _assign(message, field, items)


def mutated(valid: Message, vocabulary: Vocabulary) -> st.SearchStrategy[Message]:
    """valid with one to three fields (anywhere in it) set, cleared, grown or shrunk."""

    @st.composite
    def build(draw) -> Message:
        message = type(valid)()
        message.CopyFrom(valid)
        for _ in range(draw(st.integers(1, 3))):
            _mutate_once(draw, message, vocabulary, 0)
        return message

    return build()


def damaged(data: bytes) -> st.SearchStrategy[bytes]:
    """data with bytes flipped, inserted or cut: what a broken or hostile client sends."""

    @st.composite
    def build(draw) -> bytes:
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(raw)))
            action = draw(st.sampled_from(["flip", "insert", "cut"]))
            if action == "insert" or not raw:
                raw[position:position] = draw(st.binary(min_size=1, max_size=8))
            elif action == "flip":
                raw[min(position, len(raw) - 1)] ^= draw(st.integers(1, 255))
            else:
                del raw[position:]
        return bytes(raw)

    return build()


def field_paths(descriptor: Descriptor, depth: int = 0) -> tuple[str, ...]:
    """Every field name in descriptor and its nested messages: plausible FieldMask paths."""
    names: list[str] = []
    for field in descriptor.fields:
        names.append(field.name)
        if field.type == _F.TYPE_MESSAGE and depth < _MAX_DEPTH and not _is_map(field):
            names += field_paths(field.message_type, depth + 1)
    return tuple(dict.fromkeys(names))


def requests(
    descriptor: Descriptor, valid: Sequence[Message], vocabulary: Vocabulary
) -> st.SearchStrategy[bytes]:
    """Serialized requests: mostly mutations of the valid ones, some from scratch, a few damaged."""
    serialize = lambda message: message.SerializeToString()  # noqa: E731
    mutations = [mutated(message, vocabulary).map(serialize) for message in valid]
    damages = [damaged(message.SerializeToString()) for message in valid]
    # Weighted (one_of would flatten repeats away): mutations reach the servicer's logic,
    # the rest mostly its first checks.
    branches = [st.one_of(mutations)] * 6 + [messages(descriptor, vocabulary).map(serialize)] * 2
    return st.sampled_from([*branches, st.one_of(damages)]).flatmap(lambda branch: branch)
