"""`cohort-service seed FILE.json`: load catalog data; running it again changes nothing.

The file holds lists of names under "departments", "simulations" and "profiles", and
under "flags" objects {"key", "type": "BOOLEAN" | "SINGLE_SELECT" | "MULTI_SELECT",
"options": [{"value", "label"}]}. Existing names and flag keys are kept as they are;
an existing flag gains the options it lacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from pathlib import Path

from cohort_service import catalog
from cohort_service.models import (
    Department,
    Flag,
    FlagOption,
    FlagType,
    Profile,
    Simulation,
    database,
)
from shared.errors import ServiceError, Violations

_LOGGER = logging.getLogger(__name__)
FLAG_TYPES_BY_NAME = {
    "BOOLEAN": FlagType.BOOLEAN,
    "SINGLE_SELECT": FlagType.SINGLE_SELECT,
    "MULTI_SELECT": FlagType.MULTI_SELECT,
}
ENTRY_KINDS = {"departments": Department, "simulations": Simulation, "profiles": Profile}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="catalog JSON, e.g. examples/catalog.json")


def run(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.file.read_text())
    except (OSError, ValueError) as exc:
        print(f"seed: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    try:
        with database.atomic():  # all or nothing
            report = load(data)
    except (ServiceError, ValueError) as exc:
        details = "".join(f"\n  {field}: {text}" for field, text in getattr(exc, "violations", []))
        print(f"seed: {exc}{details}", file=sys.stderr)
        return 1
    print("seed: " + ", ".join(f"{count} {what} added" for what, count in report.items()))
    return 0


def load(data: dict) -> dict[str, int]:
    """Create what data describes and the store lacks; return counts per kind."""
    if not isinstance(data, dict):
        raise ValueError("the file must hold a JSON object")
    report = {
        kind: catalog.create_missing_entries(model, [str(n) for n in data.get(kind, [])])
        for kind, model in ENTRY_KINDS.items()
    }
    report["flags"], report["flag options"] = 0, 0
    for index, spec in enumerate(data.get("flags", [])):
        created_flag, created_options = _load_flag(index, spec)
        report["flags"] += created_flag
        report["flag options"] += created_options
    return report


def _load_flag(index: int, spec: dict) -> tuple[int, int]:
    key = str(spec.get("key", ""))
    type_name = str(spec.get("type", "")).removeprefix("FLAG_TYPE_")
    flag_type = FLAG_TYPES_BY_NAME.get(type_name, 0)  # 0: check_flag names the problem
    options = [(str(o.get("value", "")), str(o.get("label", ""))) for o in spec.get("options", [])]
    violations = Violations()
    checked = catalog.check_flag(key, flag_type, options, violations)
    violations.raise_if_any(f"flags[{index}] ({key!r}) is invalid")
    flag = Flag.get_or_none(Flag.key == key)
    if flag is None:
        _, rows = catalog.create_flag(key, flag_type, checked)
        return 1, len(rows)
    if flag.type != flag_type:
        raise ValueError(f"flags[{index}]: flag {key!r} exists with another type")
    existing = list(flag.options.order_by(FlagOption.position))
    known = {option.value for option in existing}
    missing = [
        {"id": uuid.uuid4(), "flag": flag.id, "value": value, "label": label, "position": position}
        for position, (value, label) in enumerate(
            [pair for pair in checked if pair[0] not in known], start=len(existing)
        )
    ]
    if missing:
        FlagOption.insert_many(missing).execute()
    return 0, len(missing)
