"""Request-wide text rule: no string anywhere in a request may contain NUL (U+0000).

PostgreSQL text cannot hold NUL, so such a value would fail deep in the store as INTERNAL
(and on SQLite it would be stored, so the engines would disagree). Checked once here, for
every field of every request, the caller gets INVALID_ARGUMENT naming each field instead.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
# Every list field of every request is refused past 1,000 items (SPEC §5.12) before it
# reaches the store, so a longer one need not be walked: a 4 MiB request can hold 250,000
# items, and walking each with its path took close to a second of CPU per request.
LONGEST_WALKED_LIST = 1000


def nul_violations(message: Message, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, description) for each string in message that contains NUL."""
    found: list[tuple[str, str]] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == _MESSAGE and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                item_path = f"{path}[{key!r}]"
                if isinstance(key, str) and "\x00" in key:
                    found.append((item_path, "the key contains a NUL character (U+0000)"))
                found += _check(value_field, item, item_path)
        elif field.is_repeated:
            if len(value) > LONGEST_WALKED_LIST and not _client_data(field):
                continue  # refused by its length (tests/reliability/test_limits.py)
            for index, item in enumerate(value):
                found += _check(field, item, f"{path}[{index}]")
        else:
            found += _check(field, value, path)
    return found


def _check(field: FieldDescriptor, value, path: str) -> list[tuple[str, str]]:
    if field.type == _STRING and "\x00" in value:
        return [(path, "contains a NUL character (U+0000), which no text field accepts")]
    if field.type == _MESSAGE:
        return nul_violations(value, f"{path}.")
    return []


def _client_data(field: FieldDescriptor) -> bool:
    """Lists inside a Struct (google.protobuf.ListValue) have no length limit: always walked."""
    return field.containing_type.full_name.startswith("google.protobuf.")
