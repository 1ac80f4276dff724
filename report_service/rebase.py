"""A draft against its original as it is now and as it was when the draft was made (its base):
DiffReportDraft's field changes and RebaseReportDraft's three-way merge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from report_service import drafts, fields, mapping, revisions, store
from report_service.drivers import DriverRegistry
from report_service.fields import Fields
from report_service.models import Report
from report_service.v1 import report_pb2, report_service_pb2
from shared.budget import RESOURCE_MAX_BYTES

# What a diff's change values may weigh together, beside its two reports (each within the
# resource budget): the response then stays well under a client's 4 MiB.
DIFF_VALUES_MAX_BYTES = RESOURCE_MAX_BYTES


class Sides:
    """The committed fields of a draft, of its original now, and of its base (None when that
    revision is no longer kept)."""

    def __init__(self, original: Report, draft: Report) -> None:
        datasets = store.datasets_of([original.id, draft.id])
        self.original_datasets = datasets[original.id]
        self.draft_datasets = datasets[draft.id]
        self.original = mapping.fields_from_row(original, self.original_datasets)
        self.draft = mapping.fields_from_row(draft, self.draft_datasets)
        base = revisions.base_of(draft)
        self.base: Fields | None = revisions.values(base) if base else None
        self.base_revision_id = base.revision_id if base else ""

    def differing(self) -> list[str]:
        """The committed fields on which draft and original differ, in Report's order."""
        return [name for name in fields.COMMITTED if self.draft[name] != self.original[name]]

    def merged(self) -> tuple[Fields, list[str]]:
        """The draft's fields rebased onto the original, and the conflicts (see
        RebaseReportDraft): without a base, every differing field keeps the draft's value."""
        merged, conflicts = {}, []
        for name in fields.COMMITTED:
            ours, theirs = self.draft[name], self.original[name]
            if self.base is not None and ours == self.base[name]:
                merged[name] = theirs  # changed in the original only (or in neither)
                continue
            merged[name] = ours
            if ours != theirs and (self.base is None or theirs != self.base[name]):
                conflicts.append(name)
        return merged, conflicts


def _value(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


def diff(original: Report, draft: Report) -> report_service_pb2.DiffReportDraftResponse:
    sides = Sides(original, draft)
    draft_message = mapping.report_to_proto(draft, sides.draft_datasets, original.etag)
    response = report_service_pb2.DiffReportDraftResponse(
        draft=draft_message,
        original=mapping.report_to_proto(original, sides.original_datasets),
        outdated=draft_message.outdated,
        base_revision_id=sides.base_revision_id,
    )
    budget = DIFF_VALUES_MAX_BYTES
    for name in sides.differing():
        change = report_pb2.ReportFieldChange(
            field=name,
            original_value=_value(sides.original[name]),
            draft_value=_value(sides.draft[name]),
        )
        if sides.base is not None:
            change.base_value.CopyFrom(_value(sides.base[name]))
        size = change.ByteSize()
        if size > budget:
            change = report_pb2.ReportFieldChange(field=name, values_omitted=True)
        else:
            budget -= size
        response.changes.append(change)
    return response


def rebase(
    drivers: DriverRegistry, original: Report, draft: Report, principal: str, now: datetime
) -> report_service_pb2.RebaseReportDraftResponse:
    """The draft (locked by the caller, after its original) rebased onto original; a draft
    based on original as it is now is left as it is."""
    if draft.original_etag == original.etag:
        return report_service_pb2.RebaseReportDraftResponse(
            draft=store.report_message(draft, original.etag)
        )
    merged, conflicts = Sides(original, draft).merged()
    rebased = drafts.write_draft(drivers, original, principal, draft, merged, now)
    return report_service_pb2.RebaseReportDraftResponse(draft=rebased, conflicts=conflicts)
