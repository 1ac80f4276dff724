"""`cohort-service seed FILE.json`: load catalog data; running it again changes nothing.

The whole file is checked before anything is written, and every problem is reported at once
by its place in the file (`departments[2]`, `flags[0].type`); then it is written in one
transaction. Existing names and flag keys are kept as they are; an existing flag gains the
options it lacks.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort_service import catalog, validation
from cohort_service.models import (
    Department,
    Flag,
    FlagOption,
    FlagType,
    Profile,
    Simulation,
    database,
)
from shared.errors import InvalidArgument, Violations

_LOGGER = logging.getLogger(__name__)
# The file's flag `type` spellings: the FlagType name, with or without the proto's prefix.
FLAG_TYPES_BY_NAME = {
    spelling: flag_type
    for name, flag_type in (
        ("BOOLEAN", FlagType.BOOLEAN),
        ("SINGLE_SELECT", FlagType.SINGLE_SELECT),
        ("MULTI_SELECT", FlagType.MULTI_SELECT),
    )
    for spelling in (name, f"FLAG_TYPE_{name}")
}
ENTRY_KINDS = {"departments": Department, "simulations": Simulation, "profiles": Profile}
FILE_KEYS = (*ENTRY_KINDS, "flags")
FLAG_FIELDS = ("key", "type", "options")
OPTION_FIELDS = ("value", "label")
FORMAT_HELP = (
    'a JSON object with any of "departments", "simulations", "profiles" (lists of names) '
    'and "flags": a list of {"key", "type", "options": [{"value", "label"}, ...]}; '
    "type is BOOLEAN, SINGLE_SELECT or MULTI_SELECT (FLAG_TYPE_BOOLEAN, ... too). "
    "The whole file is checked first; nothing is written unless all of it is valid."
)
MAX_PRINTED_PROBLEMS = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = FORMAT_HELP
    # Read and checked while the arguments are parsed: a bad file stops the command before
    # it opens (or creates) the database.
    parser.add_argument(
        "plan", type=_read, metavar="FILE.json", help="catalog JSON, e.g. examples/catalog.json"
    )


def _read(name: str) -> Plan:
    try:
        data = json.loads(Path(name).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # invalid JSON or UTF-8; too deep
        raise argparse.ArgumentTypeError(
            f"cannot read {name}: {exc}; nothing was written"
        ) from None
    try:
        return check(data)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(f"{name}: {_problems(exc.violations)}") from None


def run(args: argparse.Namespace) -> int:
    try:
        with database.atomic():  # all or nothing
            report = load(args.plan)
    except InvalidArgument as exc:
        print(f"seed: {_problems(exc.violations)}", file=sys.stderr)
        return 1
    print("seed: " + ", ".join(f"{count} {what} added" for what, count in report.items()))
    return 0


def _problems(violations: list[tuple[str, str]]) -> str:
    shown = violations[:MAX_PRINTED_PROBLEMS]
    lines = [f"  {path}: {text}" for path, text in shown]
    if len(violations) > len(shown):
        lines.append(f"  (and {len(violations) - len(shown)} more)")
    count = f"{len(violations)} problem{'s' * (len(violations) != 1)}"
    return "\n".join([f"{count}; nothing was written", *lines])


# ---------------------------------------------------------------------------
# Checking the file: its shape, then each name and flag
# ---------------------------------------------------------------------------


@dataclass
class FlagSpec:
    path: str  # flags[i]
    key: str
    type: int
    options: list[tuple[str, str]]  # (value, label), checked


@dataclass
class Plan:
    """What a valid file asks for."""

    entries: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    flags: list[FlagSpec] = field(default_factory=list)


def check(data: Any) -> Plan:
    """The plan of a valid file; InvalidArgument naming every problem otherwise."""
    violations = Violations()
    plan = Plan()
    if not isinstance(data, dict):
        violations.add(
            "(file)", f"must be a JSON object of {', '.join(FILE_KEYS)}; got {_kind(data)}"
        )
        violations.raise_if_any("the catalog file is invalid")
    _unknown_keys(violations, "", data, FILE_KEYS)
    for kind in ENTRY_KINDS:
        names = _list(violations, kind, data.get(kind, []), "names")
        plan.entries[kind] = []
        for index, name in enumerate(names):
            path = f"{kind}[{index}]"
            if _is(violations, path, name, str, "a name"):
                checked = validation.check_name(violations, path, name)
                if checked is not None:
                    plan.entries[kind].append(checked)
    first_of_key: dict[str, str] = {}
    for index, spec in enumerate(_list(violations, "flags", data.get("flags", []), "flags")):
        flag = _check_flag(violations, f"flags[{index}]", spec)
        if flag is None:
            continue
        if flag.key in first_of_key:
            violations.add(
                f"{flag.path}.key", f"{flag.key!r} is also the key of {first_of_key[flag.key]}"
            )
            continue
        first_of_key[flag.key] = flag.path
        plan.flags.append(flag)
    violations.raise_if_any("the catalog file is invalid")
    return plan


def _check_flag(violations: Violations, path: str, spec: Any) -> FlagSpec | None:
    if not _is(violations, path, spec, dict, 'a flag {"key", "type", "options"}'):
        return None
    _unknown_keys(violations, f"{path}.", spec, FLAG_FIELDS)
    found = Violations()
    for name in FLAG_FIELDS:
        if name not in spec:
            found.add(name, "is required")
    key = spec.get("key", "")
    _is(found, "key", key, str, "a string")
    type_name = spec.get("type", "")
    flag_type = FLAG_TYPES_BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if "type" in spec and flag_type is None:
        found.add("type", f"{_kind(type_name)} is not a flag type; accepted: {_spellings()}")
    options, given = [], _list(found, "options", spec.get("options", []), "options")
    for index, option in enumerate(given):
        option_path = f"options[{index}]"
        if not _is(found, option_path, option, dict, 'an option {"value", "label"}'):
            continue
        _unknown_keys(found, f"{option_path}.", option, OPTION_FIELDS)
        if "value" not in option:
            found.add(f"{option_path}.value", "is required")
            continue
        value, label = option["value"], option.get("label", "")
        typed = [
            _is(found, f"{option_path}.{name}", text, str, "a string")
            for name, text in (("value", value), ("label", label))
        ]
        if all(typed):
            options.append((value, label))
    own = Violations()  # the catalog's own checks, less what the shape checks above reported
    key_given = isinstance(key, str) and "key" in spec
    checked = catalog.check_flag(
        key if key_given else "", flag_type or FlagType.MULTI_SELECT, options, own
    )
    for name, text in own:
        reported = (name == "type" and flag_type is None) or (name == "key" and not key_given)
        # The count of options is only news when every option given was well formed.
        miscounted = name == "options" and len(options) != len(given)
        if not reported and not miscounted and not (name == "options" and "options" not in spec):
            found.add(name, text)
    for name, text in found:
        violations.add(f"{path}.{name}", text)
    if found:
        return None
    assert flag_type is not None  # a missing or unknown type was found above
    return FlagSpec(path, key, flag_type, checked)


def _unknown_keys(violations: Violations, prefix: str, data: Mapping, accepted) -> None:
    for key in data:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            violations.add(
                f"{prefix}{key}", f"is not a known key; {hint}accepted: {', '.join(accepted)}"
            )


def _list(violations: Violations, path: str, value: Any, what: str) -> list[Any]:
    return value if _is(violations, path, value, list, f"a list of {what}") else []


def _is(violations: Violations, path: str, value: object, kind: type, what: str) -> bool:
    """True when value is a kind; otherwise a violation saying what was expected."""
    if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return True
    violations.add(path, f"must be {what}; got {_kind(value)}")
    return False


def _kind(value: object) -> str:
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    names = {bool: "true/false", dict: "an object", list: "a list", type(None): "null"}
    return names.get(type(value), "a number")


def _type_name(flag_type: int) -> str:
    return next(name for name, value in FLAG_TYPES_BY_NAME.items() if value == flag_type)


def _spellings() -> str:
    return ", ".join(name for name in FLAG_TYPES_BY_NAME if not name.startswith("FLAG_TYPE_")) + (
        " (or with the prefix FLAG_TYPE_)"
    )


# ---------------------------------------------------------------------------
# Writing a checked plan
# ---------------------------------------------------------------------------


def load(plan: Plan) -> dict[str, int]:
    """Create what plan describes and the store lacks; return counts per kind.

    Call it in a transaction: a flag that exists with another type is refused after the
    entries were written.
    """
    existing = {
        flag.key: flag for flag in Flag.select().where(Flag.key.in_([f.key for f in plan.flags]))
    }
    violations = Violations()
    for spec in plan.flags:
        flag = existing.get(spec.key)
        if flag is not None and flag.type != spec.type:
            violations.add(
                f"{spec.path}.type",
                f"flag {spec.key!r} exists with type {_type_name(flag.type)}; "
                "a flag's type cannot change",
            )
    violations.raise_if_any("the catalog file does not match the catalog")
    report = {
        kind: catalog.create_missing_entries(model, plan.entries[kind])
        for kind, model in ENTRY_KINDS.items()
    }
    report["flags"], report["flag options"] = 0, 0
    for spec in plan.flags:
        created_flag, created_options = _load_flag(spec, existing.get(spec.key))
        report["flags"] += created_flag
        report["flag options"] += created_options
    return report


def _load_flag(spec: FlagSpec, flag: Flag | None) -> tuple[int, int]:
    if flag is None:
        _, rows = catalog.create_flag(spec.key, spec.type, spec.options)
        return 1, len(rows)
    existing = list(flag.options.order_by(FlagOption.position))
    known = {option.value for option in existing}
    missing = [
        {"id": uuid.uuid4(), "flag": flag.id, "value": value, "label": label, "position": position}
        for position, (value, label) in enumerate(
            [pair for pair in spec.options if pair[0] not in known], start=len(existing)
        )
    ]
    if missing:
        FlagOption.insert_many(missing).execute()
    return 0, len(missing)
