"""Etags (AIP-154): an opaque value, new on every change of a resource, that a write may carry
to be refused when the resource changed since the caller read it."""

from __future__ import annotations

import secrets

from shared.errors import Aborted

ETAG_MISMATCH = "ETAG_MISMATCH"


def new_etag() -> str:
    """A fresh etag: weak (`W/` and 16 hex digits), as a resource's computed parts may differ
    between reads. Without RFC 7232's quotes: a value a client passes as it is, in JSON or a shell.

    Random rather than a counter: a report id can be deleted and created again, and a counter
    starting over would let an etag read before the delete match the new report.
    """
    return f"W/{secrets.token_hex(8)}"


def check_etag(field: str, given: str, current: str | None, what: str) -> None:
    """ABORTED (reason ETAG_MISMATCH) when given is set and is not current; empty checks nothing.

    Callers hold the row lock the write takes, so that no other write can slip in between
    this check and their own.
    """
    if given and given != current:
        raise Aborted(
            f"{field} is not the current etag of {what}: it changed since it was read; "
            "read it again and decide on what it is now",
            reason=ETAG_MISMATCH,
            metadata={"field": field},
        )
