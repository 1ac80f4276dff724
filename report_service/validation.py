"""Request checks: report ids, editable field values and update masks, each bad field reported."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from report_service import fields, ids
from report_service.models import ID_MAX_LENGTH
from report_service.v1 import report_pb2
from shared.budget import RESOURCE_MAX_BYTES, check_size
from shared.errors import Violations

NAME_MAX_LENGTH = 200
TYPE_MAX_LENGTH = 100
ALIAS_MAX_LENGTH = 200
SCHEDULE_MAX_LENGTH = 200
RETAIN_COUNT_MAX = 10_000
DATASETS_MAX = 1_000
MASK_PATHS_MAX = 1_000  # like every list of a request (SPEC §5.12): no unbounded work per path


def _check_length(
    violations: Violations, field: str, value: Any, minimum: int, maximum: int
) -> None:
    if not isinstance(value, str):
        violations.add(field, f"must be a string, got {type(value).__name__}")
    elif not minimum <= len(value) <= maximum:
        accepted = f"{minimum}-{maximum}" if minimum else f"at most {maximum}"
        violations.add(field, f"must be {accepted} characters long, got {len(value)}")


check_report_id = ids.check_report_id  # the id grammar lives with the draft ids it must admit
check_new_report_id = ids.check_new_report_id


def check_type(violations: Violations, field: str, value: str) -> None:
    _check_length(violations, field, value, 1, TYPE_MAX_LENGTH)
    if isinstance(value, str) and value and not value.strip():
        violations.add(field, "must not be blank")


def _check_name(violations: Violations, field: str, value: Any) -> None:
    _check_length(violations, field, value, 1, NAME_MAX_LENGTH)
    if isinstance(value, str) and value and not value.strip():
        violations.add(field, "must not be blank")


def _check_json_object(violations: Violations, field: str, value: Any) -> None:
    if not isinstance(value, dict):
        violations.add(field, f"must be a JSON object, got {type(value).__name__}")


def _check_optional_id(violations: Violations, field: str, value: Any) -> None:
    if value is not None:
        _check_length(violations, field, value, 0, ID_MAX_LENGTH)


def _check_count(violations: Violations, field: str, values, limit: int) -> bool:
    """True when values has at most limit entries; otherwise one violation for the list."""
    if len(values) > limit:
        violations.add(field, f"must have at most {limit} entries, got {len(values)}")
        return False
    return True


def _check_bool(violations: Violations, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        violations.add(field, f"must be true or false, got {type(value).__name__}")


def _check_datasets(violations: Violations, field: str, value: Any) -> None:
    if not isinstance(value, list):
        violations.add(field, f"must be a list, got {type(value).__name__}")
        return
    if not _check_count(violations, field, value, DATASETS_MAX):
        return
    for index, dataset in enumerate(value):
        path = f"{field}[{index}]"
        if not isinstance(dataset, dict):
            violations.add(path, "must be an object with dataset_id and alias")
            continue
        _check_length(violations, f"{path}.dataset_id", dataset.get("dataset_id"), 1, ID_MAX_LENGTH)
        _check_length(violations, f"{path}.alias", dataset.get("alias", ""), 0, ALIAS_MAX_LENGTH)


def _check_snapshot(violations: Violations, field: str, value: Any) -> None:
    if not isinstance(value, dict):
        violations.add(field, "must be an object with enabled, schedule and retain_count")
        return
    _check_bool(violations, f"{field}.enabled", value.get("enabled"))
    _check_length(violations, f"{field}.schedule", value.get("schedule"), 0, SCHEDULE_MAX_LENGTH)
    retain_count = value.get("retain_count")
    if (
        not isinstance(retain_count, int)
        or isinstance(retain_count, bool)
        or not 0 <= retain_count <= RETAIN_COUNT_MAX
    ):
        violations.add(
            f"{field}.retain_count", f"must be 0-{RETAIN_COUNT_MAX:,}, got {retain_count!r}"
        )


_CHECKS = {
    "name": _check_name,
    "defn": _check_json_object,
    "settings": _check_json_object,
    **dict.fromkeys(fields.OPTIONAL_IDS, _check_optional_id),
    "enable_filter": _check_bool,
    "datasets": _check_datasets,
    "snapshot": _check_snapshot,
}


def check_fields(violations: Violations, prefix: str, values: Mapping[str, Any]) -> None:
    """Check each editable field in values; paths are `prefix.field` (`report.name`)."""
    for name, value in values.items():
        check = _CHECKS.get(name)
        if check is None:
            violations.add(f"{prefix}.{name}", "is not an editable field of a report")
        else:
            check(violations, f"{prefix}.{name}", value)


# ---------------------------------------------------------------------------
# update_mask (AIP-134)
# ---------------------------------------------------------------------------


def populated(report: report_pb2.Report) -> tuple[str, ...]:
    """The editable fields report populates: the implied mask of an update without one."""
    present = {
        "name": bool(report.name),
        "enable_filter": report.enable_filter,
        "datasets": len(report.datasets) > 0,
    }
    return tuple(
        name
        for name in fields.EDITABLE
        if (present[name] if name in present else report.HasField(name))  # type: ignore[arg-type]
    )


def refuse_long_lists(message: Message, prefix: str) -> None:
    """INVALID_ARGUMENT at once for a list of message over the limit, before any per-item work.

    A 4 MiB request can carry 250,000 datasets: turned into dicts before being counted, four
    such calls in flight took a report-service process from about 100 MiB to over 300 MiB.
    """
    violations = Violations()
    for field, value in message.ListFields():
        if field.is_repeated:
            _check_count(violations, f"{prefix}.{field.name}", value, DATASETS_MAX)
    violations.raise_if_any()


def update_paths(
    violations: Violations, mask: field_mask_pb2.FieldMask, report: report_pb2.Report
) -> tuple[str, ...]:
    """The editable fields an UpdateReport replaces; a bad path is a violation of update_mask."""
    if not mask.paths:
        return populated(report)
    if not _check_count(violations, "update_mask.paths", mask.paths, MASK_PATHS_MAX):
        return ()
    if "*" in mask.paths:
        return fields.EDITABLE
    accepted = ", ".join(f"`{name}`" for name in (*fields.EDITABLE, "*"))
    for path in mask.paths:
        if path in fields.IMMUTABLE:
            violations.add("update_mask", f"`{path}` is immutable once the report is created")
        elif path in fields.OUTPUT_ONLY:
            violations.add("update_mask", f"`{path}` is output only and cannot be updated")
        elif path not in fields.EDITABLE:
            violations.add("update_mask", f"unknown field path `{path}`: accepted are {accepted}")
    return tuple(name for name in fields.EDITABLE if name in mask.paths)


# ---------------------------------------------------------------------------
# The size budget (shared.budget): a report's editable fields serialize to at most 1 MiB
# ---------------------------------------------------------------------------


def _field_bytes(field, value) -> int:
    if field.message_type is not None:
        return sum(v.ByteSize() for v in value) if field.is_repeated else value.ByteSize()
    if isinstance(value, str):
        return len(value.encode())
    return 8


def content_sizes(report: Message) -> dict[str, int]:
    """The serialized size of each editable field report sets (what the budget counts)."""
    return {
        field.name: _field_bytes(field, value)
        for field, value in report.ListFields()
        if field.name in fields.EDITABLE
    }


def check_report_budget(
    report: Message, prefix: str, written: Iterable[str], *, only_written: bool = False
) -> None:
    """INVALID_ARGUMENT when report's editable fields weigh more than RESOURCE_MAX_BYTES.

    The violation names the largest of the fields the request wrote (`prefix.field`), or
    prefix alone when it wrote none (the size then comes from the stored report or a driver).
    only_written counts the written fields alone: a request's, checked before the call reads
    or writes anything (the result, checked after, can only be larger).
    """
    written = list(written)
    sizes = content_sizes(report)
    if only_written:
        sizes = {name: size for name, size in sizes.items() if name in written}
    total = sum(sizes.values())
    if total <= RESOURCE_MAX_BYTES:
        return
    written = [name for name in written if name in sizes]
    field = f"{prefix}.{max(written, key=sizes.__getitem__)}" if written else prefix
    check_size(field, "the report", total)
