"""The security policy (loopback, admin protocols behind a key, TLS) against the real server.

Covered: the load-with-code-override attack and unload refused without the key on HTTP and gRPC
(and the same payload running with it, so the refusal is what stops it); shared-memory, trace,
logging and index refused without the key; the refusal mapped to the SDK's PermissionDeniedError;
loopback-only listening sockets read from /proc; a metrics port that serves metrics only; TLS and
mutual TLS; and the listen rules, checked before anything is launched.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fixtures.serving import (
    DOUBLE_SOURCE,
    assert_cleaned_up,
    listening_sockets,
    loopback_address,
    write_python_model,
)
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from mtqa_builder.swap.control import ModelControl
from mtqa_builder.swap.errors import ControlError
from mtqa_client import InspectionClient
from mtqa_client.errors import PermissionDeniedError, from_server_error
from mtqa_client.retry import is_retryable
from mtqa_serving import (
    ModelControlError,
    RestrictedProtocols,
    SecurityConfigError,
    ServingError,
    TlsConfig,
    TritonServer,
    control_headers,
)
from mtqa_serving.certs import DevPki, write_dev_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return write_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secure_repo")
    write_python_model(path, "double", DOUBLE_SOURCE)
    return path


def _serve(repo: Path, **kwargs: object) -> Iterator[TritonServer]:
    server = TritonServer(repo, **kwargs)
    server.start()
    yield server
    server.stop()
    assert_cleaned_up(server, server.pid)


def _infer(client: grpcclient.InferenceServerClient) -> np.ndarray:
    x = np.ones((1, 4), dtype=np.float32)
    inp = grpcclient.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x)
    return client.infer("double", [inp], client_timeout=10).as_numpy("y")


# -- the security policy on a running server ---------------------------------------------------
ATTACK_SOURCE = """
import pathlib


class TritonPythonModel:
    def initialize(self, args):
        pathlib.Path({marker!r}).write_text("ran as the server's user")

    def execute(self, requests):
        return []
"""


def _attack_parts(marker: Path) -> tuple[str, dict[str, bytes]]:
    """The python-backend config (JSON) and files of a load request that runs code at load."""
    config = mc.ModelConfig(name="evil", backend="python", max_batch_size=0)
    config.input.add(name="x", data_type=mc.TYPE_FP32, dims=[1])
    config.output.add(name="y", data_type=mc.TYPE_FP32, dims=[1])
    source = ATTACK_SOURCE.format(marker=str(marker)).encode()
    return json_format.MessageToJson(config), {"file:1/model.py": source}


def _http_load(server: TritonServer, name: str, config: str, files: dict[str, bytes], headers):
    """POST /v2/repository/models/NAME/load with the config and files in `parameters`."""
    parameters = {"config": config}
    parameters.update({k: base64.b64encode(v).decode() for k, v in files.items()})
    return _http(
        server.http_url, f"/v2/repository/models/{name}/load", {"parameters": parameters}, headers
    )


def _http(host: str, path: str, body: object | None, headers: dict[str, str] | None = None):
    """(status, text) of a GET (body None) or JSON POST to `host` (loopback only)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{host}{path}",
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture(scope="module")
def plain_server(repo: Path) -> Iterator[TritonServer]:
    """Started as `mtqa serve` starts it by default: model control off, generated key."""
    yield from _serve(repo, model_control=False)


@pytest.fixture(scope="module")
def control_server(repo: Path) -> Iterator[TritonServer]:
    """Model control on (explicit, as swap needs), behind a generated key."""
    yield from _serve(repo, models=["double"])


def _refused(call, *args, **kwargs) -> PermissionDeniedError:
    """Run a tritonclient call that must be refused as restricted; return the SDK's error."""
    with pytest.raises(InferenceServerException, match="restricted") as caught:
        call(*args, **kwargs)
    error = from_server_error(caught.value, endpoint="test")
    assert isinstance(error, PermissionDeniedError), error
    return error


@pytest.mark.server
@pytest.mark.parametrize("fixture", ["plain_server", "control_server"])
def test_load_with_code_override_is_refused_without_the_key(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: TritonServer = request.getfixturevalue(fixture)
    marker = tmp_path / "marker"
    config, files = _attack_parts(marker)
    status, text = _http_load(server, "evil", config, files, {})
    assert status != 200 and "restricted" in text
    client = grpcclient.InferenceServerClient(server.grpc_url)
    _refused(client.load_model, "evil", config=config, files=files)
    wrong = control_headers("not-the-key")
    _refused(client.load_model, "evil", config=config, files=files, headers=wrong)
    _refused(client.unload_model, "double")
    status, text = _http(server.http_url, "/v2/repository/models/double/unload", {})
    assert status != 200 and "restricted" in text
    assert server.model_ready("double") and not marker.exists()
    np.testing.assert_array_equal(_infer(client), [[2, 2, 2, 2]])  # inference stays open
    if server.model_control:  # the payload is real: with the key it runs (the key is the gate)
        status, text = _http_load(server, "evil", config, files, server.control.http_headers())
        assert status == 200, text
        assert marker.read_text() == "ran as the server's user"
        client.unload_model("evil", headers=control_headers(server.control.key))


@pytest.mark.server
def test_swap_control_sends_the_key(control_server: TritonServer) -> None:
    """`mtqa swap`'s model control: refused with a hint without the key, works with it."""
    anonymous = ModelControl(control_server.grpc_url, timeout_s=10)
    with pytest.raises(ControlError, match="restricted.*--key-file or \\$MTQA_CONTROL_KEY"):
        anonymous.ready_versions("double")
    keyed = ModelControl(control_server.grpc_url, timeout_s=10, key=control_server.control.key)
    assert keyed.ready_versions("double") == [1]
    anonymous.close()
    keyed.close()


@pytest.mark.server
def test_admin_protocols_need_the_key_and_reads_stay_open(plain_server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(plain_server.grpc_url)
    error = _refused(client.register_system_shared_memory, "r", "/mtqa-probe", 64)
    assert "mtqa-control-key" in str(error) and not is_retryable(error, idempotent_read=True)
    _refused(client.get_model_repository_index)
    _refused(client.update_trace_settings, settings={"trace_file": "/tmp/mtqa-probe"})
    _refused(client.update_log_settings, settings={"log_verbose_level": 1})
    for path, body in [
        ("/v2/systemsharedmemory/region/r/register", {"key": "/mtqa-probe", "byte_size": 64}),
        ("/v2/trace/setting", {"trace_file": "/tmp/mtqa-probe"}),
        ("/v2/logging", {"log_verbose_level": 1}),
        ("/v2/repository/index", {}),
    ]:
        status, text = _http(plain_server.http_url, path, body)
        assert status != 200 and "restricted" in text, (path, status, text)
    assert client.get_model_config("double").config.name == "double"
    assert client.get_inference_statistics("double").model_stats
    with pytest.raises(ModelControlError, match="model control is off"):
        plain_server.load("double")
    assert [m["name"] for m in plain_server.repository_index()] == ["double"]  # key: the launcher


@pytest.mark.server
def test_sdk_shared_memory_needs_the_key(triton_server: TritonServer) -> None:
    """The SDK's shared-memory path: refused without the key (typed, not retried), works with it."""
    with InspectionClient(triton_server.grpc_url, shared_memory=True, retries=3) as anonymous:
        side = anonymous.net_spec().image_size
        batch = np.zeros((1, 3, side, side), dtype=np.float32)
        started = time.monotonic()
        with pytest.raises(PermissionDeniedError, match="mtqa-control-key"):
            anonymous.infer_tensor(batch)
        assert time.monotonic() - started < 2.0  # no retry rounds with back-off
    key = triton_server.control.key
    with InspectionClient(triton_server.grpc_url, shared_memory=True, key=key) as keyed:
        result = keyed.infer_tensor(batch)
    assert keyed.uses_shared_memory and result.presence_logits.shape[0] == 1


@pytest.mark.server
def test_default_server_listens_on_loopback_only(plain_server: TritonServer) -> None:
    sockets = listening_sockets(plain_server.pid)
    ports = {port for _, port in sockets}
    assert {plain_server.grpc_port, plain_server.http_port, plain_server.metrics_port} <= ports
    assert sockets and all(loopback_address(address) for address, _ in sockets), sockets
    command = Path(f"/proc/{plain_server.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--model-control-mode=none" in command
    key_file = plain_server.key_file
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().strip() == plain_server.control.key


@pytest.mark.server
def test_metrics_port_serves_metrics_only(plain_server: TritonServer) -> None:
    """Triton's metrics server answers any other GET with an empty 200 and refuses every POST."""
    metrics = plain_server.metrics_url.removeprefix("http://").removesuffix("/metrics")
    status, text = _http(metrics, "/metrics", None)
    assert status == 200 and "nv_inference_request_success" in text
    for path in (
        "/v2/health/ready",
        "/v2/models/double",
        "/v2/models/double/config",
        "/v2/logging",
    ):
        assert _http(metrics, path, None)[1] == "", path
    for path, body in [
        ("/v2/repository/models/double/unload", {}),
        ("/v2/repository/index", {}),
        ("/v2/systemsharedmemory/region/r/register", {"key": "/mtqa-probe", "byte_size": 64}),
        ("/v2/models/double/infer", {"inputs": []}),
        ("/v2/logging", {"log_verbose_level": 1}),
    ]:
        assert _http(metrics, path, body)[0] == 405, path
    assert plain_server.model_ready("double")


# -- TLS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(repo: Path, pki: DevPki) -> Iterator[TritonServer]:
    yield from _serve(repo, tls=TlsConfig(pki.server_cert, pki.server_key))


@pytest.mark.server
def test_tls_client_with_generated_ca_works(tls_server: TritonServer, pki: DevPki) -> None:
    client = grpcclient.InferenceServerClient(
        tls_server.grpc_url, ssl=True, root_certificates=str(pki.ca)
    )
    np.testing.assert_array_equal(_infer(client), [[2, 2, 2, 2]])


@pytest.mark.server
def test_plaintext_client_to_tls_port_fails(tls_server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(tls_server.grpc_url)
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        client.is_server_live(client_timeout=5)


@pytest.mark.server
def test_tls_client_without_our_ca_rejects_server(tls_server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(tls_server.grpc_url, ssl=True)  # system roots
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        client.is_server_live(client_timeout=5)


@pytest.fixture(scope="module")
def mtls_server(repo: Path, pki: DevPki) -> Iterator[TritonServer]:
    yield from _serve(repo, tls=TlsConfig(pki.server_cert, pki.server_key, ca=pki.ca))


@pytest.mark.server
def test_mutual_tls_requires_a_client_certificate(mtls_server: TritonServer, pki: DevPki) -> None:
    with_cert = grpcclient.InferenceServerClient(
        mtls_server.grpc_url,
        ssl=True,
        root_certificates=str(pki.ca),
        private_key=str(pki.client_key),
        certificate_chain=str(pki.client_cert),
    )
    np.testing.assert_array_equal(_infer(with_cert), [[2, 2, 2, 2]])
    without = grpcclient.InferenceServerClient(
        mtls_server.grpc_url, ssl=True, root_certificates=str(pki.ca)
    )
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        without.is_server_live(client_timeout=5)


# -- settings validation (no server) -------------------------------------------------------------
def test_tls_config_checks_files(tmp_path: Path, pki: DevPki) -> None:
    with pytest.raises(SecurityConfigError, match="does not exist"):
        TlsConfig(tmp_path / "nope.pem", pki.server_key)
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(SecurityConfigError, match="not a PEM file"):
        TlsConfig(pki.server_cert, tmp_path / "junk.pem")
    mutual = TlsConfig(pki.server_cert, pki.server_key, ca=pki.ca)
    assert mutual.mutual and "--grpc-use-ssl-mutual=true" in mutual.server_args()
    assert not TlsConfig(pki.server_cert, pki.server_key).mutual


def test_restricted_protocols_validation_and_flags() -> None:
    for bad in ("no-equals-sign", "=key", "Bad Header=key", "h=", "h=a,b"):
        with pytest.raises(SecurityConfigError):
            RestrictedProtocols.parse(bad)
    with pytest.raises(SecurityConfigError, match="unknown protocols"):
        RestrictedProtocols("h", "k", ("model-repo",))
    spec = RestrictedProtocols("admin", "k", ("model-repository", "shared-memory"))
    assert spec.server_args() == [
        "--grpc-restricted-protocol=model-repository,shared-memory:admin=k",
        "--http-restricted-api=model-repository,shared-memory:admin=k",
    ]
    assert spec.http_headers() == {"admin": "k"}


def _flags(server: TritonServer) -> dict[str, str]:
    """The server's `--name=value` flags, without launching it."""
    command = server._command(Path("tritonserver"), Path("backends"))
    return dict(a.removeprefix("--").split("=", 1) for a in command[1:] if "=" in a)


def test_default_binds_loopback_and_restricts_both_protocols(repo: Path) -> None:
    server = TritonServer(repo, model_control=False)
    flags = _flags(server)
    for name in ("grpc-address", "http-address", "metrics-address"):
        assert flags[name] == "127.0.0.1"
    assert flags["model-control-mode"] == "none" and "load-model" not in flags
    spec = f"model-repository,shared-memory,logging,trace:mtqa-control-key={server.control.key}"
    assert flags["grpc-restricted-protocol"] == flags["http-restricted-api"] == spec
    assert len(server.control.key) >= 32 and TritonServer(repo).control.key != server.control.key
    assert server.control.key not in repr(server.control)  # kept out of logs
    assert _flags(TritonServer(repo, models=["double"]))["model-control-mode"] == "explicit"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"listen": "0.0.0.0", "model_control": False}, "without TLS"),
        ({"listen": "10.1.2.3", "model_control": False}, "without TLS"),
        ({"listen": "0.0.0.0", "insecure": True}, "model control on and no control key"),
        ({"listen": "localhost"}, "must be an IPv4 address"),
        ({"listen": "::"}, "must be an IPv4 address"),
        ({"restricted": RestrictedProtocols("h", "k", ("shared-memory",))}, "control key already"),
    ],
)
def test_unsafe_settings_are_refused_before_launch(
    kwargs: dict, message: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTQA_TRITONSERVER", "/nonexistent/tritonserver")  # nothing may start
    with pytest.raises(SecurityConfigError, match=message):
        TritonServer(repo, **kwargs)


def test_wider_listen_rules(
    repo: Path, pki: DevPki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = TlsConfig(pki.server_cert, pki.server_key)
    with_tls = _flags(TritonServer(repo, tls=tls, listen="0.0.0.0", model_control=False))
    assert (with_tls["grpc-address"], with_tls["metrics-address"]) == ("0.0.0.0", "0.0.0.0")
    assert with_tls["http-address"] == "127.0.0.1"  # Triton's HTTP has no TLS
    keyed = TritonServer(repo, tls=tls, listen="10.1.2.3", key="operator-key")
    assert keyed.grpc_url.startswith("10.1.2.3:") and keyed.http_url.startswith("127.0.0.1:")
    insecure = TritonServer(repo, listen="0.0.0.0", model_control=False, insecure=True)
    assert insecure.exposure.warning and "INSECURE" in insecure.exposure.warning
    assert _flags(insecure)["http-address"] == "0.0.0.0"
    assert insecure.grpc_url.startswith("127.0.0.1:")  # 0.0.0.0 includes loopback
    monkeypatch.setenv("MTQA_TRITONSERVER", "/nonexistent/tritonserver")
    with caplog.at_level("WARNING"), pytest.raises(ServingError):
        insecure.start()  # the warning is logged before the binary is even looked up
    assert "INSECURE" in caplog.text
