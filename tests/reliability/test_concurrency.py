"""Every pair of write RPCs that touch a common row, raced: each OK write stays visible or a later
OK write superseded it, and nothing answers INTERNAL or UNKNOWN.

Derived, not listed (tests.reliability.concurrency holds only how to call each write):
- the writes: every RPC whose `(shared.v1.auth)` permission is a `:write` one, and every other
  RPC whose valid request (tests.reliability.worlds) changes the store; each must have a racer,
  or test_every_write_rpc_has_a_racer fails;
- the pairs: each racer runs alone on a fresh world and the store is diffed; two racers race
  when the rows they changed refer to a common id of the world;
- the oracle: the pair run one after the other, in both orders, on fresh worlds; a race must
  end as one of those two (the same answers, the same effects visible).
Each pair is raced freely (both calls released together) and, on PostgreSQL, forced: the test
holds a lock on a row one side changes, that side provably waits mid-transaction while the
other runs, then the lock goes (tests.reliability.races).

RACE_ROUNDS=n runs n free and n forced rounds per pair (default 1, the in-suite run) and
prints the figures.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field

import grpc
import peewee
import pytest

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from tests.reliability import worlds
from tests.reliability.concurrency import RACERS, Caller, Racer, World, new_world
from tests.reliability.races import Outcome, Served, outcome_of, served_on_postgres
from tests.reliability.rpc import DEFINITIONS, access_rule, invoke, methods_of
from tests.support import bearer, serve, watch_log

ROUNDS = int(os.environ.get("RACE_ROUNDS", "1"))
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
SERVICES = {"cohort": COHORT, "report": REPORT}


# ---------------------------------------------------------------------------
# The store, as the footprint of a write sees it
# ---------------------------------------------------------------------------


def _rows(database: peewee.Database) -> dict[str, set[tuple]]:
    """Every row of every table as ((column, text), ...)."""
    schema = None
    if isinstance(database, peewee.PostgresqlDatabase):
        schema = database.execute_sql("SELECT current_schema()").fetchone()[0]
    result = {}
    for table in database.get_tables(schema=schema) if schema else database.get_tables():
        cursor = database.execute_sql(f'SELECT * FROM "{table}"')
        columns = [column[0] for column in cursor.description]
        result[table] = {tuple(zip(columns, map(_text, row), strict=True)) for row in cursor}
    return result


def _text(value) -> str:
    # psycopg2 returns bytea as a memoryview, whose str() is its address
    return bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)


def _same_id(stored: str, world_id: str) -> bool:
    # SQLite keeps a UUID as its hex digits, PostgreSQL with its dashes
    return stored == world_id or stored == world_id.replace("-", "")


@dataclass(frozen=True)
class Footprint:
    """The ids of the world a write's changed rows refer to, and where those rows are."""

    ids: frozenset[str]
    rows: tuple[tuple[str, str, str], ...]  # (table, column, world id key), to lock


def footprint(database, call: Caller, service: str, racer: Racer) -> Footprint:
    world = new_world(call, service)
    before = _rows(database)
    outcome = outcome_of(lambda: call(racer.principal, racer.rpc, racer.build(world)))
    assert outcome.code == grpc.StatusCode.OK, (racer, outcome)
    after = _rows(database)
    rows = set()
    for table in after.keys() | before.keys():
        for row in after.get(table, set()) ^ before.get(table, set()):
            for column, value in row:
                for key, world_id in world.ids.items():
                    if _same_id(value, world_id):
                        rows.add((table, column, key))
    return Footprint(frozenset(key for _, _, key in rows), tuple(sorted(rows)))


# ---------------------------------------------------------------------------
# Rounds
# ---------------------------------------------------------------------------

Result = tuple  # (code of X, code of Y, X visible, Y visible); visible is None unless OK


def _visible(call: Caller, world: World, racer: Racer, outcome: Outcome) -> bool | None:
    if outcome.code != grpc.StatusCode.OK:
        return None
    return racer.probe(call, world, outcome.response)


def _result(call, world, x: Racer, y: Racer, ox: Outcome, oy: Outcome) -> Result:
    return (ox.code, oy.code, _visible(call, world, x, ox), _visible(call, world, y, oy))


def _caller(call: Caller, racer: Racer, world: World):
    request = racer.build(world)
    return lambda: call(racer.principal, racer.rpc, request)


def serial_results(call: Caller, service: str, x: Racer, y: Racer) -> set[Result]:
    """What x and y answer, and leave visible, one after the other in each order."""
    results = set()
    for first_is_x in (True, False):
        world = new_world(call, service)
        fx, fy = _caller(call, x, world), _caller(call, y, world)
        if first_is_x:
            ox = outcome_of(fx)
            oy = outcome_of(fy)
        else:
            oy = outcome_of(fy)
            ox = outcome_of(fx)
        results.add(_result(call, world, x, y, ox, oy))
    return results


def free_round(call: Caller, service: str, x: Racer, y: Racer) -> Result:
    world = new_world(call, service)
    fx, fy = _caller(call, x, world), _caller(call, y, world)
    start = threading.Barrier(2)
    outcomes: dict[str, Outcome] = {}

    def run(name, function):
        start.wait()
        outcomes[name] = outcome_of(function)

    threads = [threading.Thread(target=run, args=item) for item in (("x", fx), ("y", fy))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _result(call, world, x, y, outcomes["x"], outcomes["y"])


def forced_round(
    served: Served, call: Caller, service: str, held: Racer, other: Racer, row: tuple
) -> tuple[Result, bool]:
    """held waits on a lock of row (table, column, world key) while other runs."""
    world = new_world(call, service)
    table, column, key = row
    race = served.race(
        served.lock(table, column, world.ids[key]),
        _caller(call, held, world),
        _caller(call, other, world),
    )
    return _result(call, world, held, other, race.first, race.second), race.forced


@dataclass
class Tally:
    pairs: int = 0
    rounds: int = 0
    forced: int = 0
    retries: int = 0  # transactions shared.calls ran again after a deadlock or lock timeout
    violations: list[str] = field(default_factory=list)

    def check(self, label: str, result: Result, allowed: set[Result]) -> None:
        self.rounds += 1
        if NEVER & set(result[:2]) or result not in allowed:
            self.violations.append(f"{label}: {result} not in {sorted(map(str, allowed))}")


@dataclass(frozen=True)
class Side:
    name: str
    racer: Racer
    footprint: Footprint


def race_pairs(service: str, call: Caller, database, served: Served | None, rounds: int) -> Tally:
    """Race every two racers of service whose footprints share an id of the world."""
    sides = [
        Side(name, racer, footprint(database, call, service, racer))
        for name, racer in sorted(RACERS[service].items())
    ]
    tally = Tally()
    with watch_log("shared.calls", logging.WARNING) as retries:
        for x, y in itertools.combinations_with_replacement(sides, 2):
            if x.footprint.ids & y.footprint.ids:
                race_pair(service, call, served, rounds, tally, x, y)
    tally.retries = len(retries.matching("retrying"))
    return tally


def race_pair(
    service: str, call: Caller, served: Served | None, rounds: int, tally: Tally, x: Side, y: Side
) -> None:
    tally.pairs += 1
    allowed = serial_results(call, service, x.racer, y.racer)
    for round_number in range(rounds):
        result = free_round(call, service, x.racer, y.racer)
        tally.check(f"{x.name} | {y.name} (free)", result, allowed)
        if served is None:
            continue  # SQLite: no row locks to hold
        # Hold each side in turn, at each of the rows it changes in turn.
        held, other = (x, y) if round_number % 2 == 0 else (y, x)
        rows = held.footprint.rows
        row = rows[(round_number // 2) % len(rows)]
        result, forced = forced_round(served, call, service, held.racer, other.racer, row)
        tally.forced += forced
        if held is y and x is not y:
            result = (result[1], result[0], result[3], result[2])  # back in (x, y) order
        tally.check(f"{held.name} held at {row} | {other.name} (forced)", result, allowed)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def _report(service: str, database: str, tally: Tally) -> None:
    if ROUNDS > 1 or tally.violations:
        print(
            f"\n[race harness] {service} on {database}: {tally.pairs} pairs, "
            f"{tally.rounds} rounds, {tally.forced} forced interleavings, "
            f"{len(tally.violations)} violations, {tally.retries} retried transactions"
        )


@pytest.mark.postgres
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_racing_writes_lose_nothing_and_never_answer_internal_on_postgres(postgres_admin, service):
    with served_on_postgres(postgres_admin, SERVICES[service], f"harness_{service}") as served:
        call = Caller(served.running.channel, service)
        tally = race_pairs(service, call, served.running.database, served, ROUNDS)
    _report(service, "postgres", tally)
    assert tally.pairs and tally.forced, tally
    assert not tally.violations, "\n".join(tally.violations)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_racing_writes_lose_nothing_and_never_answer_internal_on_sqlite(tmp_path, service):
    with serve(SERVICES[service], f"sqlite:///{tmp_path / 'race.db'}") as running:
        call = Caller(running.channel, service)
        tally = race_pairs(service, call, running.database, None, ROUNDS)
    _report(service, "sqlite", tally)
    assert tally.pairs, tally
    assert not tally.violations, "\n".join(tally.violations)


def _writes_by_permission(service: str) -> set[str]:
    return {
        method.name
        for method in methods_of(DEFINITIONS[service])
        if access_rule(method).permission.endswith(":write")
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_write_rpc_has_a_racer(sqlite_url, service):
    """A write: a `:write` permission, or a valid request that changes the store."""
    writes = _writes_by_permission(service)
    with serve(SERVICES[service], sqlite_url) as running:
        metadata = bearer(worlds.OWNER)
        for method in methods_of(DEFINITIONS[service]):
            if method.name in writes:
                continue
            world = worlds.SETUP[service](running.channel, metadata, uuid.uuid4().hex[:8])
            before = _rows(running.database)
            invoke(
                running.channel,
                method,
                worlds.valid_request(service, method.name, world),
                metadata,
            )
            if _rows(running.database) != before:
                writes.add(method.name)
    raced = {racer.rpc for racer in RACERS[service].values()}
    assert writes - raced == set(), "write RPCs without a racer in tests/reliability/concurrency"
    assert raced - writes == set(), "racers of RPCs that write nothing"
