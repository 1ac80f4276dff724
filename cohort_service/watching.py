"""WatchCohortDrafts: the stream of an owner's draft events (cohort_service.draft_events)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator

from cohort_service import drafts
from cohort_service.draft_events import Type, topic
from cohort_service.models import EVENTS, database
from cohort_service.v1 import draft_pb2
from shared.clock import utcnow
from shared.columns import timestamp
from shared.db import read_transaction
from shared.errors import NotFound
from shared.events import StoredEvent, Stream
from shared.watch import current_watch, follow

# Drafts per read of an all-drafts snapshot (and at most a page's bytes: shared.budget).
SNAPSHOT_PAGE = 100


# ---------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------


def watch(
    owner: str, draft_id: uuid.UUID | None, start_after: str
) -> Iterator[draft_pb2.CohortDraftEvent]:
    """WatchCohortDrafts' events (see its proto comment): SNAPSHOT(s) or resume, then changes
    of one of the owner's drafts (draft_id), or of all of them."""
    if draft_id is not None:
        return _watch_one(owner, draft_id, start_after)
    return _watch_all(owner, start_after)


def _watch_one(
    owner: str, draft_id: uuid.UUID, start_after: str
) -> Iterator[draft_pb2.CohortDraftEvent]:
    stream = Stream(topic(owner), str(draft_id))
    if start_after:
        seq = stream.seq_of(start_after)
        feed = current_watch().watches.feed
        assert feed is not None  # the service declares its event store
        feed.read(functools.partial(_check_resumable, owner, draft_id, stream.topic, seq))

    def opening() -> tuple[int, list[draft_pb2.CohortDraftEvent]]:
        with read_transaction(database):  # the position and the form of one snapshot
            seq = EVENTS.position(stream.topic)
            form = drafts.form_state_bytes(owner, [drafts.find_draft(owner, draft_id)])[0]
        snapshot = _snapshot(Type.TYPE_SNAPSHOT, stream.cursor(seq), str(draft_id))
        snapshot.form_state.MergeFromString(form)
        return seq, [snapshot]

    yield from follow(
        EVENTS,
        stream,
        start_after,
        opening,
        _message,
        last=lambda event: event.type == Type.TYPE_DELETED,
        keep=lambda event: event.resource_id == stream.filter,
    )


def _check_resumable(owner: str, draft_id: uuid.UUID, topic_name: str, seq: int) -> None:
    """A one-draft stream resumes while its draft is there, or its DELETED event is still to
    come (the stream then ends after it); else NOT_FOUND: it would wait for nothing."""
    try:
        drafts.find_draft(owner, draft_id)
    except NotFound:
        if not EVENTS.has_after(topic_name, seq, str(draft_id), Type.TYPE_DELETED):
            raise


def _watch_all(owner: str, start_after: str) -> Iterator[draft_pb2.CohortDraftEvent]:
    """The owner's drafts. A snapshot of many drafts is read a page per transaction, so that
    no read holds more than a page (shared.budget) however many drafts there are. Each page
    has its own position: a change committed between the first page's and a later page's is
    already in that later page's forms, so its event is skipped for those drafts (`seen`)
    rather than sent after the newer form. Every SNAPSHOT and the SYNCED carry the first
    page's position: resuming from any of them sends every change after it."""
    stream = Stream(topic(owner))
    seen: dict[str, int] = {}  # draft id -> the position its snapshot was read at

    def page(cursor: list | None) -> tuple[int, list[draft_pb2.DraftFormState], list | None]:
        with read_transaction(database):
            seq = EVENTS.position(stream.topic)
            forms, following = drafts.list_page(owner, SNAPSHOT_PAGE, cursor, True)
        return seq, forms, following

    def snapshots(
        start: int, forms: list[draft_pb2.DraftFormState], cursor: list | None
    ) -> Iterator[draft_pb2.CohortDraftEvent]:
        event_id = stream.cursor(start)
        while True:
            for form in forms:
                snapshot = _snapshot(Type.TYPE_SNAPSHOT, event_id, form.draft_id)
                snapshot.form_state.CopyFrom(form)
                yield snapshot
            if cursor is None:
                break
            feed = current_watch().watches.feed
            assert feed is not None  # follow() refused to start without one
            at, forms, cursor = feed.read(functools.partial(page, cursor))
            seen.update((form.draft_id, at) for form in forms if at > start)
        yield _snapshot(Type.TYPE_SYNCED, event_id, "")

    def opening() -> tuple[int, Iterator[draft_pb2.CohortDraftEvent]]:
        start, forms, cursor = page(None)
        return start, snapshots(start, forms, cursor)

    return follow(
        EVENTS,
        stream,
        start_after,
        opening,
        _message,
        keep=lambda event: event.seq > seen.get(event.resource_id, 0),
    )


def _snapshot(kind: int, event_id: str, draft_id: str) -> draft_pb2.CohortDraftEvent:
    return draft_pb2.CohortDraftEvent(
        event_id=event_id,
        type=Type.ValueType(kind),
        draft_id=draft_id,
        create_time=timestamp(utcnow()),
    )


def _message(event: StoredEvent, event_id: str) -> draft_pb2.CohortDraftEvent:
    message = draft_pb2.CohortDraftEvent(
        event_id=event_id,
        type=Type.ValueType(event.type),
        draft_id=event.resource_id,
        actor_id=event.actor_id,
        create_time=timestamp(event.create_time),
    )
    if event.state is not None:
        message.form_state.MergeFromString(event.state)
    return message
