"""The deployment files (deploy/, compose.yaml) checked offline, as far as this machine can.

The Kubernetes manifests against the Kubernetes OpenAPI schemas (kubernetes-validate), the
compose file against the compose-spec schema (as check-jsonschema ships it), and every command
the files run — a container's, a probe's, a migrate one-shot's — against the service's own
parser, so a renamed flag or subcommand fails here rather than at deploy time. Building and
running the images needs a container engine: docs/deployment.md says what was done by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import kubernetes_validate
import pytest
import yaml

from cohort_service.server import SERVICE as COHORT
from report_service.server import SERVICE as REPORT
from shared.cli import build_parser
from shared.db import POSTGRES_POOL_SIZE
from shared.drain import SHUTDOWN_NOTICE
from shared.tracing import SPAN_FLUSH_SECONDS
from tests.processes import REPO_ROOT

DEFINITIONS = {definition.name: definition for definition in (COHORT, REPORT)}
MANIFESTS = sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml"))
COMPOSE = REPO_ROOT / "compose.yaml"
# The oldest release whose kubelet runs the preStop `sleep` action by default, and the newest
# the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
# What a stop takes beyond the grace period at most: the shutdown notice, and the last spans'
# flush when tracing is on.
STOP_MARGIN = SHUTDOWN_NOTICE + SPAN_FLUSH_SECONDS


def resources() -> list[tuple[Path, dict]]:
    return [
        (path, resource)
        for path in MANIFESTS
        for resource in yaml.safe_load_all(path.read_text())
        if resource
    ]


def accepted(service: str, argv: list[str]) -> argparse.Namespace:
    """What the service's CLI makes of argv; the test fails with argparse's words if it refuses."""
    parser = build_parser(DEFINITIONS[service])
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{service} {shlex.join(argv)}: {errors.getvalue().strip()}")


def test_there_is_a_manifest_a_dockerfile_and_a_compose_service_for_each_service():
    assert [path.stem for path in MANIFESTS] == sorted(DEFINITIONS)
    for name in DEFINITIONS:
        assert (REPO_ROOT / "deploy" / "docker" / f"{name}.Dockerfile").is_file()
        assert name in yaml.safe_load(COMPOSE.read_text())["services"]


# ---------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_manifest_is_valid_against_the_kubernetes_schema(version):
    found = resources()
    assert {r["kind"] for _, r in found} == {"Deployment", "Job", "Service", "PodDisruptionBudget"}
    for path, resource in found:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name} {resource['kind']}: {error.message} at {list(error.path)}")


def kubernetes(kind: str) -> dict[str, dict]:
    """The resources of one kind, by the service they belong to."""
    return {
        r["metadata"]["labels"]["app.kubernetes.io/name"]: r
        for _, r in resources()
        if r["kind"] == kind
    }


def environment(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_the_deployment_probes_its_grpc_port_and_outlasts_the_drain(service):
    prefix = DEFINITIONS[service].env_prefix
    pod = kubernetes("Deployment")[service]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = environment(container)
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    port = int(env[f"{prefix}_PORT"])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": port}, probe
    args = accepted(service, container["args"])
    assert args.command == "serve"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(env[f"{prefix}_GRACE_PERIOD"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace + STOP_MARGIN


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_secrets_come_from_secrets_and_both_pods_run_as_the_image_user(service):
    prefix = DEFINITIONS[service].env_prefix
    for kind in ("Deployment", "Job"):
        pod = kubernetes(kind)[service]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = environment(container)
        assert "secretKeyRef" in env[f"{prefix}_DATABASE_URL"], kind
        if kind == "Deployment":
            assert "secretKeyRef" in env["AUTH_JWT_SECRET"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's `app`


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_the_migration_job_runs_migrate_and_the_service_and_budget_select_the_pods(service):
    job = kubernetes("Job")[service]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert accepted(service, container["args"]).command == "migrate"
    assert job["restartPolicy"] == "Never"
    deployment = kubernetes("Deployment")[service]["spec"]
    assert deployment["replicas"] >= 2
    labels = deployment["template"]["metadata"]["labels"]
    selects = lambda selector: selector.items() <= labels.items()  # noqa: E731
    assert selects(deployment["selector"]["matchLabels"])
    assert selects(kubernetes("Service")[service]["spec"]["selector"])
    budget = [
        r for _, r in resources() if r["kind"] == "PodDisruptionBudget"
        and r["metadata"]["name"] == service
    ]  # fmt: skip
    assert selects(budget[0]["spec"]["selector"]["matchLabels"])
    assert budget[0]["spec"]["minAvailable"] < deployment["replicas"]
    # The migration Job's pods are not the Deployment's: the Service never routes to them.
    assert not selects(kubernetes("Job")[service]["spec"]["template"]["metadata"]["labels"])


# ---------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------


def test_the_compose_file_is_valid_against_the_compose_spec_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_migrates_each_database_before_two_replicas_of_its_service_start():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    urls = set()
    for name, definition in DEFINITIONS.items():
        prefix = definition.env_prefix
        server, migrate = services[name], services[f"{name.removesuffix('-service')}-migrate"]
        assert server["image"] == migrate["image"] == f"{name}:0.1.0"
        assert accepted(name, server["command"]).command == "serve"
        assert accepted(name, migrate["command"]).command == "migrate"
        assert server["depends_on"] == {
            f"{name.removesuffix('-service')}-migrate": {
                "condition": "service_completed_successfully"
            }
        }
        assert server["deploy"]["replicas"] == 2
        url = server["environment"][f"{prefix}_DATABASE_URL"]
        assert url == migrate["environment"][f"{prefix}_DATABASE_URL"]
        urls.add(url.rsplit("/", 1)[1])
        grace = float(server["environment"][f"{prefix}_GRACE_PERIOD"])
        assert int(server["stop_grace_period"].removesuffix("s")) > grace + STOP_MARGIN
    assert len(urls) == len(DEFINITIONS), "each service has a database of its own"


def test_compose_postgres_takes_every_connection_the_replicas_pools_may_open():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    command = services["postgres"]["command"]
    max_connections = int(command[command.index("-c") + 1].removeprefix("max_connections="))
    processes = sum(services[name]["deploy"]["replicas"] for name in DEFINITIONS)
    assert max_connections >= processes * POSTGRES_POOL_SIZE + 3  # + superuser_reserved


# ---------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------


def instructions(service: str) -> list[dockerfile.Command]:
    path = REPO_ROOT / "deploy" / "docker" / f"{service}.Dockerfile"
    return list(dockerfile.parse_file(str(path)))


def final_stage(commands: list[dockerfile.Command]) -> list[dockerfile.Command]:
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    return commands[last_from:]


def image_env(commands: list[dockerfile.Command]) -> dict[str, str]:
    env = {}
    for command in commands:
        if command.cmd == "ENV":
            pairs = iter(command.value)
            env.update(zip(pairs, pairs, strict=True))
    return env


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_the_dockerfile_copies_existing_paths_and_runs_the_services_own_commands(service):
    commands = instructions(service)
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    sources = [c.value[:-1] for c in commands if c.cmd == "COPY" and not c.flags]
    for source in (s for group in sources for s in group):
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
    assert f"{service.replace('-', '_')}/" in {s for group in sources for s in group}
    assert {".dockerignore"} <= {p.name for p in REPO_ROOT.iterdir()}

    final = final_stage(commands)
    # The final stage takes the venv from the builder and nothing from the build context.
    copies = [c for c in final if c.cmd == "COPY"]
    assert [c.flags for c in copies] == [("--from=builder",)]
    assert [c.value for c in final if c.cmd == "USER"] == [("10001:10001",)]
    (entrypoint,) = [c for c in final if c.cmd == "ENTRYPOINT"]
    (cmd,) = [c for c in final if c.cmd == "CMD"]
    assert entrypoint.json and list(entrypoint.value) == [service]
    assert service in scripts
    assert accepted(service, list(cmd.value)).command == "serve"

    env = image_env(final)
    prefix = DEFINITIONS[service].env_prefix
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    assert [c.value for c in final if c.cmd == "EXPOSE"] == [(env[f"{prefix}_PORT"],)]
    (healthcheck,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert healthcheck.value[0] == "CMD"
    probe = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], healthcheck.value[1]))
    assert probe[0] == service
    args = accepted(service, probe[1:])
    assert args.command == "health"
    assert args.address == f"127.0.0.1:{env[f'{prefix}_PORT']}"
