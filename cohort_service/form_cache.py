"""A draft's serialized form, kept on its row per revision: what reads serve and patches reuse.

Rebuilding a DraftFormState from rows and serialising it was most of what a read cost
(~55 µs per item: 800 ms at p50 for a 1,000-item draft at C = 16). The draft row keeps,
in `form_cache`, the form's items as protobuf bytes, one segment per slot, written in the
transaction of every change of its links (the applied patch, the accepted proposal). A
read joins, on the wire, three byte strings: the row's own fields, its pending proposals
(read when the call is answered: one that expired is never shown) and the segments.

The protobuf encoding allows it: a message's fields may come in any order, a repeated
field's elements keep the order in which they arrive, and two serialized messages
concatenated parse as one message holding the fields of both. Each slot's segment is a
DraftFormState holding only that slot's items, the pending ids among them (pending_ids is
in form order, which is slot order) and, for the flags, `active`: so a patch rebuilds only
the segments of the slots whose items or pending marks change and copies the others.

The cache is keyed by the draft's revision, which every change of the links increments: a
row whose cache was written at another revision (or never: drafts written before migration
0006) is read from its links, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cohort_service import mapping, models
from cohort_service.forms import Form, PackedIds
from cohort_service.lookups import Rows
from cohort_service.slots import SLOTS

# version, revision, then per slot: segment, ids and pending lengths (bytes).
_HEAD = struct.Struct(f"<BQ{3 * len(SLOTS)}I")
_VERSION = 1


@dataclass(frozen=True)
class SerializedForm:
    """A form's items as bytes, per slot in SLOTS order, as of one revision of its draft."""

    revision: int
    segments: tuple[bytes, ...]  # a DraftFormState with the slot's items (see the module doc)
    ids: tuple[bytes, ...]  # the slot's item ids, 16 bytes each, in form order
    pending: tuple[bytes, ...]  # the slot's pending ids, 16 bytes each

    def form(self) -> Form:
        items = {slot.name: PackedIds(raw) for slot, raw in zip(SLOTS, self.ids, strict=True)}
        return Form(items, frozenset(item for raw in self.pending for item in PackedIds(raw)))

    def encode(self) -> bytes:
        parts = [
            part
            for slot_parts in zip(self.segments, self.ids, self.pending, strict=True)
            for part in slot_parts
        ]
        return b"".join((_HEAD.pack(_VERSION, self.revision, *map(len, parts)), *parts))

    @classmethod
    def decode(cls, blob: bytes | memoryview | None, revision: int) -> SerializedForm | None:
        """The stored form if blob was written at revision; None if it must be rebuilt."""
        if blob is None or len(blob) < _HEAD.size:
            return None
        version, stored_revision, *lengths = _HEAD.unpack_from(blob)
        if version != _VERSION or stored_revision != revision:
            return None
        data = bytes(blob)  # psycopg2 gives a memoryview
        parts, offset = [], _HEAD.size
        for length in lengths:
            parts.append(data[offset : offset + length])
            offset += length
        return cls(revision, tuple(parts[0::3]), tuple(parts[1::3]), tuple(parts[2::3]))


def serialize(
    form: Form, rows: Rows, revision: int, reuse: tuple[Form, SerializedForm] | None = None
) -> SerializedForm:
    """form as bytes; rows must hold the items of every slot not taken from reuse.

    reuse: an earlier form and its bytes; a slot whose items and pending marks are the
    same in both is copied from them instead of built again.
    """
    segments, ids, pending = [], [], []
    for index, slot in enumerate(SLOTS):
        if reuse is not None and reuse[0].slot_unchanged(slot.name, form):
            segments.append(reuse[1].segments[index])
            ids.append(reuse[1].ids[index])
            pending.append(reuse[1].pending[index])
            continue
        items = form.items[slot.name]
        marked = [item for item in items if item in form.pending]
        segments.append(mapping.slot_fields(slot, items, form.pending, rows).SerializeToString())
        ids.append(b"".join(item.bytes for item in items))
        pending.append(b"".join(item.bytes for item in marked))
    return SerializedForm(revision, tuple(segments), tuple(ids), tuple(pending))


class FormStateBytes(NamedTuple):
    """A serialized DraftFormState, and how many of its bytes are its proposals."""

    data: bytes
    proposal_bytes: int


def form_state(
    draft,  # a Draft, or a StoredDraft (cohort_service.drafts)
    form: SerializedForm,
    proposals: Sequence[models.Proposal],
    *,
    state: int | None = None,
) -> FormStateBytes:
    """The serialized DraftFormState of draft showing form and proposals."""
    head = mapping.draft_fields(draft, state).SerializeToString()
    listed = mapping.proposal_fields(proposals).SerializeToString() if proposals else b""
    return FormStateBytes(b"".join((head, listed, *form.segments)), len(listed))
