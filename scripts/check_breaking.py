"""Fail when the contract (protos/) breaks compatibility with the contract it started from.

    python scripts/check_breaking.py            # buf breaking against the base (below)
    BUF_BREAKING_AGAINST=v0.1.0 python scripts/check_breaking.py

The base is the commit BUF_BREAKING_AGAINST names, else, off main, the merge base with
`main` (the contract the branch will be merged into), else, on main itself (a CI clone has
only main, checked out or detached), the last tag, else main's previous commit (first
parent: the contract before the last merge). Without such history (a single commit, a
shallow clone) the check says so and passes. buf reads the base's protos, extracted with
`git archive`, with this tree's buf.yaml and the googleapis protos staged by
scripts/gen_protos.py, which the base's tree never holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from gen_protos import ROOT, stage_googleapis

BUF = ROOT / "node_modules" / ".bin" / "buf"


def git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def base(root: Path) -> tuple[str, str] | None:
    """(commit, why) of the contract to compare with, or None when there is no history."""
    named = os.environ.get("BUF_BREAKING_AGAINST")
    if named:
        commit = git(root, "rev-parse", "--verify", "--quiet", f"{named}^{{commit}}")
        if commit is None:
            raise SystemExit(f"BUF_BREAKING_AGAINST={named} names no commit")
        return commit, f"BUF_BREAKING_AGAINST={named}"
    branch = git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    if branch != "main" and git(root, "rev-parse", "--verify", "--quiet", "main^{commit}"):
        merge_base = git(root, "merge-base", "HEAD", "main")
        # HEAD on main's line with the contract as committed (a detached checkout of main)
        # has nothing to compare with there: it is checked as main is, below.
        edited = git(root, "status", "--porcelain", "--", "protos")
        if merge_base and (merge_base != git(root, "rev-parse", "HEAD") or edited):
            return merge_base, "the merge base with main"
    tag = git(root, "describe", "--tags", "--abbrev=0", "HEAD^")
    if tag:
        return git(root, "rev-parse", f"{tag}^{{commit}}") or tag, f"the last tag {tag}"
    parent = git(root, "rev-parse", "--verify", "--quiet", "HEAD^1")
    return (parent, "the previous commit on main") if parent else None


def extract_protos(root: Path, commit: str, into: Path) -> bool:
    """Write the commit's protos/ under into; False when it has none."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "protos"], cwd=root, capture_output=True
    )
    if archive.returncode != 0:
        return False
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to check")
    root = parser.parse_args().root.resolve()
    found = base(root)
    if found is None:
        print("buf breaking: skipped, no earlier commit to compare the contract with")
        return 0
    commit, why = found
    googleapis = stage_googleapis()
    with tempfile.TemporaryDirectory() as tmp:
        against = Path(tmp)
        if not extract_protos(root, commit, against):
            print(f"buf breaking: skipped, {why} ({commit[:12]}) has no protos/")
            return 0
        shutil.copyfile(root / "buf.yaml", against / "buf.yaml")
        shutil.copytree(googleapis, against / "build" / "googleapis")
        if root != ROOT:
            shutil.copytree(googleapis, root / "build" / "googleapis", dirs_exist_ok=True)
        done = subprocess.run([str(BUF), "breaking", "--against", str(against)], cwd=root)
    if done.returncode != 0:
        print(f"buf breaking: the contract breaks {why} ({commit[:12]})", file=sys.stderr)
        return 1
    print(f"buf breaking: compatible with {why} ({commit[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
