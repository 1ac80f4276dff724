"""shared.columns reads driver values into the same messages as the protobuf helpers do."""

from __future__ import annotations

from datetime import datetime

import pytest
from google.protobuf import timestamp_pb2

from shared.columns import as_datetime, timestamp

MOMENTS = [
    datetime(2026, 11, 23, 15, 1, 2, 345678),
    datetime(1969, 12, 31, 23, 59, 59, 1),
    datetime(2000, 2, 29),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_timestamp_of_a_datetime_or_its_sqlite_text_equals_from_datetime(moment):
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    assert timestamp(moment) == expected
    assert timestamp(str(moment)) == expected


def test_as_datetime_passes_a_datetime_through_and_parses_text():
    assert as_datetime(MOMENTS[0]) is MOMENTS[0]
    assert as_datetime("2026-11-23 15:01:02.345678") == MOMENTS[0]
