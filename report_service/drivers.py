"""Report drivers: per-type plug-ins that take part in the draft workflow.

A driver is registered under the entry point group `report_service.drivers`; the entry
point's name is the report `type` it serves, its value a class (instantiated once, with no
arguments) or any other object. In a plug-in's pyproject.toml:

    [project.entry-points."report_service.drivers"]
    dashboard = "acme_reports.drivers:DashboardDriver"

Every hook is optional, and runs inside the RPC's database transaction. Reports are
passed as `report_service.v1.report_pb2.Report` copies:

    before_create_draft(original: Report, draft: Report) -> None
        Runs when EditReport creates a draft, and on each PutReportDraft and each
        RebaseReportDraft that writes the draft, before the draft is saved. It may change
        the draft's editable fields in place (name, defn, template_id, datasource_id,
        query_id, settings, enable_filter, datasets, snapshot); changes to any other field
        are ignored.

    before_discard_draft(draft: Report) -> None
        Runs before DiscardReportDraft deletes the draft, and before DeleteReport deletes
        it (on its own, or with its original).

    after_commit_draft(original: Report, draft: Report, changes: dict) -> dict | None
        Runs when CommitReportDraft has worked out its changes, before they are written.
        `changes` maps each committed field that differs (name, defn, template_id,
        datasource_id, query_id, settings, enable_filter, datasets) to the draft's value,
        as plain Python values (see report_service.fields). The hook returns the changes to
        commit instead, or None to commit `changes` (which it may have edited in place).

A hook that raises aborts the call: the client gets FAILED_PRECONDITION with the
exception's message (reason DRIVER_FAILED), and the transaction rolls back, so nothing is
changed. Drivers are discovered once, when the server starts.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from report_service import fields, mapping, validation
from report_service.fields import Fields
from report_service.v1 import report_pb2
from shared.errors import FailedPrecondition, Violations
from shared.tracing import span

_LOGGER = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "report_service.drivers"
DRIVER_FAILED = "DRIVER_FAILED"


class ReportDriver(Protocol):
    """What a driver may implement; every hook is optional (see the module docstring)."""

    def before_create_draft(
        self, original: report_pb2.Report, draft: report_pb2.Report
    ) -> None: ...

    def before_discard_draft(self, draft: report_pb2.Report) -> None: ...

    def after_commit_draft(
        self, original: report_pb2.Report, draft: report_pb2.Report, changes: Fields
    ) -> Fields | None: ...


def _failed(report_type: str, hook: str, message: str, violations=()) -> FailedPrecondition:
    return FailedPrecondition(
        message,
        violations,
        reason=DRIVER_FAILED,
        metadata={"type": report_type, "hook": hook},
    )


class DriverRegistry:
    """The drivers by report type, and the one place their hooks are called."""

    def __init__(self, drivers: Mapping[str, Any]) -> None:
        self._drivers = dict(drivers)

    @classmethod
    def discover(cls) -> DriverRegistry:
        """The drivers registered under ENTRY_POINT_GROUP by the installed distributions."""
        drivers = {}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            loaded = entry_point.load()
            drivers[entry_point.name] = loaded() if isinstance(loaded, type) else loaded
            _LOGGER.info("report driver %r: %s", entry_point.name, entry_point.value)
        return cls(drivers)

    def has_hook(self, report_type: str, hook: str) -> bool:
        return callable(getattr(self._drivers.get(report_type), hook, None))

    def _call(self, report_type: str, hook: str, *args):
        if not self.has_hook(report_type, hook):
            return None
        try:
            with span(f"report driver {hook}", {"report.type": report_type, "driver.hook": hook}):
                return getattr(self._drivers[report_type], hook)(*args)
        except Exception as exc:  # any driver failure refuses the call; the caller rolls back
            _LOGGER.info("report driver %r refused in %s: %r", report_type, hook, exc)
            raise _failed(
                report_type, hook, str(exc) or f"the {report_type!r} driver refused ({hook})"
            ) from exc

    def _checked(
        self, report_type: str, hook: str, prefix: str, values, allowed: tuple[str, ...]
    ) -> Fields:
        """values, once checked like a client's input: a driver's mistake refuses the call."""
        if not isinstance(values, dict):
            raise _failed(report_type, hook, f"the {report_type!r} driver returned no changes")
        violations = Violations()
        for name in values:
            if name not in allowed:
                violations.add(f"{prefix}.{name}", f"is not a field {hook} may change")
        validation.check_fields(
            violations, prefix, {k: v for k, v in values.items() if k in allowed}
        )
        if violations:
            raise _failed(
                report_type, hook, f"the {report_type!r} driver made invalid changes", violations
            )
        return values

    def before_create_draft(
        self, report_type: str, original: report_pb2.Report, draft: report_pb2.Report
    ) -> Fields:
        """The draft's editable fields once the driver has had its say."""
        hook = "before_create_draft"
        self._call(report_type, hook, original, draft)
        values = mapping.fields_from_message(draft, fields.EDITABLE)
        return self._checked(report_type, hook, "draft", values, fields.EDITABLE)

    def before_discard_draft(self, report_type: str, draft: report_pb2.Report) -> None:
        self._call(report_type, "before_discard_draft", draft)

    def after_commit_draft(
        self,
        report_type: str,
        original: report_pb2.Report,
        draft: report_pb2.Report,
        changes: Fields,
    ) -> Fields:
        """The changes to commit, once the driver has had its say."""
        hook = "after_commit_draft"
        returned = self._call(report_type, hook, original, draft, changes)
        return self._checked(
            report_type,
            hook,
            "changes",
            changes if returned is None else returned,
            fields.COMMITTED,
        )
