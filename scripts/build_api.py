"""Build the callers' package, draft-services-api, as a wheel.

    python scripts/build_api.py [--out DIR]   # prints the wheel's path

Stages api/pyproject.toml, api/README.md, LICENSE, the version of the root pyproject.toml and
the committed generated modules with their type stubs (scripts/gen_protos.py) into build/api,
then builds there with pip. Nothing of the server goes in.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from gen_protos import ROOT, committed

STAGE = ROOT / "build" / "api"


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["version"]


def stage() -> Path:
    shutil.rmtree(STAGE, ignore_errors=True)
    STAGE.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / "api" / name, STAGE / name)
    shutil.copyfile(ROOT / "LICENSE", STAGE / "LICENSE")
    (STAGE / "VERSION").write_text(version() + "\n")
    for path in committed():
        target = STAGE / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, target)
        # PEP 561: the stubs are part of the package, for mypy and the editors.
        (target.parent / "__init__.py").touch()
        (target.parent / "py.typed").touch()
    return STAGE


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(out), str(stage())], check=True)
    (wheel,) = out.glob(f"draft_services_api-{version()}-*.whl")
    return wheel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "dist", help="wheel folder")
    print(build(parser.parse_args().out.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
