"""`cohort-service seed FILE.json` checks the whole file first and writes all of it or nothing.

The command runs as an operator runs it: the production CLI in a process of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.db import open_database
from tests.support import snapshot

ROOT = Path(__file__).resolve().parents[2]


def seed(database_url: str, path: Path, content: object | None = None):
    if content is not None:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
    return subprocess.run(
        [sys.executable, "-m", "cohort_service", "seed", "--database-url", database_url, str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def stored(database_url: str) -> dict:
    database = open_database(database_url)
    try:
        return snapshot(database)
    finally:
        database.close()


def refused(result, *lines: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for line in lines:
        assert f"\n  {line}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"departments": "Sales"}, "departments: must be a list of names; got the string 'Sales'"),
        ({"flags": "x"}, "flags: must be a list of flags; got the string 'x'"),
        (
            {"departmnts": ["Sales"]},
            "departmnts: is not a known key; did you mean 'departments'?",
        ),
    ],
    ids=["a string for a list of names", "a string for a list of flags", "a misspelt key"],
)
def test_a_file_of_the_wrong_shape_is_refused_before_the_database_is_opened(
    sqlite_url, tmp_path, content, problem
):
    refused(seed(sqlite_url, tmp_path / "catalog.json", content), problem)
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_every_problem_of_the_file_is_named_at_once_by_its_place(sqlite_url, tmp_path):
    content = {
        "departments": ["Sales", 3, " "],
        "flags": [
            {"key": "Bad", "type": "boolean", "options": [{"value": "x", "colour": "red"}]},
            5,
            {"type": "BOOLEAN"},
        ],
    }
    refused(
        seed(sqlite_url, tmp_path / "catalog.json", content),
        "departments[1]: must be a name; got a number",
        "departments[2]: the name must not be blank",
        "flags[0].type: the string 'boolean' is not a flag type; accepted: BOOLEAN, "
        "SINGLE_SELECT, MULTI_SELECT (or with the prefix FLAG_TYPE_)",
        "flags[0].options[0].colour: is not a known key; accepted: value, label",
        "flags[0].key: 'Bad' is not a flag key",
        "flags[1]: must be a flag",
        "flags[2].key: is required",
        "flags[2].options: is required",
    )


@pytest.mark.parametrize(
    "content",
    ["{", b"\xff", "[" * 100_000, None],
    ids=["invalid JSON", "not UTF-8", "nested too deep", "missing"],
)
def test_an_unreadable_file_or_invalid_json_is_refused_without_a_traceback(
    sqlite_url, tmp_path, content
):
    result = seed(sqlite_url, tmp_path / "catalog.json", content)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "cannot read" in result.stderr and "nothing was written" in result.stderr


def test_a_flag_that_exists_with_another_type_refuses_the_whole_file(database_url, tmp_path):
    options = [{"value": "true"}, {"value": "false"}]
    flag = {"key": "review", "type": "FLAG_TYPE_BOOLEAN", "options": options}
    assert seed(database_url, tmp_path / "first.json", {"flags": [flag]}).returncode == 0
    before = stored(database_url)
    again = {**flag, "type": "MULTI_SELECT", "options": [{"value": "true"}]}
    refused(
        seed(database_url, tmp_path / "second.json", {"departments": ["Sales"], "flags": [again]}),
        "flags[0].type: flag 'review' exists with type BOOLEAN; a flag's type cannot change",
    )
    assert stored(database_url) == before
