"""A compiled query returns what the peewee query it was built from returns, for any values."""

from __future__ import annotations

import uuid

import peewee
import pytest

from shared.compiled import CompiledQuery, unconverted
from shared.db import open_database
from tests.support import count_queries

proxy = peewee.DatabaseProxy()


class Team(peewee.Model):
    id = peewee.UUIDField(primary_key=True)
    name = peewee.CharField()
    size = peewee.IntegerField()
    active = peewee.BooleanField(default=True)

    class Meta:
        database = proxy


class Member(peewee.Model):
    team = peewee.ForeignKeyField(Team)
    name = peewee.CharField()

    class Meta:
        database = proxy


@pytest.fixture
def teams(database_url):
    database = open_database(database_url)
    proxy.initialize(database)
    database.create_tables([Team, Member])
    rows = [Team.create(id=uuid.uuid4(), name=f"team {k}", size=k) for k in range(5)]
    for team in rows:
        Member.create(team=team, name=f"{team.name} lead")
    yield rows
    database.drop_tables([Member, Team])
    database.close()


def _by_ids(ids):
    return Team.select().where(Team.id.in_(ids)).order_by(Team.name)


def test_a_compiled_query_returns_the_rows_of_its_query_for_lists_of_any_length(teams):
    compiled = CompiledQuery(proxy, _by_ids)
    for count in (0, 1, 3, 1, 5):
        ids = [team.id for team in teams[:count]]
        expected = [(t.id, t.name, t.size) for t in _by_ids(ids)]
        assert [(t.id, t.name, t.size) for t in compiled(ids)] == expected
        assert len(expected) == count


def test_a_compiled_query_builds_its_sql_once_per_shape_and_runs_one_statement(teams):
    built = []

    def build(name):
        built.append(name)
        return Team.select(Team.size).where(Team.name == name).tuples()

    compiled = CompiledQuery(proxy, build)
    with count_queries() as counter:
        sizes = [compiled.first(f"team {k}") for k in (1, 2, 3)]
    assert sizes == [(1,), (2,), (3,)]
    assert len(built) == 1
    assert counter.count == 3


def test_a_compiled_join_returns_model_instances_with_their_joined_rows(teams):
    compiled = CompiledQuery(
        proxy,
        lambda name: Member.select(Member, Team).join(Team).where(Team.name == name),
    )
    member = compiled.first("team 3")
    assert member.name == "team 3 lead"
    assert member.team.size == 3
    assert isinstance(member.team.id, uuid.UUID)
    assert compiled.first("no such team") is None


def test_a_compiled_query_refuses_an_argument_its_field_would_convert(teams):
    # BooleanField turns any marker into True: the values would be lost, so it is refused.
    compiled = CompiledQuery(proxy, lambda active: Team.select().where(Team.active == active))
    with pytest.raises(ValueError, match="unconverted"):
        compiled(False)


def test_a_compiled_insert_writes_booleans_through_unconverted_for_lists_of_any_length(teams):
    insert = CompiledQuery(
        proxy,
        lambda ids, names, sizes, active: Team.insert_many(
            zip(ids, names, sizes, map(unconverted, active), strict=True),
            fields=[Team.id, Team.name, Team.size, Team.active],
        ),
    )
    for count in (1, 3, 1):
        ids = [uuid.uuid4() for _ in range(count)]
        flags = [k % 2 == 0 for k in range(count)]
        insert.raw(ids, [f"new {k}" for k in range(count)], list(range(count)), flags)
        assert [(t.id, t.active) for t in _by_ids(ids).order_by(Team.size)] == list(
            zip(ids, flags, strict=True)
        )
