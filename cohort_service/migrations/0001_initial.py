"""Initial schema: catalog, value resources, drafts, link tables, idempotency, proposals.

The models below are frozen copies of cohort_service.models as of this migration; later
changes to models.py need a new migration, never an edit here.
"""

import uuid

import peewee


def up(migrator, db):
    class Base(db.Model):
        class Meta:
            legacy_table_names = False

    def catalog_entry(table):
        class Entry(Base):
            id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
            name = peewee.CharField(max_length=200)
            name_key = peewee.TextField(unique=True)
            created_at = peewee.DateTimeField()

            class Meta:
                table_name = table

        return Entry

    department = catalog_entry("department")
    simulation = catalog_entry("simulation")
    profile = catalog_entry("profile")

    class Flag(Base):
        id = peewee.UUIDField(primary_key=True)
        key = peewee.CharField(max_length=64, unique=True)
        type = peewee.SmallIntegerField()
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "flag"

    class FlagOption(Base):
        id = peewee.UUIDField(primary_key=True)
        flag = peewee.ForeignKeyField(Flag, on_delete="CASCADE")
        value = peewee.CharField(max_length=200)
        label = peewee.CharField(max_length=200)
        position = peewee.IntegerField()

        class Meta:
            table_name = "flag_option"
            indexes = ((("flag", "value"), True),)

    def value_resource(table, **fields):
        attributes = {
            "id": peewee.UUIDField(primary_key=True),
            "owner": peewee.TextField(index=True),
            "created_at": peewee.DateTimeField(),
            "Meta": type("Meta", (), {"table_name": table}),
            **fields,
        }
        return type(table, (Base,), attributes)

    draft_name = value_resource("draft_name", value=peewee.CharField(max_length=200))
    draft_description = value_resource("draft_description", value=peewee.TextField())
    position = value_resource(
        "simulation_position",
        simulation=peewee.ForeignKeyField(simulation, backref="+", on_delete="RESTRICT"),
        title=peewee.CharField(max_length=200),
        description=peewee.TextField(),
    )
    availability = value_resource(
        "simulation_availability",
        simulation=peewee.ForeignKeyField(simulation, backref="+", on_delete="RESTRICT"),
        start_time=peewee.DateTimeField(),
        end_time=peewee.DateTimeField(),
    )
    persona = value_resource(
        "profile_persona",
        profile=peewee.ForeignKeyField(profile, backref="+", on_delete="RESTRICT"),
        persona=peewee.CharField(max_length=200),
        description=peewee.TextField(),
    )

    class Draft(Base):
        id = peewee.UUIDField(primary_key=True)
        owner = peewee.TextField()
        state = peewee.SmallIntegerField()
        revision = peewee.BigIntegerField()
        created_at = peewee.DateTimeField()
        update_time = peewee.DateTimeField()

        class Meta:
            table_name = "draft"
            indexes = ((("owner", "state", "created_at"), False),)

    def link(table, item):
        attributes = {
            "draft": peewee.ForeignKeyField(Draft, backref="+", on_delete="CASCADE"),
            "item": peewee.ForeignKeyField(item, backref="+", on_delete="RESTRICT"),
            "pending": peewee.BooleanField(default=False),
            "position": peewee.IntegerField(),
            "Meta": type(
                "Meta",
                (),
                {"table_name": table, "primary_key": peewee.CompositeKey("draft", "item")},
            ),
        }
        return type(table, (Base,), attributes)

    links = [
        link("link_name", draft_name),
        link("link_description", draft_description),
        link("link_flag", FlagOption),
        link("link_department", department),
        link("link_simulation", simulation),
        link("link_profile", profile),
        link("link_simulation_position", position),
        link("link_simulation_availability", availability),
        link("link_profile_persona", persona),
    ]

    class IdempotencyRecord(Base):
        principal = peewee.TextField()
        key = peewee.CharField(max_length=200)
        fingerprint = peewee.CharField(max_length=64)
        response = peewee.BlobField(null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "idempotency_record"
            indexes = ((("principal", "key"), True),)

    class Proposal(Base):
        id = peewee.UUIDField(primary_key=True)
        principal = peewee.TextField()
        key = peewee.CharField(max_length=200)
        draft_id = peewee.UUIDField(index=True)
        created_draft = peewee.BooleanField()
        change = peewee.TextField()
        decision = peewee.SmallIntegerField()
        decision_response = peewee.BlobField(null=True)
        create_time = peewee.DateTimeField()
        decide_time = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "proposal"
            indexes = ((("principal", "key"), True),)

    db.create_tables(
        [
            department,
            simulation,
            profile,
            Flag,
            FlagOption,
            draft_name,
            draft_description,
            position,
            availability,
            persona,
            Draft,
            *links,
            IdempotencyRecord,
            Proposal,
        ]
    )
