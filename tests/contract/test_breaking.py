"""scripts/check_breaking.py: buf breaking against the merge base with main, in a scratch repo."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Path("protos/cohort_service/v1/catalog.proto")
DEPARTMENT_NAME = "  string name = 2 [(google.api.field_behavior) = REQUIRED];\n}\n\n// Simulation"


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def check(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, ROOT / "scripts" / "check_breaking.py", "--root", repo],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def drop_department_name(repo: Path) -> None:
    proto = repo / CATALOG
    text = proto.read_text()
    assert DEPARTMENT_NAME in text
    proto.write_text(text.replace(DEPARTMENT_NAME, "}\n\n// Simulation"))


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository whose main holds the contract as it is now."""
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copyfile(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "contract")
    return tmp_path


def test_a_branch_that_deletes_a_field_fails_and_names_it(repo):
    git(repo, "switch", "-q", "-c", "feature")
    drop_department_name(repo)
    git(repo, "commit", "-q", "-am", "drop Department.name")
    done = check(repo)
    assert done.returncode == 1
    assert '"name" on message "Department" was deleted' in done.stdout + done.stderr
    assert "merge base with main" in done.stderr


def test_a_branch_that_adds_a_field_passes(repo):
    git(repo, "switch", "-q", "-c", "feature")
    proto = repo / CATALOG
    proto.write_text(proto.read_text().replace(DEPARTMENT_NAME, DEPARTMENT_NAME.replace(
        "}", '  string note = 3 [(google.api.field_behavior) = OPTIONAL];\n}', 1)))  # fmt: skip
    done = check(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compatible with the merge base with main" in done.stdout


def test_on_main_the_last_merge_is_checked_and_a_single_commit_is_skipped(repo):
    assert "skipped, no earlier commit" in check(repo).stdout
    drop_department_name(repo)
    git(repo, "commit", "-q", "-am", "drop Department.name")
    done = check(repo)
    assert done.returncode == 1
    assert "the previous commit on main" in done.stderr
    git(repo, "switch", "-q", "--detach")  # a CI checkout of main's commit
    assert "the previous commit on main" in check(repo).stderr
    git(repo, "switch", "-q", "main")
    # A deliberate break names the contract it breaks from.
    git(repo, "tag", "v2")
    assert check(repo, BUF_BREAKING_AGAINST="v2").returncode == 0
