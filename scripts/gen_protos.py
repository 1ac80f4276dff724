"""Regenerate the Python code for every .proto under protos/ into the packages.

    python scripts/gen_protos.py           # write *_pb2.py, *_pb2_grpc.py and their .pyi
    python scripts/gen_protos.py --check   # exit 1 when the committed code is stale

The type stubs (*_pb2.pyi for messages, *_pb2_grpc.pyi for stubs and servicers)
come from mypy-protobuf's protoc plugins, pinned in pyproject.toml's dev extra;
the same files ship in the callers' package (scripts/build_api.py).

The same step writes the descriptor set the edge's Envoy transcodes with
(draft_edge/api.binpb): every project proto with its imports, and google/rpc's
status and error details, so that Envoy prints an error's details as JSON.

The googleapis protos (google/api/*.proto, google/rpc/*.proto) are imported from
the installed googleapis-common-protos package and copied to build/googleapis,
where buf finds them too; they are never committed.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import google.api
import google.rpc
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GOOGLEAPIS = ROOT / "build" / "googleapis"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
# Envoy's gRPC-JSON transcoder reads the services, their google.api.http rules and every
# message from it; google.rpc's types let it print Status details (BadRequest, ErrorInfo).
DESCRIPTOR_SET = Path("draft_edge") / "api.binpb"
ERROR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")
# mypy-protobuf installs its plugins as scripts beside the interpreter running this.
PLUGINS = Path(sys.executable).parent


def stage_googleapis() -> Path:
    """Copy google/api/*.proto and google/rpc/*.proto from the installed package into
    build/googleapis."""
    for package in (google.api, google.rpc):
        source = Path(next(iter(package.__path__)))
        target = GOOGLEAPIS / "google" / source.name
        target.mkdir(parents=True, exist_ok=True)
        for proto in source.glob("*.proto"):
            shutil.copyfile(proto, target / proto.name)
    return GOOGLEAPIS


def _protoc(*args: str) -> None:
    well_known = Path(protoc.__file__).parent / "_proto"
    include = [f"-I{PROTOS}", f"-I{stage_googleapis()}", f"-I{well_known}"]
    if protoc.main(["protoc", *include, *args]) != 0:
        raise SystemExit("protoc failed")


def _project_protos() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Run protoc over every project proto into the empty folder out; return the files written
    (the Python modules, their stubs and the descriptor set)."""
    _protoc(
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={PLUGINS / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={PLUGINS / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *_project_protos(),
    )
    written = [p for p in out.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)]
    # Each generated folder is a package so that `from report_service.v1 import x_pb2` works.
    for folder in {p.parent for p in written}:
        (folder / "__init__.py").touch()
    (out / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    _protoc(
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        "--include_imports",
        *_project_protos(),
        *ERROR_PROTOS,
    )
    return [*written, out / DESCRIPTOR_SET]


def committed() -> set[Path]:
    """The generated Python files currently in the tree, relative to the root (the callers'
    package ships them; the descriptor set is the edge's alone)."""
    found = set()
    for package in (p.relative_to(PROTOS).parts[0] for p in PROTOS.iterdir() if p.is_dir()):
        for path in (ROOT / package).rglob("*"):
            if path.name.endswith(GENERATED_SUFFIXES):
                found.add(path.relative_to(ROOT))
    return found


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.relative_to(tmp) for p in generate(Path(tmp))}
        stale = sorted(
            str(p)
            for p in fresh | committed()
            if not (ROOT / p).exists()
            or not (Path(tmp) / p).exists()
            or not filecmp.cmp(ROOT / p, Path(tmp) / p, shallow=False)
        )
    if stale:
        print("generated code is stale; run: python scripts/gen_protos.py", file=sys.stderr)
        print("\n".join(f"  {p}" for p in stale), file=sys.stderr)
        return 1
    print(f"generated code is fresh ({len(fresh)} files)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when committed code is stale")
    if parser.parse_args().check:
        return check()
    for stale in committed():
        (ROOT / stale).unlink()
    with tempfile.TemporaryDirectory() as tmp:
        written = generate(Path(tmp))
        modules = [p for p in written if p.name.endswith(GENERATED_SUFFIXES)]
        for path in written + [p.parent / "__init__.py" for p in modules]:
            target = ROOT / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    print(f"generated {len(written)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
