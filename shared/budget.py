"""Size budgets: what one stored resource and one response may weigh, well under 4 MiB.

A client's default limit for a received message is 4 MiB (gRPC's default), so a resource
larger than that could be written but never read back, and a page of many large resources
could not be read at all. The budgets (also in the protos and docs/operations.md):

- a stored resource (a report's editable fields, a user's view settings, a cohort draft's
  form) serializes to at most RESOURCE_MAX_BYTES (1 MiB); a write that would exceed it is
  refused with INVALID_ARGUMENT (reason SIZE_BUDGET_EXCEEDED) and changes nothing;
- a list page holds at most PAGE_MAX_BYTES (2 MiB) of items, beside its count limit; a page
  that reaches it ends early, with a next_page_token. A page always holds at least one item,
  and one item is at most a resource (1 MiB plus its output-only fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf.message import Message

from shared.errors import InvalidArgument

RESOURCE_MAX_BYTES = 1024 * 1024
PAGE_MAX_BYTES = 2 * 1024 * 1024
SIZE_BUDGET_EXCEEDED = "SIZE_BUDGET_EXCEEDED"


def over_budget(
    field: str, what: str, size: int, limit: int = RESOURCE_MAX_BYTES, *, at_least: bool = False
) -> InvalidArgument:
    """The INVALID_ARGUMENT for a write whose result would weigh size bytes (over limit);
    at_least when size is a lower bound (counted before the result is built)."""
    size_text = f"{'at least ' if at_least else ''}{size:,} bytes"
    return InvalidArgument(
        f"{what} would serialize to {size_text}, over the {limit:,}-byte budget",
        [(field, f"makes {what} {size_text}; at most {limit:,} bytes are accepted")],
        reason=SIZE_BUDGET_EXCEEDED,
        metadata={"limit_bytes": str(limit), "size_bytes": str(size)},
    )


def check_size(field: str, what: str, size: int, limit: int = RESOURCE_MAX_BYTES) -> None:
    """INVALID_ARGUMENT naming field when size is over limit (see over_budget)."""
    if size > limit:
        raise over_budget(field, what, size, limit)


def items_within(sizes: Iterable[int], limit: int = PAGE_MAX_BYTES) -> int:
    """How many leading items fit in limit bytes together; at least one when there is one."""
    total = count = 0
    for size in sizes:
        total += size
        if total > limit and count:
            break
        count += 1
    return count


def page_within(messages: Sequence[Message], limit: int = PAGE_MAX_BYTES) -> int:
    """How many leading messages fit in limit bytes once serialized (at least one)."""
    return items_within((message.ByteSize() for message in messages), limit)


# A JSON text stored by a service serializes, as a google.protobuf.Struct, to at most this
# many bytes per character: the worst is a list of one-digit numbers (`0,` is 2 characters,
# an 11-byte Value in a ListValue). Estimates from text lengths (list pages, before loading
# the rows) use it, so that they never under-estimate.
STRUCT_BYTES_PER_JSON_CHAR = 6
# A text column's characters, as UTF-8 bytes at most.
UTF8_BYTES_PER_CHAR = 4
