"""Plain conversions between rows, field values (report_service.fields) and proto messages."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from google.protobuf import json_format, struct_pb2

from report_service import expiry, fields
from report_service.fields import Fields
from report_service.ids import path_segment
from report_service.models import Activity, Report, ReportRevision
from report_service.v1 import report_pb2
from shared.columns import timestamp

REPORTS_PATH = "/api/reports"


def struct_to_dict(struct: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(struct)


def dict_to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


# Struct.update walks the value in Python (~25 µs for a small defn, two per Report: 15 % of
# GetReport); parsing the serialized Struct is C (~3 µs). The stored JSON text decides the
# Struct, so its serialization is cached by text, for texts up to a size that bounds memory.
_CACHED_JSON_MAX = 4096
_CACHED_JSON_TEXTS = 512


@functools.lru_cache(maxsize=_CACHED_JSON_TEXTS)
def _serialized_struct(text: str) -> bytes:
    return dict_to_struct(json.loads(text)).SerializeToString()


def _struct(value: Mapping[str, Any] | str) -> struct_pb2.Struct:
    """A Struct from a JSON object, or from its stored text (as StoredReport holds it)."""
    if not isinstance(value, str):
        # The writes hold objects: their text (C, ~5 µs; the text they are stored as) finds
        # the cached Struct too, which the next read of the same value then uses.
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(value) > _CACHED_JSON_MAX:
        return dict_to_struct(json.loads(value))
    return struct_pb2.Struct.FromString(_serialized_struct(value))


class StoredReport(NamedTuple):
    """A report row as the driver returns it (store.STORED_REPORT_COLUMNS, in this order).

    Read in place of a Report model where it is hot (GetReport): peewee's hydration of the
    17 columns was ~18 % of the call. defn and settings are JSON text; booleans may be 0/1
    and datetimes text (SQLite).
    """

    id: str
    type: str
    name: str
    defn: Any  # the JSON text; a revision's, parsed already (models.JSONTextField)
    settings: Any
    template_id: str | None
    datasource_id: str | None
    query_id: str | None
    enable_filter: bool
    snapshot_enabled: bool
    snapshot_schedule: str
    snapshot_retain_count: int
    owner_id: str
    editing_id: str | None
    created_at: Any
    updated_at: Any
    defn_updated_at: Any
    etag: str
    original_etag: str | None


# ---------------------------------------------------------------------------
# Field values from messages and rows
# ---------------------------------------------------------------------------


def _optional_id(name: str):
    return lambda message: getattr(message, name) if message.HasField(name) else None


# Each reads one field from a Report or a ReportDraftInput (they share these field names).
_READERS = {
    "name": lambda message: message.name,
    "defn": lambda message: struct_to_dict(message.defn),
    "settings": lambda message: struct_to_dict(message.settings),
    **{name: _optional_id(name) for name in fields.OPTIONAL_IDS},
    "enable_filter": lambda message: message.enable_filter,
    "datasets": lambda message: [
        {"dataset_id": d.dataset_id, "alias": d.alias} for d in message.datasets
    ],
    "snapshot": lambda message: {
        "enabled": message.snapshot.enabled,
        "schedule": message.snapshot.schedule,
        "retain_count": message.snapshot.retain_count,
    },
}


def fields_from_message(message, names: Iterable[str]) -> Fields:
    """The named fields of a Report or ReportDraftInput (an unset field reads as empty)."""
    return {name: _READERS[name](message) for name in names}


def draft_input_fields(draft: report_pb2.ReportDraftInput) -> Fields:
    """The fields a ReportDraftInput sets; the ones it leaves unset are absent."""
    # HasField takes the message's field names as literals; DRAFT_INPUT holds only those.
    named = [name for name in fields.DRAFT_INPUT if draft.HasField(name)]  # type: ignore[arg-type]
    return fields_from_message(draft, named)


def fields_from_row(row: Report | StoredReport, datasets: Sequence[Mapping[str, str]]) -> Fields:
    """Every editable field of a stored report, with its datasets in order."""
    values = {name: getattr(row, name) for name in ("name", *fields.JSON_OBJECTS)}
    values.update({name: getattr(row, name) for name in fields.OPTIONAL_IDS})
    values["enable_filter"] = bool(row.enable_filter)
    values["datasets"] = [dict(dataset) for dataset in datasets]
    values["snapshot"] = {
        "enabled": bool(row.snapshot_enabled),
        "schedule": row.snapshot_schedule,
        "retain_count": row.snapshot_retain_count,
    }
    return values


def column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The Report columns holding values (all of them but the datasets, stored apart)."""
    columns = {
        name: value for name, value in values.items() if name not in ("datasets", "snapshot")
    }
    if "snapshot" in values:
        snapshot = values["snapshot"]
        columns["snapshot_enabled"] = snapshot["enabled"]
        columns["snapshot_schedule"] = snapshot["schedule"]
        columns["snapshot_retain_count"] = snapshot["retain_count"]
    return columns


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


def _link(href: str) -> report_pb2.ReportLink:
    return report_pb2.ReportLink(href=href)


def links(row: Report | StoredReport) -> report_pb2.ReportLinks:
    result = report_pb2.ReportLinks(self=_link(f"{REPORTS_PATH}/{path_segment(row.id)}"))
    if row.editing_id is not None:
        original = f"{REPORTS_PATH}/{path_segment(row.editing_id)}"
        result.original.CopyFrom(_link(original))
        result.commit_draft.CopyFrom(_link(f"{original}/draft/_commit"))
    return result


def report_to_proto(
    row: Report | StoredReport,
    datasets: Sequence[Mapping[str, str]],
    original_etag: str | None = None,
) -> report_pb2.Report:
    """row as a message; a draft's needs original_etag, its original's etag now (outdated)."""
    values = fields_from_row(row, datasets)
    report = report_pb2.Report(
        id=row.id,
        type=row.type,
        name=values["name"],
        defn=_struct(values["defn"]),
        settings=_struct(values["settings"]),
        enable_filter=values["enable_filter"],
        datasets=[report_pb2.ReportDataset(**dataset) for dataset in values["datasets"]],
        snapshot=report_pb2.SnapshotSettings(**values["snapshot"]),
        owner_id=row.owner_id,
        editing_id=row.editing_id or "",
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        defn_updated_at=timestamp(row.defn_updated_at),
        links=links(row),
        etag=row.etag,
        original_etag=row.original_etag or "",
        outdated=_outdated(row, original_etag),
    )
    for name in fields.OPTIONAL_IDS:
        if values[name] is not None:
            setattr(report, name, values[name])
    expires = expiry.expire_time(row)
    if expires is not None:
        report.expire_time.CopyFrom(timestamp(expires))
    return report


def _outdated(row: Report | StoredReport, original_etag: str | None) -> bool:
    if row.editing_id is None:
        return False
    if original_etag is None:  # a caller's mistake: every draft message says whether it is
        raise ValueError(f"the message of draft {row.id!r} needs its original's etag")
    return not row.original_etag or row.original_etag != original_etag


def revision_to_proto(
    row: ReportRevision, datasets: Sequence[Mapping[str, str]]
) -> report_pb2.ReportRevision:
    # A revision has the columns of its report (revisions._COPIED) but these three.
    own = {"id": row.report_id, "editing_id": None, "original_etag": None}
    snapshot = StoredReport(
        **{name: own[name] if name in own else getattr(row, name) for name in StoredReport._fields}
    )
    return report_pb2.ReportRevision(
        revision_id=row.revision_id,
        report_id=row.report_id,
        create_time=timestamp(row.create_time),
        actor_id=row.actor_id,
        reason=report_pb2.ReportRevision.Reason.ValueType(row.reason),
        snapshot=report_to_proto(snapshot, datasets),
    )


def activity_to_proto(row: Activity) -> report_pb2.Activity:
    return report_pb2.Activity(
        id=str(row.id),
        report_id=row.report_id,
        type=row.type,
        actor_id=row.actor_id,
        created_at=timestamp(row.created_at),
        details=dict_to_struct(row.details),
    )


def user_settings_to_proto(
    report_id: str, user_id: str, settings: Mapping[str, Any]
) -> report_pb2.UserReportSettings:
    return report_pb2.UserReportSettings(
        report_id=report_id, user_id=user_id, settings=dict_to_struct(settings)
    )
