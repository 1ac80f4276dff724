"""Field checks shared by the catalog and the patch engine; each records a violation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared.errors import Violations

MAX_LIST_ITEMS = 1000
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_IDEMPOTENCY_KEY_LENGTH = 200


def parse_uuid(violations: Violations, path: str, raw: str) -> uuid.UUID | None:
    """raw as a UUID, or None after recording why it is not one."""
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        violations.add(path, f"{raw!r} is not a UUID; expected e.g. {uuid.UUID(int=0)}")
        return None


def check_name(violations: Violations, path: str, raw: str, *, what: str = "name") -> str | None:
    """raw trimmed, or None after recording that it is blank or too long."""
    value = raw.strip()
    if not value:
        violations.add(path, f"the {what} must not be blank")
        return None
    if len(value) > MAX_NAME_LENGTH:
        violations.add(
            path, f"the {what} has {len(value)} characters; at most {MAX_NAME_LENGTH} are accepted"
        )
        return None
    return value


def check_description(
    violations: Violations, path: str, raw: str, *, required: bool = False
) -> str | None:
    """raw unchanged, or None after recording that it is too long (or blank, if required)."""
    if required and not raw.strip():
        violations.add(path, "the description must not be blank")
        return None
    if len(raw) > MAX_DESCRIPTION_LENGTH:
        violations.add(
            path,
            f"the description has {len(raw)} characters; "
            f"at most {MAX_DESCRIPTION_LENGTH} are accepted",
        )
        return None
    return raw


def check_list_size(violations: Violations, path: str, values: Sequence) -> bool:
    """True when the list is within the limit; otherwise one violation for the whole list."""
    if len(values) > MAX_LIST_ITEMS:
        violations.add(
            path, f"has {len(values)} entries; at most {MAX_LIST_ITEMS} are accepted per list"
        )
        return False
    return True
