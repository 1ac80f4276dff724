"""WatchCohortDrafts' events: what each cohort write appends (the stream: cohort_service
.watching).

One topic per owner (`drafts:<principal>`): drafts are their owner's alone, and one topic
makes the all-drafts stream one ordered sequence. Every event is owned by the draft's owner
(NewEvent.owner_id), so shared.watch.follow's per-event check delivers it to them only. A
write appends after its last change, in its transaction (shared.events: the topic's counter
lock is then held only up to the commit).

An event carries the form as GetCohortDraft would answer it just after the commit: the same
bytes the write built for its response (cohort_service.form_cache), not a second read.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from cohort_service.models import EVENTS
from cohort_service.v1 import draft_pb2
from shared.events import NewEvent

Type = draft_pb2.CohortDraftEvent.Type


def topic(owner: str) -> str:
    return f"drafts:{owner}"


def event(
    kind: int, draft_id: uuid.UUID, owner: str, form: bytes | None, *, actor: str | None = None
) -> NewEvent:
    """An event about the owner's draft, form its serialized DraftFormState after the change
    (None when it is gone); actor is the owner unless given ('' the service itself)."""
    return NewEvent(kind, str(draft_id), owner if actor is None else actor, owner, form)


def append(owner: str, *events: NewEvent) -> None:
    """Append events to the owner's topic: the last statement of the write's transaction
    (none: nothing)."""
    if events:
        EVENTS.append(topic(owner), *events)


def append_by_owner(events: Mapping[str, Sequence[NewEvent]]) -> None:
    """Append each owner's events, a topic at a time in topic order: a purge appends to
    several, and two purges must not wait on each other's counters in a cycle."""
    for owner in sorted(events, key=topic):
        append(owner, *events[owner])
