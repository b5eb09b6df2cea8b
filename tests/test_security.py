"""gRPC TLS, mutual TLS and restricted model control, checked against the real local server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fixtures.serving import DOUBLE_SOURCE, assert_cleaned_up, write_python_model
from tritonclient.utils import InferenceServerException

from mtqa.serving import (
    ModelControlError,
    RestrictedProtocols,
    SecurityConfigError,
    TlsConfig,
    TritonServer,
    http_api,
)
from mtqa.serving.certs import DevPki, write_dev_pki


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


# -- restricted model control ----------------------------------------------------------------
@pytest.fixture(scope="module")
def restricted_server(repo: Path) -> Iterator[TritonServer]:
    yield from _serve(repo, restricted=RestrictedProtocols.parse("admin-key=s3cret"))


@pytest.mark.server
def test_grpc_model_control_needs_the_key(restricted_server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(restricted_server.grpc_url)
    with pytest.raises(InferenceServerException, match="restricted"):
        client.unload_model("double")
    with pytest.raises(InferenceServerException, match="restricted"):
        client.load_model("double", headers={"admin-key": "wrong"})
    assert restricted_server.model_ready("double")
    np.testing.assert_array_equal(_infer(client), [[2, 2, 2, 2]])  # inference stays open
    headers = restricted_server.restricted.grpc_headers()
    assert headers == {"triton-grpc-protocol-admin-key": "s3cret"}
    client.unload_model("double", headers=headers)
    restricted_server.unload("double")  # waits until the unload has finished
    assert not client.is_model_ready("double")
    client.load_model("double", headers=headers)
    assert client.is_model_ready("double")


@pytest.mark.server
def test_http_model_control_needs_the_key(restricted_server: TritonServer) -> None:
    url = f"http://{restricted_server.http_url}/v2/repository/models/double/unload"
    with pytest.raises(ModelControlError, match="restricted"):
        http_api.post(url, {}, 5.0, "unload without key")
    assert restricted_server.model_ready("double")
    restricted_server.unload("double")  # the launcher sends the key itself
    restricted_server.load("double")
    assert restricted_server.model_ready("double")


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
