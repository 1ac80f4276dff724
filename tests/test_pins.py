"""Every distribution the project installs, its dependencies' dependencies included, is pinned
exactly in pyproject.toml, so that every install (scripts/setup, CI, an image) resolves the same."""

from __future__ import annotations

import importlib.metadata
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.processes import REPO_ROOT


def test_every_installed_dependency_is_pinned_exactly_in_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        pins[canonicalize_name(requirement.name)] = specifier.version

    reached: set[str] = set()
    pending = [(project["name"], ("dev",))]
    while pending:
        name, extras = pending.pop()
        for line in importlib.metadata.requires(name) or ():
            requirement = Requirement(line)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in reached:
                reached.add(dependency)
                pending.append((dependency, tuple(requirement.extras)))

    assert sorted(reached - pins.keys()) == [], "required but not pinned"
    assert sorted(pins.keys() - reached) == [], "pinned but required by nothing"
    installed = {name: importlib.metadata.version(name) for name in reached}
    assert {name: version for name, version in installed.items() if pins[name] != version} == {}
