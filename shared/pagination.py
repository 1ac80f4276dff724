"""page_size / page_token helpers: opaque, url-safe keyset cursors."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from typing import Any

from shared.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(
    requested: int,
    *,
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
    field: str = "page_size",
) -> int:
    """The page size to serve: 0 means the default, larger than maximum is capped (AIP-158)."""
    if requested < 0:
        raise InvalidArgument(
            f"{field} must not be negative", [(field, f"must be 0 or more, got {requested}")]
        )
    return min(requested or default, maximum)


def encode_page_token(cursor: Sequence[str | int | float | None]) -> str:
    raw = json.dumps(list(cursor), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, *, field: str = "page_token") -> list[Any] | None:
    """The cursor inside token; None for the first page; InvalidArgument for anything forged."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        cursor = None
    if not isinstance(cursor, list) or not _issuable(cursor):
        raise InvalidArgument(
            f"{field} is not a token this service issued",
            [(field, "must be the next_page_token of a previous response, or empty")],
        )
    return cursor


_INT64 = range(-(2**63), 2**63)


def _issuable(cursor: list[Any]) -> bool:
    """Whether cursor could be one we issued: a flat list of values the store can take.

    A forged cursor must not reach the store with a NUL (PostgreSQL text refuses it) or an
    integer past 64 bits (SQLite refuses it).
    """
    return all(_storable(value) for value in cursor)


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return value in _INT64
    return isinstance(value, float) and math.isfinite(value)
