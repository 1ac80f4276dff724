"""The catalog store: departments, simulations, profiles and flags (used by RPCs and `seed`)."""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Sequence

import peewee
from peewee import fn

from cohort_service import validation
from cohort_service.models import (
    CatalogEntry,
    Department,
    Flag,
    FlagOption,
    FlagType,
    Profile,
    Simulation,
    database,
    name_key,
    utcnow,
)
from shared.budget import UTF8_BYTES_PER_CHAR, items_within
from shared.errors import AlreadyExists, InvalidArgument, Violations

# ErrorInfo reasons of ALREADY_EXISTS, per kind.
EXISTS_REASONS = {
    Department: "DEPARTMENT_EXISTS",
    Simulation: "SIMULATION_EXISTS",
    Profile: "PROFILE_EXISTS",
}
FLAG_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_FLAG_OPTIONS = 100
FLAG_TYPES = {FlagType.BOOLEAN, FlagType.SINGLE_SELECT, FlagType.MULTI_SELECT}
# Rows per statement when seeding: a whole large catalog in one statement exceeds the
# bound parameters SQLite (250,000 here, 32,766 in many builds) and PostgreSQL (65,535) take.
SEED_BATCH = 5000


def _noun(model: type[CatalogEntry]) -> str:
    return model._meta.table_name


def create_entry(model: type[CatalogEntry], name: str) -> CatalogEntry:
    """A new department, simulation or profile; ALREADY_EXISTS if the name is taken."""
    violations = Violations()
    checked = validation.check_name(violations, "name", name)
    violations.raise_if_any()
    assert checked is not None  # else raise_if_any raised
    try:
        with database.atomic():
            return model.create(id=uuid.uuid4(), name=checked, name_key=name_key(checked))
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a {_noun(model)} named {checked!r} already exists "
            "(names are compared trimmed and case-insensitively)",
            reason=EXISTS_REASONS[model],
        ) from None


def create_missing_entries(model: type[CatalogEntry], names: Sequence[str]) -> int:
    """Create the entries whose names do not exist yet (for `seed`); return how many."""
    violations = Violations()
    wanted: dict[str, str] = {}
    for index, raw in enumerate(names):
        checked = validation.check_name(violations, f"{_noun(model)}s[{index}]", raw)
        if checked is not None:
            wanted.setdefault(name_key(checked), checked)
    violations.raise_if_any()
    with database.atomic():
        existing: set[str] = set()
        for keys in peewee.chunked(wanted, SEED_BATCH):
            query = model.select(model.name_key).where(model.name_key.in_(keys))
            existing.update(key for (key,) in query.tuples())
        missing = [
            {"id": uuid.uuid4(), "name": name, "name_key": key, "created_at": utcnow()}
            for key, name in wanted.items()
            if key not in existing
        ]
        for rows in peewee.chunked(missing, SEED_BATCH):
            model.insert_many(rows).execute()
    return len(missing)


# Names a "no such name" error suggests, from this many neighbours of the name on each side
# in name order: two index range reads of a bounded size, whatever the catalog's size.
CLOSEST_NAMES = 3
NEIGHBOURS = 25


def closest_names(model: type[CatalogEntry], key: str) -> list[str]:
    """Up to CLOSEST_NAMES entry names close to the name key `key` (difflib's ratio).

    The candidates are the entries next to key in name order (an index range read each
    side), not the whole catalog: a typo after the first letters lands among them; a
    typo in the first letter may find nothing, and then the List RPC is the way.
    """
    before = (
        model.select(model.name, model.name_key)
        .where(model.name_key < key)
        .order_by(model.name_key.desc())
        .limit(NEIGHBOURS)
    )
    after = (
        model.select(model.name, model.name_key)
        .where(model.name_key >= key)
        .order_by(model.name_key)
        .limit(NEIGHBOURS)
    )
    names = {name_key: name for query in (before, after) for name, name_key in query.tuples()}
    close = difflib.get_close_matches(key, list(names), n=CLOSEST_NAMES, cutoff=0.6)
    return [names[name_key] for name_key in close]


def page_of_entries(
    model: type[CatalogEntry], size: int, cursor: list | None
) -> tuple[list[CatalogEntry], list | None]:
    """Entries ordered by name, after cursor; and the cursor of the next page."""
    query = model.select()
    if cursor is not None:
        key, last_id = _cursor(cursor)
        query = query.where(
            (model.name_key > key) | ((model.name_key == key) & (model.id > last_id))
        )
    rows = list(query.order_by(model.name_key, model.id).limit(size + 1))
    page = rows[:size]
    next_cursor = [page[-1].name_key, str(page[-1].id)] if len(rows) > size else None
    return page, next_cursor


def _cursor(cursor: list) -> tuple[str, uuid.UUID]:
    try:
        return str(cursor[0]), uuid.UUID(cursor[1])
    except (IndexError, TypeError, ValueError, AttributeError):
        raise _invalid_token() from None


def _invalid_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token is not a token this RPC issued",
        [("page_token", "must be the next_page_token of a previous response, or empty")],
    )


# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------


def check_flag(
    key: str, flag_type: int, options: Sequence[tuple[str, str]], violations: Violations
) -> list[tuple[str, str]]:
    """The options trimmed; every problem of the flag recorded in violations."""
    if not FLAG_KEY.fullmatch(key):
        violations.add(
            "key",
            f"{key!r} is not a flag key: 1-64 lower-case letters, digits and _, "
            "starting with a letter",
        )
    if flag_type not in FLAG_TYPES:
        violations.add(
            "type", "must be FLAG_TYPE_BOOLEAN, FLAG_TYPE_SINGLE_SELECT or FLAG_TYPE_MULTI_SELECT"
        )
    if not 1 <= len(options) <= MAX_FLAG_OPTIONS:
        violations.add("options", f"needs 1-{MAX_FLAG_OPTIONS} options, got {len(options)}")
    checked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, (raw_value, label) in enumerate(options[:MAX_FLAG_OPTIONS]):
        value = validation.check_name(
            violations, f"options[{index}].value", raw_value, what="option value"
        )
        if len(label) > validation.MAX_NAME_LENGTH:
            violations.add(
                f"options[{index}].label",
                f"has {len(label)} characters; at most {validation.MAX_NAME_LENGTH} are accepted",
            )
        if value is None:
            continue
        if value in seen:
            violations.add(f"options[{index}].value", f"{value!r} is given twice")
        seen.add(value)
        checked.append((value, label.strip()))
    if flag_type == FlagType.BOOLEAN and options and seen != {"true", "false"}:
        violations.add("options", "a BOOLEAN flag has exactly the options `true` and `false`")
    return checked


def create_flag(key: str, flag_type: int, options: Sequence[tuple[str, str]]) -> tuple[Flag, list]:
    """A new flag with its options; ALREADY_EXISTS (FLAG_EXISTS) if the key is taken."""
    violations = Violations()
    checked = check_flag(key, flag_type, options, violations)
    violations.raise_if_any("the flag has invalid fields")
    try:
        with database.atomic():
            flag = Flag.create(id=uuid.uuid4(), key=key, type=flag_type)
            rows = [
                FlagOption(id=uuid.uuid4(), flag=flag, value=value, label=label, position=index)
                for index, (value, label) in enumerate(checked)
            ]
            FlagOption.insert_many([row.__data__ for row in rows]).execute()
            return flag, rows
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a flag with key {key!r} already exists", reason="FLAG_EXISTS"
        ) from None


# A flag's message beside its options' texts, and each option's beside its value and label
# (ids, key, tags), as upper bounds: the page is cut by these before any option is read.
_FLAG_FIXED_BYTES = 256
_OPTION_FIXED_BYTES = 64


def _flag_bytes():
    """A flag's serialized size with its options, as an upper bound (a column expression)."""
    text = fn.LENGTH(FlagOption.value) + fn.LENGTH(FlagOption.label)
    per_option = text * UTF8_BYTES_PER_CHAR + _OPTION_FIXED_BYTES
    # The constant inside the subquery: `select + 1` would be a UNION in peewee.
    return FlagOption.select(fn.COALESCE(fn.SUM(per_option), 0) + _FLAG_FIXED_BYTES).where(
        FlagOption.flag == Flag.id
    )


def page_of_flags(size: int, cursor: list | None) -> tuple[list[tuple[Flag, list]], list | None]:
    """Flags ordered by key with their options (two queries); and the next page's cursor.

    The page ends early at the byte budget (shared.budget), by the flags' sizes as computed
    in the database (100 options of 200 characters each make a flag of up to ~170 KB).
    """
    query = Flag.select(Flag, _flag_bytes().alias("estimated_bytes"))
    if cursor is not None:
        query = query.where(Flag.key > _flag_cursor(cursor))
    flags = list(query.order_by(Flag.key).limit(size + 1))
    page = flags[: min(size, items_within(flag.estimated_bytes for flag in flags))]
    options: dict[uuid.UUID, list[FlagOption]] = {flag.id: [] for flag in page}
    if page:
        for option in (
            FlagOption.select()
            .where(FlagOption.flag.in_(list(options)))
            .order_by(FlagOption.flag, FlagOption.position)
        ):
            options[option.flag_id].append(option)
    next_cursor = [page[-1].key] if len(flags) > len(page) else None
    return [(flag, options[flag.id]) for flag in page], next_cursor


def _flag_cursor(cursor: list) -> str:
    if len(cursor) != 1 or not isinstance(cursor[0], str):
        raise _invalid_token()
    return cursor[0]
