"""The set-up leaves the checkout unchanged: `npm ci` installs from package-lock.json and never
writes it, which works on every platform only if the lock lists every platform's buf binary."""

from __future__ import annotations

import json

from tests.processes import REPO_ROOT


def test_the_lock_lists_the_buf_binary_of_every_platform():
    packages = json.loads((REPO_ROOT / "package-lock.json").read_text())["packages"]
    buf = packages["node_modules/@bufbuild/buf"]
    missing = [
        name for name in buf["optionalDependencies"] if f"node_modules/{name}" not in packages
    ]
    assert not missing, f"package-lock.json lacks {missing}: regenerate it with npm install"
