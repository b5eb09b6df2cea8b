"""Static checks of docker/ (no Docker engine or cluster here): images, ports, probes, metrics, HPA.

Every tritonserver flag used in the images and manifests must exist in the bundled server's
`--help`; ports must equal the launcher's defaults; image tags the NGC release in builder/versions.
Every serving command follows the security policy (docs/serving.md): model control off, the
launcher's admin protocols restricted by the control key on gRPC and HTTP, the key read from the
environment (compose: docker/.env, Kubernetes: a Secret), HTTP on loopback.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtqa_builder import versions
from mtqa_serving import (
    ADMIN_PROTOCOLS,
    CONTROL_HEADER,
    CONTROL_KEY_ENV,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    TritonServer,
)
from mtqa_serving.binary import find_tritonserver
from mtqa_serving.ports import free_ports

DOCKER = Path(__file__).resolve().parents[1] / "docker"
K8S = DOCKER / "k8s"
PORTS = {"http": DEFAULT_HTTP_PORT, "grpc": DEFAULT_GRPC_PORT, "metrics": DEFAULT_METRICS_PORT}
REACHABLE = {"grpc": DEFAULT_GRPC_PORT, "metrics": DEFAULT_METRICS_PORT}  # HTTP stays on loopback
PLACEHOLDER = "REPLACE_WITH_A_RANDOM_KEY"
COMPOSE_KEY = "${MTQA_CONTROL_KEY:?set MTQA_CONTROL_KEY in docker/.env (see docker/.env.example)}"
SERVER_IMAGE = f"mtqa-triton-server:{versions.NGC_RELEASE}"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _k8s(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert len(docs) == 1, f"{name} should hold one object"
    return docs[0]


def _from_image(dockerfile: Path) -> str:
    """The FROM image with the ARG defaults substituted."""
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    image = re.search(r"^FROM (\S+)", text, re.M).group(1)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def _json_instruction(dockerfile: Path, name: str) -> list[str]:
    """A JSON-form instruction (CMD, ENTRYPOINT), joining `\\` continuation lines."""
    text = dockerfile.read_text().replace("\\\n", " ")
    return json.loads(re.search(rf"^{name} (\[.*\])$", text, re.M).group(1))


@pytest.fixture(scope="module")
def server_help() -> str:
    done = subprocess.run(
        [str(find_tritonserver()), "--help"], capture_output=True, text=True, timeout=60
    )
    return done.stdout + done.stderr


def _assert_known_flags(command: list[str], server_help: str) -> None:
    assert command[0] == "tritonserver"
    for arg in command[1:]:
        flag = arg.split("=", 1)[0]
        assert re.search(rf"^\s+{re.escape(flag)}(\s|$)", server_help, re.M), (
            f"{flag} is not a tritonserver 2.51 flag"
        )


def _flag(command: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in command if a.startswith(f"--{name}="))


def _shell_command(command: list[str]) -> list[str]:
    """The tritonserver command of a `sh -c "exec tritonserver ..."` CMD, as a list."""
    assert command[:2] == ["sh", "-c"]
    words = shlex.split(command[2])
    assert words[0] == "exec"
    return words[1:]


def _assert_serving_command(
    command: list[str], server_help: str, key: str, control: str = "none"
) -> None:
    """Known flags, repository, ports and the security policy; `key`: how the key is read."""
    _assert_known_flags(command, server_help)
    assert _flag(command, "model-repository") == "/models"
    for kind, port in PORTS.items():
        assert int(_flag(command, f"{kind}-port")) == port
    assert _flag(command, "model-control-mode") == control
    loads = [a for a in command if a.startswith("--load-model")]
    assert loads == ([] if control == "none" else ["--load-model=*"])
    assert _flag(command, "http-address") == "127.0.0.1"
    assert _flag(command, "grpc-address") == _flag(command, "metrics-address") == "0.0.0.0"
    spec = f"{','.join(ADMIN_PROTOCOLS)}:{CONTROL_HEADER}={key}"
    assert _flag(command, "grpc-restricted-protocol") == spec
    assert _flag(command, "http-restricted-api") == spec
    assert CONTROL_KEY_ENV in key and PLACEHOLDER not in " ".join(command)


def test_images_are_pinned_to_the_builder_release(server_help: str) -> None:
    assert _from_image(DOCKER / "server.Dockerfile") == versions.TRITON_IMAGE
    assert _from_image(DOCKER / "builder.Dockerfile") == versions.TENSORRT_IMAGE
    assert versions.TRITON_IMAGE.endswith(f":{versions.NGC_RELEASE}-py3")
    assert versions.TENSORRT_IMAGE.endswith(f":{versions.NGC_RELEASE}-py3")
    command = _shell_command(_json_instruction(DOCKER / "server.Dockerfile", "CMD"))
    _assert_serving_command(command, server_help, "${MTQA_CONTROL_KEY:?required}")
    entry = _json_instruction(DOCKER / "builder.Dockerfile", "ENTRYPOINT")
    assert entry == ["mtqa", "build", "--target", "ngc-trt"]


def test_server_image_installs_what_the_python_models_import() -> None:
    reqs = (DOCKER / "requirements-server.txt").read_text()
    names = {re.split(r"[<>=!~ ]", line)[0] for line in reqs.splitlines() if line[:1].isalpha()}
    assert {"numpy", "pillow", "scipy"} <= names
    assert names & {"onnxruntime", "onnxruntime-gpu"}
    assert re.search(r"^numpy.*<2", reqs, re.M), "python models and pytriton need numpy<2"


def test_compose_gpu_health_ports_and_prometheus(server_help: str) -> None:
    compose = _yaml(DOCKER / "compose.yaml")
    services = compose["services"]
    triton = services["triton"]
    assert triton["image"] == SERVER_IMAGE
    assert triton["build"]["args"]["NGC_RELEASE"] == versions.NGC_RELEASE
    assert services["builder"]["build"]["args"]["NGC_RELEASE"] == versions.NGC_RELEASE
    assert services["builder"]["image"].endswith(f":{versions.NGC_RELEASE}")
    _assert_serving_command(triton["command"], server_help, COMPOSE_KEY)
    assert sorted(triton["ports"]) == sorted(f"127.0.0.1:{p}:{p}" for p in REACHABLE.values())
    assert any(v.endswith(":/models:ro") for v in triton["volumes"])
    for name in ("triton", "builder"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert services["prometheus"]["depends_on"]["triton"]["condition"] == "service_healthy"
    mounted = services["prometheus"]["volumes"][0].split(":")[0]
    prometheus = _yaml((DOCKER / mounted).resolve())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"triton:{DEFAULT_METRICS_PORT}"]


def test_k8s_deployment_probes_gpu_and_volume(server_help: str) -> None:
    deployment = _k8s("deployment.yaml")
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    (container,) = pod["spec"]["containers"]
    assert container["image"] == SERVER_IMAGE
    _assert_serving_command(container["args"], server_help, f"$({CONTROL_KEY_ENV})")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == REACHABLE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    for name, path in _k8s_probe_paths().items():
        code = container[name]["exec"]["command"][-1]
        assert f"http://127.0.0.1:{DEFAULT_HTTP_PORT}{path}" in code, name
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == _k8s("pvc.yaml")["metadata"]["name"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(DEFAULT_METRICS_PORT)


def _k8s_probe_paths() -> dict[str, str]:
    paths = {"startupProbe": "/v2/health/ready", "readinessProbe": "/v2/health/ready"}
    return {**paths, "livenessProbe": "/v2/health/live"}


def test_key_comes_from_a_secret_and_grpc_uses_tls() -> None:
    """Kubernetes: the key from the Secret (placeholder only in the example), gRPC with TLS."""
    pod = _k8s("deployment.yaml")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (env,) = [e for e in container["env"] if e["name"] == CONTROL_KEY_ENV]
    secret = _k8s("secret.yaml")
    ref = env["valueFrom"]["secretKeyRef"]
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", ref["name"])
    assert secret["stringData"] == {ref["key"]: PLACEHOLDER}
    args = container["args"]
    assert _flag(args, "grpc-use-ssl") == "true"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    tls_volume = next(v for v in pod["volumes"] if v.get("secret"))
    for name in ("grpc-server-cert", "grpc-server-key"):
        assert _flag(args, name).startswith(mounts[tls_volume["name"]] + "/")


def test_compose_swap_override_turns_on_restricted_control_only(server_help: str) -> None:
    """compose.control.yaml: explicit model control for `mtqa swap`, everything else the same."""
    base = _yaml(DOCKER / "compose.yaml")["services"]["triton"]["command"]
    override = _yaml(DOCKER / "compose.control.yaml")["services"]["triton"]["command"]
    _assert_serving_command(override, server_help, COMPOSE_KEY, control="explicit")
    changed = {"--model-control-mode=none", "--model-control-mode=explicit", "--load-model=*"}
    assert [a for a in override if a not in changed] == [a for a in base if a not in changed]


def test_compose_key_comes_from_an_ignored_env_file() -> None:
    """Compose reads the key from docker/.env (git-ignored); .env.example documents it."""
    example = (DOCKER / ".env.example").read_text()
    assert re.search(rf"^{CONTROL_KEY_ENV}={PLACEHOLDER}$", example, re.M)
    assert "token_urlsafe" in example and "chmod 600" in example
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DOCKER / ".env")], cwd=DOCKER, timeout=30
    )
    assert ignored.returncode == 0, "docker/.env must be git-ignored"


def test_k8s_service_matches_deployment() -> None:
    deployment, service = _k8s("deployment.yaml"), _k8s("service.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        name: (port, name) for name, port in REACHABLE.items()
    }


def test_hpa_uses_the_adapter_queue_time_metric() -> None:
    hpa, deployment = _k8s("hpa.yaml"), _k8s("deployment.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    rules = _yaml(K8S / "prometheus-adapter-values.yaml")["rules"]["custom"]
    exposed = {rule["name"]["as"]: rule for rule in rules}
    rule = exposed[metric["pods"]["metric"]["name"]]
    assert "nv_inference_queue_duration_us" in rule["seriesQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def _probe_codes() -> dict[str, str]:
    """The python health-check snippets of compose and the Kubernetes probes."""
    test = _yaml(DOCKER / "compose.yaml")["services"]["triton"]["healthcheck"]["test"]
    (container,) = _k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    codes = {"compose": test[test.index("-c") + 1]}
    codes.update({k: container[k]["exec"]["command"][-1] for k in _k8s_probe_paths()})
    return codes


@pytest.mark.server
@pytest.mark.parametrize("probe", ["compose", *_k8s_probe_paths()])
def test_health_check_commands_probe_a_real_server(probe: str, double_server: TritonServer) -> None:
    code = _probe_codes()[probe]
    assert f":{DEFAULT_HTTP_PORT}/" in code

    def run(port: int) -> int:
        snippet = code.replace(f":{DEFAULT_HTTP_PORT}/", f":{port}/")
        return subprocess.run([sys.executable, "-c", snippet], timeout=30).returncode

    assert run(double_server.http_port) == 0
    assert run(free_ports(1)[0]) != 0
