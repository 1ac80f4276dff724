"""A report's editable fields as plain Python values: what validation, drivers and the store share.

A `Fields` dict maps some of EDITABLE to values of these shapes:

    name                                   str
    defn, settings                         dict (a JSON object)
    template_id, datasource_id, query_id   str | None (None: unset)
    enable_filter                          bool
    datasets                               list of {"dataset_id": str, "alias": str}
    snapshot                               {"enabled": bool, "schedule": str, "retain_count": int}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Fields = dict[str, Any]

OPTIONAL_IDS = ("template_id", "datasource_id", "query_id")
JSON_OBJECTS = ("defn", "settings")
# The fields UpdateReport may name in its update_mask, in Report's order.
EDITABLE = ("name", "defn", *OPTIONAL_IDS, "settings", "enable_filter", "datasets", "snapshot")
# The fields a commit copies from a draft to its original: every editable one but the
# snapshot settings, which belong to the original.
COMMITTED = tuple(name for name in EDITABLE if name != "snapshot")
# What ReportDraftInput (PutReportDraft) can set; the rest comes from the original.
DRAFT_INPUT = ("defn", *OPTIONAL_IDS, "settings")
IMMUTABLE = ("type",)
OUTPUT_ONLY = (
    "id",
    "owner_id",
    "editing_id",
    "created_at",
    "updated_at",
    "defn_updated_at",
    "links",
    "etag",  # read by UpdateReport as its precondition, never written from a request
    "original_etag",
    "outdated",
)


def changed(before: Mapping[str, Any], after: Mapping[str, Any], names: tuple[str, ...]) -> Fields:
    """The fields among names whose value differs from before to after, with after's values."""
    return {name: after[name] for name in names if after[name] != before[name]}
