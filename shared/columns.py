"""Column values as the drivers return them, read alike on SQLite and PostgreSQL.

For rows read with `CompiledQuery.raw`: sqlite3 returns datetimes as ISO text and booleans as
0/1, psycopg2 returns datetime and bool objects; the store keeps datetimes as naive UTC.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

_EPOCH = datetime(1970, 1, 1)


def as_datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def timestamp(value: datetime | str) -> timestamp_pb2.Timestamp:
    """A Timestamp from a stored naive UTC datetime (or its text).

    Plain arithmetic: Timestamp.FromDatetime goes through timetuple and calendar, ~4 µs.
    """
    delta = as_datetime(value) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )
