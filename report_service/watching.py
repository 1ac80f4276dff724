"""WatchReport's events: what each write appends, and the stream that reads them back.

One topic per original (`report:<id>`), so that a stream is one ordered sequence: REPORT_*
events for every reader (owner ''), DRAFT_* events for the draft's owner only (checked per
event by shared.watch.follow). Each write appends in its own transaction, after its last
change (shared.events: the topic's counter lock is then held only up to the commit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from report_service import expiry, store
from report_service.models import EVENTS, database
from report_service.v1 import report_pb2
from shared.clock import utcnow
from shared.columns import timestamp
from shared.db import read_transaction
from shared.events import NewEvent, StoredEvent, Stream
from shared.watch import follow

Type = report_pb2.ReportEvent.Type
# The events that carry the original (`report`); DRAFT_CREATED and DRAFT_UPDATED carry the
# draft; the others carry nothing.
_REPORT_STATE = frozenset(
    {
        Type.TYPE_REPORT_CREATED,
        Type.TYPE_REPORT_UPDATED,
        Type.TYPE_REPORT_COMMITTED,
        Type.TYPE_REPORT_ROLLED_BACK,
    }
)


def topic(original_id: str) -> str:
    return f"report:{original_id}"


# ---------------------------------------------------------------------------
# Appending, in the write's transaction
# ---------------------------------------------------------------------------


def report_changed(kind: int, report: report_pb2.Report, actor: str) -> None:
    """A REPORT_* event about the original `report` (as it is after the change)."""
    EVENTS.append(topic(report.id), _report_event(kind, report, actor))


def report_deleted(original_id: str, actor: str) -> None:
    EVENTS.append(
        topic(original_id), NewEvent(Type.TYPE_REPORT_DELETED, original_id, actor_id=actor)
    )


def draft_changed(
    kind: int,
    original_id: str,
    draft_id: str,
    owner: str,
    *,
    actor: str | None = None,
    draft: report_pb2.Report | None = None,
) -> None:
    """A DRAFT_* event, seen by owner only; actor is owner unless given ('' the service)."""
    EVENTS.append(topic(original_id), _draft_event(kind, draft_id, owner, actor, draft))


def draft_committed(original: report_pb2.Report, draft_id: str, principal: str) -> None:
    """DRAFT_COMMITTED (the committer's) and REPORT_COMMITTED (everyone's), in that order."""
    EVENTS.append(
        topic(original.id),
        _draft_event(Type.TYPE_DRAFT_COMMITTED, draft_id, principal, None, None),
        _report_event(Type.TYPE_REPORT_COMMITTED, original, principal),
    )


def drafts_expired(drafts: Sequence[tuple[str, str, str]]) -> None:
    """DRAFT_EXPIRED of each (original id, draft id, owner), a topic at a time in topic
    order: the purge appends to several topics, and two purges must not wait on each
    other's counters in a cycle."""
    by_topic: dict[str, list[NewEvent]] = {}
    for original_id, draft_id, owner in sorted(drafts):
        by_topic.setdefault(topic(original_id), []).append(
            _draft_event(Type.TYPE_DRAFT_EXPIRED, draft_id, owner, "", None)
        )
    for name, events in by_topic.items():
        EVENTS.append(name, *events)


def _report_event(kind: int, report: report_pb2.Report, actor: str) -> NewEvent:
    return NewEvent(kind, report.id, actor, "", report.SerializeToString())


def _draft_event(
    kind: int, draft_id: str, owner: str, actor: str | None, draft: report_pb2.Report | None
) -> NewEvent:
    state = draft.SerializeToString() if draft is not None else None
    return NewEvent(kind, draft_id, owner if actor is None else actor, owner, state)


# ---------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------


def watch(report_id: str, start_after: str, principal: str) -> Iterator[report_pb2.ReportEvent]:
    """WatchReport's events (see its proto comment): SNAPSHOT or resume, then changes."""
    stream = Stream(topic(report_id))

    def opening() -> tuple[int, list[report_pb2.ReportEvent]]:
        # One snapshot: the position and the state it describes agree (REPEATABLE READ on
        # PostgreSQL, SQLite's read transaction).
        with read_transaction(database):
            seq = EVENTS.position(stream.topic)
            report = store.visible_report_message(report_id, principal)
            if report.editing_id:  # a draft is watched through its original
                raise store.not_found(report_id)
            draft = store.find_draft(report_id, principal)
            snapshot = report_pb2.ReportEvent(
                event_id=stream.cursor(seq),
                type=Type.TYPE_SNAPSHOT,
                resource_id=report_id,
                create_time=timestamp(utcnow()),
                report=report,
            )
            if draft is not None and not expiry.is_expired(draft):
                snapshot.draft.CopyFrom(store.report_message(draft, report.etag))
        return seq, [snapshot]

    return follow(
        EVENTS,
        stream,
        start_after,
        opening,
        _message,
        last=lambda event: event.type == Type.TYPE_REPORT_DELETED,
    )


def _message(event: StoredEvent, event_id: str) -> report_pb2.ReportEvent:
    message = report_pb2.ReportEvent(
        event_id=event_id,
        type=Type.ValueType(event.type),
        resource_id=event.resource_id,
        actor_id=event.actor_id,
        create_time=timestamp(event.create_time),
    )
    if event.state is not None:
        target = message.report if event.type in _REPORT_STATE else message.draft
        target.MergeFromString(event.state)
    return message
