"""Request-wide value rules: no text may contain NUL (U+0000), no number may be NaN or infinite.

Both would fail deep in the service as INTERNAL: PostgreSQL text cannot hold NUL (and SQLite
would store it, so the engines would disagree), and JSON — how a `google.protobuf.Struct` is
stored and read back — has no NaN or Infinity (protobuf's own JSON mapping refuses them in a
`Value`). Checked once here, for every field of every request, the caller gets
INVALID_ARGUMENT naming each field instead.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

NUL_IN_TEXT = "NUL_IN_TEXT"
NON_FINITE_NUMBER = "NON_FINITE_NUMBER"
RULES = {  # reason -> what the error message says
    NUL_IN_TEXT: "text fields must not contain NUL characters",
    NON_FINITE_NUMBER: "numbers must be finite (no NaN or Infinity)",
}

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_FLOATING = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
# Every list field of every request is refused past 1,000 items (SPEC §5.12) before it
# reaches the store, so a longer one need not be walked: a 4 MiB request can hold 250,000
# items, and walking each with its path took close to a second of CPU per request.
LONGEST_WALKED_LIST = 1000

Violation = tuple[str, str, str]  # (rule, field path, description)


def value_violations(message: Message, prefix: str = "") -> list[Violation]:
    """(rule, field path, description) for each NUL in a text and each NaN/±Infinity number."""
    found: list[Violation] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        entry: Descriptor | None = field.message_type
        if field.type == _MESSAGE and entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            for key, item in value.items():
                item_path = f"{path}[{key!r}]"
                if isinstance(key, str) and "\x00" in key:
                    found.append(
                        (NUL_IN_TEXT, item_path, "the key contains a NUL character (U+0000)")
                    )
                found += _check(value_field, item, item_path)
        elif field.is_repeated:
            if len(value) > LONGEST_WALKED_LIST and not _client_data(field):
                continue  # refused by its length (tests/reliability/test_limits.py)
            for index, item in enumerate(value):
                found += _check(field, item, f"{path}[{index}]")
        else:
            found += _check(field, value, path)
    return found


def _check(field: FieldDescriptor, value: Any, path: str) -> list[Violation]:
    if field.type == _STRING and "\x00" in value:
        return [
            (NUL_IN_TEXT, path, "contains a NUL character (U+0000), which no text field accepts")
        ]
    if field.type in _FLOATING and not math.isfinite(value):
        return [
            (
                NON_FINITE_NUMBER,
                path,
                f"is {value}; numbers must be finite (JSON has no NaN or Infinity)",
            )
        ]
    if field.type == _MESSAGE:
        return value_violations(value, f"{path}.")
    return []


def _client_data(field: FieldDescriptor) -> bool:
    """Lists inside a Struct (google.protobuf.ListValue) have no length limit: always walked."""
    container = field.containing_type
    return container is not None and container.full_name.startswith("google.protobuf.")
