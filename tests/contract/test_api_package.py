"""The callers' package: built as a wheel, installed into a fresh venv with nothing of the
server, where a client typed by the package's stubs passes `mypy --strict` and calls both
services (real servers on port 0)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.auth import mint_token
from tests.support import ALL_PERMISSIONS, TEST_AUTH, serve

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("typed_client.py")
# The type checker and the stubs it needs, at the root pyproject's pins.
CHECKER = ("mypy", "types-protobuf", "types-grpcio")
SERVER_ONLY = {"peewee", "psycopg2-binary", "cryptography", "pyjwt", "draft-services"}


def _pins() -> dict[str, str]:
    """name -> requirement, for every exact pin of the root pyproject (main and dev)."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["dev"] + extras["edge"]
    # dev names the edge extra too (`draft-services[edge]`): not a pin, and no constraint.
    pins = [r for r in requirements if "==" in r]
    return {re.split(r"[=<>\[]", r)[0].lower(): r for r in pins}


def _run(*args: str | Path, cwd: Path) -> str:
    # No PYTHONPATH and a working folder outside the repository: only the venv is seen.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def caller_venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel, its dependencies from the index, and the type checker."""
    work = tmp_path_factory.mktemp("caller")
    wheel = _run(sys.executable, ROOT / "scripts" / "build_api.py", "--out", work, cwd=work)
    pins = _pins()
    constraints = work / "constraints.txt"
    constraints.write_text("\n".join(pins.values()) + "\n")
    _run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    python = work / "venv" / "bin" / "python"
    _run(
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--constraint", constraints, wheel.strip(), *(pins[name] for name in CHECKER),
        cwd=work,
    )  # fmt: skip
    return python


def test_the_wheel_installs_only_the_contract_and_its_runtime(caller_venv):
    listed = _run(caller_venv, "-m", "pip", "list", "--format=json", cwd=caller_venv.parent)
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert {"draft-services-api", "grpcio", "protobuf", "googleapis-common-protos"} <= installed
    assert not installed & SERVER_ONLY
    # The server's modules are not there: the top-level packages hold only v1.
    probe = (
        "import importlib.util as u; print(u.find_spec('shared.auth'), u.find_spec('shared.v1'))"
    )
    assert _run(caller_venv, "-c", probe, cwd=caller_venv.parent).startswith("None ModuleSpec")


def test_a_typed_client_passes_mypy_strict_and_calls_both_services(caller_venv, tmp_path):
    client = shutil.copy(CLIENT, tmp_path / "client.py")
    checked = _run(caller_venv, "-m", "mypy", "--strict", "--no-incremental", client, cwd=tmp_path)
    assert checked.startswith("Success")

    token = mint_token(TEST_AUTH, "user:caller", ALL_PERMISSIONS)
    with (
        serve(COHORT, f"sqlite:///{tmp_path / 'cohort.db'}") as cohort,
        serve(REPORT, f"sqlite:///{tmp_path / 'report.db'}") as report,
    ):
        out = _run(caller_venv, client, cohort.address, report.address, token, cwd=tmp_path)
    assert json.loads(out) == {
        "departments": ["Cardiology"],
        "report": {
            "name": "Typed client",
            "datasets": ["orders"],
            "created": True,
            "missing": "NOT_FOUND",
        },
    }
