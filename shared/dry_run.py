"""validate_only (AIP-163): a write run in full inside its transaction, then rolled back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import peewee

T = TypeVar("T")


class _RolledBack(Exception, Generic[T]):
    """Carries the response of a validate_only call out of its transaction, rolling it back."""

    def __init__(self, response: T) -> None:
        super().__init__("validate_only: rolled back")
        self.response = response


def write(database: peewee.Database, work: Callable[[], T], *, validate_only: bool) -> T:
    """work() in one transaction: committed, or, when validate_only, rolled back once it has
    run every check and built its response (the response the real call would give)."""
    try:
        with database.atomic():
            response = work()
            if validate_only:
                raise _RolledBack(response)
            return response
    except _RolledBack as rolled_back:
        carried: T = rolled_back.response
        return carried
