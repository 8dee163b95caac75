"""The deployment files, parsed and checked without Docker or a cluster.

deploy/docker-compose.yml, deploy/Dockerfile, deploy/k8s/*.yaml and deploy/fhirgen.env.example
must agree with each other and with the contract of the live system: the commands each process
runs, the settings it reads, persistence of the broker, a GPU for the gpu worker, non-root images.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = DEPLOY / "fhirgen.env.example"
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))

# What each long-running process runs (the CLI contract).
COMMANDS = {
    "web": ["fhirgen", "serve", "--host", "0.0.0.0", "--port", "8000"],
    "worker-io": ["fhirgen", "worker", "--queues", "io", "--concurrency", "4"],
    "worker-gpu": ["fhirgen", "worker", "--queues", "gpu", "--concurrency", "1"],
    "beat": ["fhirgen", "beat"],
}
SUBCOMMANDS = {"serve", "worker", "beat", "subscribe", "users"}
# Options a deployment may append to the contract command (sizing, not behaviour).
TUNING = {"web": {"--workers"}}
# Settings a deployment sets; fhirgen.env.example documents every one.
DEPLOY_SETTINGS = {
    "FHIRGEN_EHR_BASE_URL",
    "FHIRGEN_EHR_AUTH",
    "FHIRGEN_EHR_TOKEN",
    "FHIRGEN_EHR_CLIENT_ID",
    "FHIRGEN_EHR_PRIVATE_KEY_PATH",
    "FHIRGEN_EHR_JWT_ALG",
    "FHIRGEN_EHR_SCOPES",
    "FHIRGEN_PUBLIC_URL",
    "FHIRGEN_REDIS_URL",
    "FHIRGEN_DATABASE_URL",
    "FHIRGEN_DATA_DIR",
    "FHIRGEN_BACKEND",
    "FHIRGEN_MODEL_PATH",
    "FHIRGEN_SECRET_KEY",
    "FHIRGEN_LOG_LEVEL",
    "FHIRGEN_RECONCILE_INTERVAL",
    "FHIRGEN_VISIBILITY_TIMEOUT",
}
# Documented for deployments before the setting itself lands in fhirgen/config.py.
NOT_YET_SETTINGS = {"FHIRGEN_MODEL_PATH"}
FHIRGEN_NAME = re.compile(r"\bFHIRGEN_[A-Z0-9_]+\b")


# -- helpers -------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _assert_runs(service: str, argv: list[str]) -> None:
    """``argv`` is the contract command of ``service``, plus tuning options it allows."""
    contract = COMMANDS[service]
    assert argv[: len(contract)] == contract, (service, argv)
    extra = argv[len(contract) :]
    assert len(extra) % 2 == 0 and set(extra[::2]) <= TUNING.get(service, set()), (service, extra)


def _seconds(duration: str | int) -> float:
    """A compose duration ("90s", "2m", "1m30s", "1h") in seconds."""
    if isinstance(duration, int):
        return float(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def _env_files(service: dict[str, Any]) -> list[str]:
    value = service.get("env_file", [])
    items = value if isinstance(value, list) else [value]
    return [item["path"] if isinstance(item, dict) else item for item in items]


@dataclass(frozen=True)
class Stage:
    name: str
    base: str  # an image reference, or the name of an earlier stage
    instructions: tuple[tuple[str, str], ...]  # (KEYWORD, arguments)


def _instructions(text: str) -> list[tuple[str, str]]:
    """Logical Dockerfile instructions: continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def _stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: tuple[str, str, list[tuple[str, str]]] | None = None

    def close() -> None:
        if current is not None:
            name, base, body = current
            stages[name] = Stage(name, base, tuple(body))

    for keyword, args in _instructions(path.read_text()):
        if keyword == "ARG" and current is None:
            name, _, default = args.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        elif keyword == "FROM":
            close()
            words = [w for w in args.split() if not w.startswith("--")]
            base = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = (name, base, [])
        else:
            assert current is not None, f"{keyword} before the first FROM"
            current[2].append((keyword, args))
    close()
    return stages


def _effective(stages: dict[str, Stage], name: str, keyword: str) -> str | None:
    """The last KEYWORD of a stage, inherited from the stage it is built FROM."""
    stage = stages[name]
    for kw, args in reversed(stage.instructions):
        if kw == keyword:
            return args
    return _effective(stages, stage.base, keyword) if stage.base in stages else None


def _root_image(stages: dict[str, Stage], name: str) -> str:
    base = stages[name].base
    return _root_image(stages, base) if base in stages else base


def _build_targets() -> dict[str, str]:
    """Compose service -> Dockerfile target, for every service built from deploy/."""
    targets = {}
    for name, service in _services().items():
        build = service.get("build")
        if isinstance(build, dict):
            dockerfile = (COMPOSE.parent / build.get("context", ".")) / build["dockerfile"]
            assert dockerfile.resolve() == DOCKERFILE.resolve(), name
            targets[name] = build["target"]
    return targets


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in K8S_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def _k8s_deployments() -> dict[str, dict[str, Any]]:
    """Deployment by its component label (web, worker-io, worker-gpu, beat)."""
    found = {}
    for _, doc in _k8s_documents():
        if doc.get("kind") == "Deployment":
            component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
            found[component] = doc
    return found


def _env_example() -> tuple[dict[str, str], dict[str, bool]]:
    """(value by name, whether the line is active) for every documented FHIRGEN_ setting.

    A setting is documented as ``NAME=value`` or, left unset, as ``# NAME=``; either way the
    line just above it is a comment explaining it.
    """
    lines = ENV_EXAMPLE.read_text().splitlines()
    values: dict[str, str] = {}
    active: dict[str, bool] = {}
    assignment = re.compile(r"^(#\s*)?(FHIRGEN_[A-Z0-9_]+)=(.*)$")
    for i, line in enumerate(lines):
        match = assignment.match(line)
        if not match:
            assert not line or line.startswith("#"), f"line {i + 1}: not VAR=value: {line!r}"
            continue
        name = match.group(2)
        assert name not in values, f"{name} documented twice"
        above = lines[i - 1] if i else ""
        assert above.startswith("#") and not assignment.match(above), f"{name}: no comment above"
        values[name] = match.group(3)
        active[name] = match.group(1) is None
    return values, active


# -- docker-compose.yml --------------------------------------------------------------------------


def test_compose_has_every_service_with_the_contract_commands():
    services = _services()
    assert {"redis", "postgres", *COMMANDS} <= set(services)
    for name in COMMANDS:
        _assert_runs(name, _argv(services[name].get("command")))


def test_redis_is_persistent_with_append_only_file():
    redis = _services()["redis"]
    assert str(redis["image"]).startswith("redis:7")
    argv = _argv(redis["command"])
    assert argv[0] == "redis-server"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs.get("--appendonly") == "yes"
    assert pairs.get("--appendfsync") == "everysec"
    assert pairs.get("--maxmemory-policy") == "noeviction"  # a broker must not drop jobs
    assert any(str(v).split(":")[1] == "/data" for v in redis["volumes"]), "no volume on /data"
    assert "test" in redis["healthcheck"]


def test_postgres_is_persistent_and_checked():
    postgres = _services()["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert any("/var/lib/postgresql/data" in str(v) for v in postgres["volumes"])
    assert "test" in postgres["healthcheck"]
    # The password comes from the operator, never from this file.
    password = str(postgres["environment"]["POSTGRES_PASSWORD"])
    assert password.startswith("${"), "POSTGRES_PASSWORD must be interpolated, not written here"


def test_web_publishes_only_its_proxy_waits_for_its_backing_services_and_is_health_checked():
    web = _services()["web"]
    assert [str(p).split(":")[-1] for p in web["ports"]] == ["8080"]  # the proxy's, not 8000
    for dependency in ("redis", "postgres"):
        assert web["depends_on"][dependency]["condition"] == "service_healthy"
    healthcheck = web.get("healthcheck") or _effective(
        _stages(), _build_targets()["web"], "HEALTHCHECK"
    )
    assert healthcheck and "/healthz" in str(healthcheck)


def test_a_buffering_proxy_shares_webs_network_with_the_shipped_configuration():
    proxy = _services()["proxy"]
    assert str(proxy["image"]).startswith("nginxinc/nginx-unprivileged:")
    assert proxy["network_mode"] == "service:web"  # its upstream, 127.0.0.1:8000, is web
    mounts = [str(v).rsplit(":", 2) for v in proxy["volumes"]]
    assert ["./nginx/fhirgen.conf", "/etc/nginx/conf.d/default.conf", "ro"] in mounts, mounts
    conf = (DEPLOY / "nginx" / "fhirgen.conf").read_text()
    for directive in (
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "proxy_request_buffering on;",
        "server 127.0.0.1:8000;",
        "listen 8080;",
    ):
        assert directive in conf, directive  # fmt: skip


def test_k8s_web_pod_serves_through_its_proxy_container_with_the_same_configuration():
    pod = _k8s_deployments()["web"]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    proxy = containers["proxy"]
    assert str(proxy["image"]).startswith("nginxinc/nginx-unprivileged:")
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"http": 8080}
    services = [d for _, d in _k8s_documents() if d["kind"] == "Service"]
    (web_service,) = [s for s in services if s["metadata"]["name"] == "fhirgen-web"]
    assert [p["targetPort"] for p in web_service["spec"]["ports"]] == ["http"]
    (config_map,) = [
        d for _, d in _k8s_documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "fhirgen-proxy"
    ]  # fmt: skip
    shipped = (DEPLOY / "nginx" / "fhirgen.conf").read_text()
    assert config_map["data"]["default.conf"] == shipped
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = proxy["volumeMounts"]
    assert volumes[mount["name"]]["configMap"]["name"] == "fhirgen-proxy"
    assert mount["mountPath"] == "/etc/nginx/conf.d"


def test_gpu_worker_reserves_one_nvidia_gpu_and_mounts_the_model_read_only():
    gpu = _services()["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and d.get("count") == 1 and "gpu" in d.get("capabilities", [])
        for d in devices
    ), devices
    model_path = _env_example()[0]["FHIRGEN_MODEL_PATH"]
    mounts = [str(v).rsplit(":", 2) for v in gpu["volumes"]]
    assert any(target == model_path and mode == "ro" for _, target, mode in mounts), mounts


def test_every_fhirgen_service_reads_the_env_file_and_restarts():
    services = _services()
    for name in COMMANDS:
        assert "fhirgen.env" in _env_files(services[name]), name
    for name, service in services.items():
        assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name


def test_workers_have_time_to_finish_a_job_on_shutdown():
    services = _services()
    assert _seconds(services["worker-io"]["stop_grace_period"]) >= 60
    assert _seconds(services["worker-gpu"]["stop_grace_period"]) >= 300
    # Shorter than the visibility timeout: a stopped worker's job is not redelivered meanwhile.
    timeout = float(_env_example()[0]["FHIRGEN_VISIBILITY_TIMEOUT"])
    for name in ("worker-io", "worker-gpu"):
        assert _seconds(services[name]["stop_grace_period"]) < timeout, name


def test_compose_builds_every_fhirgen_service_from_a_dockerfile_target():
    targets = _build_targets()
    stages = _stages()
    assert set(COMMANDS) <= set(targets)
    assert set(targets.values()) <= set(stages)
    assert targets["worker-gpu"] != targets["worker-io"]


# -- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_parses_into_named_stages():
    stages = _stages()
    assert stages, "no FROM"
    assert {"web", "worker", "worker-gpu"} <= set(stages)


@pytest.mark.parametrize("target", ["web", "worker", "worker-gpu"])
def test_image_runs_fhirgen_as_non_root_with_an_exec_form_cmd(target):
    stages = _stages()
    user = _effective(stages, target, "USER")
    assert user, f"{target}: no USER"
    assert user.split(":")[0] not in {"root", "0"}, f"{target}: runs as root"
    cmd = _effective(stages, target, "CMD") or _effective(stages, target, "ENTRYPOINT")
    assert cmd and cmd.startswith("["), f"{target}: CMD is not exec form"
    argv = json.loads(cmd)
    assert argv[0] == "fhirgen" and argv[1] in SUBCOMMANDS, argv


def test_image_bases():
    stages = _stages()
    for target in ("web", "worker"):
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", _root_image(stages, target)), target
    gpu_base = _root_image(stages, "worker-gpu")
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-cudnn-runtime-ubuntu22\.04", gpu_base), gpu_base
    gpu_runs = " ".join(a for kw, a in stages["worker-gpu"].instructions if kw == "RUN")
    assert "python3.11" in gpu_runs
    assert "[transformers]" in gpu_runs
    assert "download.pytorch.org/whl/cu" in DOCKERFILE.read_text()  # a CUDA build of torch
    assert "torch==" not in DOCKERFILE.read_text()  # the CPU pin is for the tests only


def test_web_image_health_check_hits_healthz_in_exec_form():
    health = _effective(_stages(), "web", "HEALTHCHECK")
    assert health
    cmd = health[health.index("CMD") + len("CMD") :].strip()
    assert cmd.startswith("[") and "/healthz" in json.loads(cmd)[-1]


def test_images_hold_no_secrets_no_weights_and_no_pip_cache():
    instructions = [i for stage in _stages().values() for i in stage.instructions]
    for keyword, args in instructions:
        if keyword == "RUN":
            for install in re.findall(r"pip install[^&;]*", args):
                assert "--no-cache-dir" in install, install
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"SECRET|TOKEN|PASSWORD|PRIVATE_KEY|API_KEY", args), args
        if keyword in {"COPY", "ADD"}:
            assert not re.search(r"\.env|secret|\.pem|model|\.safetensors|\.bin\b", args), args


# -- Kubernetes ----------------------------------------------------------------------------------


def test_k8s_manifests_are_well_formed():
    docs = _k8s_documents()
    assert docs, "no manifests in deploy/k8s"
    for filename, doc in docs:
        assert isinstance(doc, dict), filename
        assert doc.get("apiVersion") and doc.get("kind"), filename
        assert isinstance(doc.get("metadata"), dict) and doc["metadata"].get("name"), filename


def test_k8s_deployments_run_the_contract_commands_as_non_root():
    deployments = _k8s_deployments()
    assert set(COMMANDS) <= set(deployments)
    for component in COMMANDS:
        pod = deployments[component]["spec"]["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] != "proxy"]
        _assert_runs(component, container.get("command", []) + container.get("args", []))
        assert pod["securityContext"]["runAsNonRoot"] is True, component
        refs = {
            ref.get("configMapRef", ref.get("secretRef", {})).get("name")
            for ref in container["envFrom"]
        }
        assert {"fhirgen-config", "fhirgen-secrets"} <= refs, component


def test_k8s_gpu_worker_asks_for_one_gpu_and_beat_runs_alone():
    deployments = _k8s_deployments()
    (gpu,) = deployments["worker-gpu"]["spec"]["template"]["spec"]["containers"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    beat = deployments["beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"
    web = deployments["web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"


# -- fhirgen.env.example -------------------------------------------------------------------------


def test_env_example_documents_every_deployment_setting_without_secrets():
    values, active = _env_example()
    missing = DEPLOY_SETTINGS - set(values)
    assert not missing, sorted(missing)
    assert values["FHIRGEN_SECRET_KEY"] == ""  # the operator generates it
    assert not active["FHIRGEN_EHR_TOKEN"] or values["FHIRGEN_EHR_TOKEN"] == ""
    assert "BEGIN" not in ENV_EXAMPLE.read_text()  # no key material
    for name, value in values.items():
        assert not (active[name] and value == "") or name == "FHIRGEN_SECRET_KEY", (
            f"{name}= is an empty string, not unset: comment the line out instead"
        )


def test_every_setting_the_deployment_files_name_is_in_the_env_example():
    documented = set(_env_example()[0])
    for path in [COMPOSE, DOCKERFILE, *K8S_FILES]:
        named = set(FHIRGEN_NAME.findall(path.read_text()))
        assert named <= documented, f"{path.name}: {sorted(named - documented)} undocumented"


def test_env_example_names_only_real_settings():
    from fhirgen.config import Settings

    known = {f"FHIRGEN_{name.upper()}" for name in Settings.model_fields} | NOT_YET_SETTINGS
    unknown = set(_env_example()[0]) - known
    assert not unknown, f"not fhirgen settings (typo?): {sorted(unknown)}"


def test_env_example_values_are_valid_settings(monkeypatch):
    from fhirgen.config import Settings, load_settings
    from fhirgen.drafting.generation import backend_names

    values, active = _env_example()
    for name in [n for n in os.environ if n.startswith("FHIRGEN_")]:
        monkeypatch.delenv(name)
    assert values["FHIRGEN_BACKEND"] in {"template", "transformers", "openai"}
    for name, value in values.items():
        field = name.removeprefix("FHIRGEN_").lower()
        if not active[name] or field not in Settings.model_fields:
            continue
        if name == "FHIRGEN_BACKEND" and value not in backend_names():
            continue  # a model backend documented before it is registered
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.redis_url and settings.database_url  # production: no embedded services


# -- the CLI, once its live commands exist -------------------------------------------------------


def _deployed_commands() -> list[tuple[str, list[str]]]:
    """Every fhirgen command line the deployment files run, with where it comes from."""
    found = [
        (f"compose:{name}", _argv(service["command"]))
        for name, service in _services().items()
        if _argv(service.get("command"))[:1] == ["fhirgen"]
    ]
    found += [
        (f"k8s:{component}", container.get("command", []) + container.get("args", []))
        for component, doc in _k8s_deployments().items()
        for container in doc["spec"]["template"]["spec"]["containers"]
        if container["name"] != "proxy"  # nginx, checked on its own
    ]
    stages = _stages()
    for target in ("web", "worker", "worker-gpu"):
        cmd = _effective(stages, target, "CMD") or ""
        # Shell form is reported by test_image_runs_fhirgen_as_non_root_with_an_exec_form_cmd.
        found.append((f"Dockerfile:{target}", json.loads(cmd) if cmd[:1] == "[" else _argv(cmd)))
    return found


@pytest.mark.parametrize(
    ("where", "argv"), [pytest.param(w, a, id=w) for w, a in _deployed_commands()]
)
def test_deployed_commands_parse_with_the_cli(where, argv):
    from fhirgen.cli.main import cli

    assert argv[0] == "fhirgen", where
    command = cli.commands.get(argv[1])
    if command is None:
        pytest.skip(f"`fhirgen {argv[1]}` is not in the CLI yet")
    with command.make_context(argv[1], list(argv[2:])):
        pass  # an unknown option or a bad value raises click.UsageError
