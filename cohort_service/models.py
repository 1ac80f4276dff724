"""Peewee models of cohort-service: catalog, value resources, drafts, links, idempotency."""

from __future__ import annotations

import uuid

import peewee

from shared import idempotency
from shared.clock import utcnow as utcnow  # the services' one clock (shared.clock)
from shared.events import EventStore

database = peewee.DatabaseProxy()
# WatchCohortDrafts' events (cohort_service.watching); tables made by migration 0007.
EVENTS = EventStore(database, "cohort_service_events")


def name_key(name: str) -> str:
    """The form under which names are unique and looked up: trimmed, case-insensitive."""
    return name.strip().casefold()


class BaseModel(peewee.Model):
    class Meta:
        database = database


# ---------------------------------------------------------------------------
# Catalog: reference data shared by every principal, never deleted.
# ---------------------------------------------------------------------------


class CatalogEntry(BaseModel):
    """Fields of departments, simulations and profiles (each its own table)."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    name = peewee.CharField(max_length=200)
    # name_key() of name; the unique index makes "Sales" and " sales " the same entry.
    name_key = peewee.TextField(unique=True)
    created_at = peewee.DateTimeField(default=utcnow)


class Department(CatalogEntry):
    class Meta:
        table_name = "department"


class Simulation(CatalogEntry):
    class Meta:
        table_name = "simulation"


class Profile(CatalogEntry):
    class Meta:
        table_name = "profile"


class FlagType:
    """Stored values of cohort_service.v1.FlagType (the proto enum numbers)."""

    BOOLEAN = 1
    SINGLE_SELECT = 2
    MULTI_SELECT = 3
    # Types whose flags a draft may select at most one option of.
    EXCLUSIVE = frozenset({BOOLEAN, SINGLE_SELECT})


class Flag(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    key = peewee.CharField(max_length=64, unique=True)
    type = peewee.SmallIntegerField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "flag"


class FlagOption(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    flag = peewee.ForeignKeyField(Flag, backref="options", on_delete="CASCADE")
    value = peewee.CharField(max_length=200)
    label = peewee.CharField(max_length=200)
    position = peewee.IntegerField()

    class Meta:
        table_name = "flag_option"
        indexes = ((("flag", "value"), True),)


# The built-in flag that PatchCohortDraftRequest.active selects (created by migration 0002).
COHORT_ACTIVE_KEY = "cohort_active"


# ---------------------------------------------------------------------------
# Value resources: created by patches, private to the principal who created them,
# immutable, linked by any number of that principal's drafts.
# ---------------------------------------------------------------------------


class ValueResource(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    owner = peewee.TextField(index=True)
    created_at = peewee.DateTimeField(default=utcnow)


class DraftName(ValueResource):
    value = peewee.CharField(max_length=200)

    class Meta:
        table_name = "draft_name"


class DraftDescription(ValueResource):
    value = peewee.TextField()

    class Meta:
        table_name = "draft_description"


class SimulationPosition(ValueResource):
    simulation = peewee.ForeignKeyField(Simulation, backref="+", on_delete="RESTRICT")
    title = peewee.CharField(max_length=200)
    description = peewee.TextField()

    class Meta:
        table_name = "simulation_position"


class SimulationAvailability(ValueResource):
    simulation = peewee.ForeignKeyField(Simulation, backref="+", on_delete="RESTRICT")
    start_time = peewee.DateTimeField()
    end_time = peewee.DateTimeField()

    class Meta:
        table_name = "simulation_availability"


class ProfilePersona(ValueResource):
    profile = peewee.ForeignKeyField(Profile, backref="+", on_delete="RESTRICT")
    persona = peewee.CharField(max_length=200)
    description = peewee.TextField()

    class Meta:
        table_name = "profile_persona"


# ---------------------------------------------------------------------------
# Drafts and their links: one link table per form slot, ordered, with the pending mark.
# ---------------------------------------------------------------------------


class DraftState:
    """Stored values of cohort_service.v1.DraftState (the proto enum numbers)."""

    ACTIVE = 1
    DORMANT = 2


class Draft(BaseModel):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    owner = peewee.TextField()
    state = peewee.SmallIntegerField()
    revision = peewee.BigIntegerField()
    created_at = peewee.DateTimeField(default=utcnow)
    update_time = peewee.DateTimeField(default=utcnow)
    # The serialized DraftFormState of the stored form, pending proposals left out, as of
    # the last write of the form (NULL before migration 0003): ListCohortDrafts' estimate.
    form_bytes = peewee.IntegerField(null=True)
    # New on every change of the draft, its staged proposals included (shared.etags).
    etag = peewee.CharField(max_length=64)
    # The form's items as protobuf bytes, as of `revision` (cohort_service.form_cache); NULL
    # or of another revision: read from the links instead.
    form_cache = peewee.BlobField(null=True)
    # How many of its proposals were pending at its last change (expired ones included until
    # the purge decides them), set with every etag: a read of a draft with none needs no
    # query of proposals (cohort_service.drafts).
    staged_proposals = peewee.IntegerField(default=0)

    class Meta:
        table_name = "draft"
        # ListCohortDrafts: the caller's drafts of some states, newest first.
        indexes = ((("owner", "state", "created_at"), False),)


class Link(BaseModel):
    """Fields every link table has; subclasses add `item`, a foreign key to what is linked."""

    draft = peewee.ForeignKeyField(Draft, backref="+", on_delete="CASCADE")
    pending = peewee.BooleanField(default=False)
    position = peewee.IntegerField()


class NameLink(Link):
    item = peewee.ForeignKeyField(DraftName, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_name"
        primary_key = peewee.CompositeKey("draft", "item")


class DescriptionLink(Link):
    item = peewee.ForeignKeyField(DraftDescription, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_description"
        primary_key = peewee.CompositeKey("draft", "item")


class FlagLink(Link):
    item = peewee.ForeignKeyField(FlagOption, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_flag"
        primary_key = peewee.CompositeKey("draft", "item")


class DepartmentLink(Link):
    item = peewee.ForeignKeyField(Department, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_department"
        primary_key = peewee.CompositeKey("draft", "item")


class SimulationLink(Link):
    item = peewee.ForeignKeyField(Simulation, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_simulation"
        primary_key = peewee.CompositeKey("draft", "item")


class ProfileLink(Link):
    item = peewee.ForeignKeyField(Profile, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_profile"
        primary_key = peewee.CompositeKey("draft", "item")


class SimulationPositionLink(Link):
    item = peewee.ForeignKeyField(SimulationPosition, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_simulation_position"
        primary_key = peewee.CompositeKey("draft", "item")


class SimulationAvailabilityLink(Link):
    item = peewee.ForeignKeyField(SimulationAvailability, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_simulation_availability"
        primary_key = peewee.CompositeKey("draft", "item")


class ProfilePersonaLink(Link):
    item = peewee.ForeignKeyField(ProfilePersona, backref="+", on_delete="RESTRICT")

    class Meta:
        table_name = "link_profile_persona"
        primary_key = peewee.CompositeKey("draft", "item")


# ---------------------------------------------------------------------------
# Idempotency and proposals
# ---------------------------------------------------------------------------


class IdempotencyRecord(idempotency.RequestRecord):
    """The first response to a principal's idempotency_key (shared.idempotency)."""

    class Meta:
        database = database
        table_name = "idempotency_record"


class ProposalDecision:
    PENDING = 0
    ACCEPTED = 1
    REJECTED = 2
    EXPIRED = 3  # pending past COHORT_PROPOSAL_TTL: rejected by the service (purges)


class Proposal(BaseModel):
    """A soft patch staged on a draft, as the resolved change it would apply."""

    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    principal = peewee.TextField()
    key = peewee.CharField(max_length=200)
    # No foreign key: a decided proposal outlives the dormant draft its rejection deleted,
    # so that a repeated ack still gets its first response.
    draft_id = peewee.UUIDField(index=True)
    created_draft = peewee.BooleanField()
    change = peewee.TextField()  # JSON of cohort_service.change.Change
    decision = peewee.SmallIntegerField(default=ProposalDecision.PENDING)
    decision_response = peewee.BlobField(null=True)
    create_time = peewee.DateTimeField(default=utcnow)
    decide_time = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "proposal"
        indexes = (
            (("principal", "key"), True),
            # The purge: pending ones by age (expiry), decided ones by decision time.
            (("decision", "create_time"), False),
            (("decide_time",), False),
        )
