"""deploy/ checked offline: the compose files, the HAProxy config and the Kubernetes base.

- The compose files against the Compose Specification's JSON schema, the copy that
  check-jsonschema ships (`--builtin-schema vendor.compose-spec`).
- Every manifest of deploy/k8s with `kubernetes-validate --strict` against the Kubernetes
  1.30 schemas it ships: the files kustomization.yaml lists plus the Secret its generator
  makes, and kustomize's own rendering too when `kustomize` or `kubectl` is on PATH.
- Both tools run in a process whose sockets refuse to connect (`_OFFLINE`), so a tool that
  tried to download a schema would fail the test; one test shows a remote schema refused.
- Cross-checks: every FLASHSALE_ variable the deploy files set is one flashsale reads; the
  probe, metrics and live-events paths are routes the gateway serves; the load balancer's
  address is the gateways' trusted proxy; the data dir is writable under a read-only root;
  the grace period covers the preStop pause and the drain.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from flashsale import config
from flashsale.gateway.app import build_app

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILES = (DEPLOY / "compose.yaml", DEPLOY / "compose.cluster.yaml")
KUBERNETES_VERSION = "1.30.0"
DRAIN_S = 10  # a gateway answers what it has for up to ~10 s after SIGTERM
IMAGE = "flashsale"

# Runs `python -c _OFFLINE MODULE ARGS...`: MODULE's command line with every socket
# connection refused, so the tools below can only use the schemas they ship.
_OFFLINE = """
import runpy, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network access refused: the deploy tests run offline")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def offline(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _OFFLINE, module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return offline("check_jsonschema", *args)


def kubernetes_validate(*files: Path) -> subprocess.CompletedProcess[str]:
    return offline(
        "kubernetes_validate", "--strict", "--kubernetes-version", KUBERNETES_VERSION, *files
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def flashsale_reads() -> set[str]:
    """The FLASHSALE_ variables flashsale's code reads (config.py, logs.py)."""
    pattern = re.compile(r"""(?:_env|number|environ\.get|getenv)\(\s*["'](FLASHSALE_\w+)["']""")
    names = {
        name
        for source in (ROOT / "flashsale").rglob("*.py")
        for name in pattern.findall(source.read_text(encoding="utf-8"))
    }
    # The pattern itself must still find what the README documents.
    assert {
        "FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL", "FLASHSALE_TOKEN_SECRET",
        "FLASHSALE_HOST_KEYS", "FLASHSALE_DATA_DIR", "FLASHSALE_ACKS",
        "FLASHSALE_TRUSTED_PROXIES", "FLASHSALE_LOG_FORMAT",
    } <= names  # fmt: skip
    return names


def gateway_routes() -> set[tuple[str, str]]:
    app = build_app(cast(Any, None))  # the routes only: no gateway state is touched
    return {(route.method, route.resource.canonical) for route in app.router.routes()}


# --- compose -------------------------------------------------------------------------------


def flashsale_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image", "").split(":")[0] == IMAGE
    }


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """What a service's container gets: its env files' examples, then `environment`."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for entry in [files] if isinstance(files, str | dict) else files:
        path = entry if isinstance(entry, str) else entry["path"]
        env |= env_file(DEPLOY / f"{path}.example")
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return env | {name: str(value) for name, value in environment.items()}


def test_compose_files_match_the_compose_spec() -> None:
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", *COMPOSE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_fails_on_a_wrong_compose_file(tmp_path: Path) -> None:
    """The checks can fail: a misspelt key and a remote schema (refused: no network)."""
    compose = load_yaml(DEPLOY / "compose.yaml")
    compose["services"]["redis"]["healtcheck"] = compose["services"]["redis"].pop("healthcheck")
    wrong = tmp_path / "compose.yaml"
    wrong.write_text(yaml.safe_dump(compose), encoding="utf-8")
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", wrong)
    assert result.returncode == 1 and "healtcheck" in result.stdout + result.stderr

    remote = check_jsonschema("--schemafile", "https://schemas.invalid/compose.json", wrong)
    assert remote.returncode != 0
    assert "network access refused" in remote.stdout + remote.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_runs_flashsale_as_documented(path: Path) -> None:
    compose = load_yaml(path)
    services = compose["services"]
    ours = flashsale_services(compose)
    gateways = {n: s for n, s in ours.items() if s["command"][0] == "serve"}
    workers = {n: s for n, s in ours.items() if s["command"][0] == "worker"}
    assert len(gateways) == 2 and len(workers) == 2
    reads = flashsale_reads()

    lb = services["lb"]
    lb_address = lb["networks"]["flashsale"]["ipv4_address"]
    for name, service in ours.items():
        env = service_env(service)
        assert set(env) <= reads, f"{name} sets variables flashsale does not read"
        for required in ("REDIS_URL", "DATABASE_URL", "TOKEN_SECRET", "HOST_KEYS", "DATA_DIR"):
            assert env.get(f"FLASHSALE_{required}"), (name, required)
        assert env["FLASHSALE_ACKS"] in config.ACKS
        assert env["FLASHSALE_TRUSTED_PROXIES"] == lb_address
        assert env["FLASHSALE_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:" in env["FLASHSALE_DATABASE_URL"]
        # Every seed of the Redis URL is a service of this file.
        for seed in env["FLASHSALE_REDIS_URL"].split(","):
            host = re.fullmatch(r"redis://([\w.-]+):\d+(?:/\d+)?", seed)
            assert host and host[1] in services, seed
        assert all(dep in services for dep in service["depends_on"])
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in service  # only the load balancer is published

    for name, gateway in gateways.items():
        probe = " ".join(gateway["healthcheck"]["test"])
        assert re.search(r"http://127\.0\.0\.1:8080/readyz\b", probe), name
        assert int(gateway["stop_grace_period"].rstrip("s")) > DRAIN_S
    assert set(lb["depends_on"]) == set(gateways)
    assert all(d["condition"] == "service_healthy" for d in lb["depends_on"].values())
    assert lb["ports"] == ["8080:8080"]

    # Redis: AOF fsynced before each reply on each node, and never published on the host.
    nodes = {n: s for n, s in services.items() if s.get("image", "").startswith("redis:")}
    for name, node in nodes.items():
        assert "ports" not in node
        if name == "redis-cluster-init":
            continue
        command = node["command"]
        args = command.split() if isinstance(command, str) else command
        assert args[0] == "redis-server"
        assert " --appendonly yes --appendfsync always" in " ".join(args)
        assert node["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_cluster_variant_makes_a_cluster_of_three_masters_and_three_replicas() -> None:
    compose = load_yaml(DEPLOY / "compose.cluster.yaml")
    services = compose["services"]
    nodes = {n: s for n, s in services.items() if re.fullmatch(r"redis-\d", n)}
    assert len(nodes) == 6
    addresses = []
    for node in nodes.values():
        address = node["networks"]["flashsale"]["ipv4_address"]
        assert "--cluster-enabled yes" in node["command"]
        assert f"--cluster-announce-ip {address}" in node["command"]
        addresses.append(address)

    init = services["redis-cluster-init"]
    assert init["restart"] == "no"
    assert set(init["depends_on"]) == set(nodes)
    script = init["command"][-1]
    create = re.search(
        r"redis-cli --cluster create ([^-]+)--cluster-replicas 1 --cluster-yes", script
    )
    assert create, script
    assert create[1].replace("\\", " ").split() == [f"{a}:6379" for a in addresses]
    for service in flashsale_services(compose).values():
        cond = service["depends_on"]["redis-cluster-init"]["condition"]
        assert cond == "service_completed_successfully"
        seeds = service_env(service)["FLASHSALE_REDIS_URL"].split(",")
        assert len(seeds) >= 3


def test_env_examples_hold_placeholders_only() -> None:
    """No real secret is committed: every example value is marked CHANGE_ME, and each env
    file a compose file or the kustomization names has its example."""
    examples = sorted(DEPLOY.rglob("*.env.example"))
    assert examples
    for example in examples:
        for name, value in env_file(example).items():
            if "SECRET" in name or "KEYS" in name or "PASSWORD" in name or "URL" in name:
                assert "CHANGE_ME" in value, (example.name, name)
    for path in COMPOSE_FILES:
        for service in load_yaml(path)["services"].values():
            for entry in service.get("env_file", []):
                assert (DEPLOY / f"{entry}.example").is_file(), entry
    password = env_file(DEPLOY / "postgres.env.example")["POSTGRES_PASSWORD"]
    assert f":{password}@" in env_file(DEPLOY / "flashsale.env.example")["FLASHSALE_DATABASE_URL"]
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert "*.env" in ignored


def test_haproxy_passes_the_client_and_checks_readiness() -> None:
    cfg = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
    lines = [line.split("#")[0].strip() for line in cfg.splitlines()]
    assert "option forwardfor" in lines
    assert lines.count("http-check send meth GET uri /readyz") == 2  # both backends
    assert lines.count("http-check expect status 200") == 2
    assert "retry-on conn-failure" in lines  # never a purchase sent twice by the proxy
    assert not any(line.startswith("compression") for line in lines)  # it would buffer SSE

    live = next(line for line in lines if line.startswith("acl live_events path_reg "))
    pattern = live.split("path_reg ", 1)[1]
    assert re.fullmatch(pattern, "/v1/drops/vzjinhqnfrb2/live")
    for other in ("/v1/drops/x/purchase", "/v1/drops/x/live/y", "/v1/drops", "/readyz"):
        assert not re.fullmatch(pattern, other), other
    backend = cfg.split("backend gateways_live", 1)[1]
    assert re.search(r"^\s*timeout server 1h$", backend, re.M)

    compose = load_yaml(DEPLOY / "compose.yaml")
    servers = re.findall(r"^\s*server (\S+) (\S+):8080", cfg, re.M)
    assert {name for name, _ in servers} == {
        n for n, s in flashsale_services(compose).items() if s["command"][0] == "serve"
    }


# --- Kubernetes ----------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    return cast(dict[str, Any], load_yaml(K8S / "kustomization.yaml"))


def listed_manifests() -> list[dict[str, Any]]:
    """The kustomization by hand: its resources, and the Secret its generator makes from
    the example env file (the real secret.env is never committed)."""
    kust = kustomization()
    docs = [
        doc
        for resource in kust["resources"]
        for doc in yaml.safe_load_all((K8S / resource).read_text(encoding="utf-8"))
        if doc
    ]
    for generator in kust.get("secretGenerator", []):
        data: dict[str, str] = {}
        for env in generator["envs"]:
            data |= env_file(K8S / f"{env}.example")
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": generator["name"]},
                "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }
        )
    return docs


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def test_kustomization_lists_every_manifest_and_nothing_remote() -> None:
    kust = kustomization()
    listed = set(kust["resources"])
    assert all("://" not in r and not r.startswith(("github.com", "..")) for r in listed)
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in listed_manifests()}
    assert {
        ("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    } <= kinds  # fmt: skip


def test_listed_manifests_match_the_kubernetes_schemas(tmp_path: Path) -> None:
    manifests = listed_manifests()
    files = []
    for i, doc in enumerate(manifests):
        files.append(tmp_path / f"{i:02d}-{doc['kind'].lower()}.yaml")
        files[-1].write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = kubernetes_validate(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(f"against version {KUBERNETES_VERSION[:4]}") == len(manifests)


def test_kustomize_output_matches_the_kubernetes_schemas(tmp_path: Path) -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize or kubectl on PATH (the listed manifests are validated)")
    base = tmp_path / "k8s"
    shutil.copytree(K8S, base, ignore=shutil.ignore_patterns("secret.env"))
    shutil.copy(base / "secret.env.example", base / "secret.env")
    rendered = subprocess.run(
        [*command, str(base)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered, encoding="utf-8")
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(docs) == len(listed_manifests())
    assert all(doc["metadata"].get("namespace", "flashsale") == "flashsale" for doc in docs)
    result = kubernetes_validate(out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(docs)


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    (deployment,) = (d for d in listed_manifests() if d["kind"] == "Deployment"
                     and d["metadata"]["name"] == "flashsale-gateway")  # fmt: skip
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    wrong = tmp_path / "deployment.yaml"
    wrong.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    result = kubernetes_validate(wrong)
    assert result.returncode != 0 and "readinessprobe" in result.stdout + result.stderr


def containers(kind: str, component: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (doc,) = (
        d
        for d in listed_manifests()
        if d["kind"] == kind and d["metadata"]["name"] == f"flashsale-{component}"
    )
    pod = doc["spec"]["template"]
    return pod, pod["spec"]["containers"]


def test_k8s_settings_are_ones_flashsale_reads() -> None:
    reads = flashsale_reads()
    docs = listed_manifests()
    (configmap,) = (d for d in docs if d["kind"] == "ConfigMap")
    (secret,) = (d for d in docs if d["kind"] == "Secret")
    settings = set(configmap["data"]) | set(secret["data"])
    assert settings <= reads
    assert {
        "FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL", "FLASHSALE_TOKEN_SECRET",
        "FLASHSALE_HOST_KEYS", "FLASHSALE_DATA_DIR", "FLASHSALE_TRUSTED_PROXIES",
    } <= settings  # fmt: skip
    # Secrets in the Secret, the rest in the ConfigMap.
    assert {"FLASHSALE_TOKEN_SECRET", "FLASHSALE_HOST_KEYS", "FLASHSALE_DATABASE_URL"} <= set(
        secret["data"]
    )
    assert configmap["data"]["FLASHSALE_ACKS"] in config.ACKS
    for component in ("gateway", "worker"):
        pod, (container,) = containers("Deployment", component)
        refs = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert refs == {configmap["metadata"]["name"], secret["metadata"]["name"]}
        assert {e["name"] for e in container.get("env", [])} <= reads
        # The data dir is a writable emptyDir under the read-only root filesystem.
        data_dir = configmap["data"]["FLASHSALE_DATA_DIR"]
        (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == data_dir)
        (volume,) = (v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        assert "emptyDir" in volume
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert {"requests", "limits"} <= set(container["resources"])
        assert container["image"] == IMAGE
        assert container["args"][0] == ("serve" if component == "gateway" else "worker")
    # Every FLASHSALE_ name written anywhere under deploy/ is one flashsale reads.
    written = {
        name
        for path in DEPLOY.rglob("*")
        if path.is_file() and path.suffix != ".json"
        for name in re.findall(r"\bFLASHSALE_[A-Z0-9_]+\b", path.read_text(encoding="utf-8"))
    }
    assert written <= reads, written - reads


def test_k8s_probes_and_scrape_path_are_gateway_routes() -> None:
    routes = gateway_routes()
    pod, (gateway,) = containers("Deployment", "gateway")
    port = gateway["ports"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in (gateway["readinessProbe"], gateway["livenessProbe"]):
        assert ("GET", probe["httpGet"]["path"]) in routes
        assert probe["httpGet"]["port"] in (port["name"], port["containerPort"])
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    assert ("GET", annotations["prometheus.io/path"]) in routes
    assert ("GET", "/v1/drops/{id}/live") in routes  # the SSE path the LB keeps unbuffered
    assert ["--port", str(port["containerPort"])] == gateway["args"][3:5]

    # SIGTERM comes after the preStop pause; the drain must then fit in the grace period.
    pause = gateway["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(pause[1]) + DRAIN_S

    (service,) = (d for d in listed_manifests() if d["kind"] == "Service")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    (hpa,) = (d for d in listed_manifests() if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "flashsale-gateway"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for pdb in (d for d in listed_manifests() if d["kind"] == "PodDisruptionBudget"):
        component = pdb["metadata"]["name"].removeprefix("flashsale-")
        labels = containers("Deployment", component)[0]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_compose_probe_paths_are_gateway_routes() -> None:
    routes = gateway_routes()
    paths = set()
    for path in COMPOSE_FILES:
        text = path.read_text(encoding="utf-8")
        paths |= set(re.findall(r"http://127\.0\.0\.1:8080(/[\w/]+)", text))
    paths |= set(re.findall(r"uri (/\S+)", (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")))
    assert paths == {"/readyz"}
    assert all(("GET", p) in routes for p in paths)


# --- the image -----------------------------------------------------------------------------


def test_dockerfile_builds_a_small_non_root_image() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    assert any("pip install ." in line for line in lines)
    user = next(line.split()[1] for line in lines if line.startswith("USER "))
    uid = user.split(":")[0]
    assert uid.isdigit() and uid != "0"
    pod, _ = containers("Deployment", "gateway")
    assert pod["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert 'ENTRYPOINT ["flashsale"]' in lines
    assert "FLASHSALE_DATA_DIR=/data" in text and "chown flashsale:flashsale /data" in text
    # The build context is the repository root: what it copies is there.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for name in source.split():
            assert (ROOT / name).exists(), name
