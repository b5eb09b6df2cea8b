"""The client against servers it controls: a restart on the same ports while a call is retrying,
TLS (mutual) with an auth header on a restricted inference protocol, and a queue that overflows."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mtqa_client import (
    AsyncInspectionClient,
    AuthenticationError,
    InspectionClient,
    RetryPolicy,
    ServerOverloadedError,
    ServerUnavailableError,
    TlsConfig,
)
from mtqa_serving import RestrictedProtocols, TritonServer, free_ports
from mtqa_serving import TlsConfig as ServerTls
from mtqa_serving.certs import write_dev_pki

pytestmark = pytest.mark.server


def _probs(result) -> list[float]:
    return [d.probability for d in result.defects]


def test_retries_recover_after_a_server_restart(built_repo, sample_images) -> None:
    grpc_port, http_port, metrics_port = free_ports(3)
    server = TritonServer(
        built_repo,
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        startup_timeout=180,
    )
    policy = RetryPolicy(retries=40, base_delay_s=0.2, max_delay_s=2.0)
    outcome: dict[str, object] = {}

    server.start()
    try:
        with InspectionClient(server.grpc_url, retries=policy, timeout_s=60) as client:
            before = client.inspect(sample_images[0])
            server.stop()
            with pytest.raises(ServerUnavailableError):  # really down: no retries, fails fast
                InspectionClient(server.grpc_url, connect_timeout_s=0.5, retries=0)

            def call() -> None:  # sent while the server is down; retried until it is back
                try:
                    outcome["result"] = client.inspect(sample_images[0])
                except Exception as exc:  # reported below with its type
                    outcome["error"] = exc

            # The server is restarted from this (main) thread: the launcher ties the server's
            # lifetime to the thread that started it (parent-death signal).
            worker = threading.Thread(target=call)
            worker.start()
            time.sleep(1.5)
            assert worker.is_alive(), f"the call did not wait for the server: {outcome}"
            server.start()
            worker.join(timeout=120)
            assert "error" not in outcome, repr(outcome.get("error"))
            after = outcome["result"]
            assert np.allclose(_probs(after), _probs(before), atol=1e-5)
    finally:
        server.stop()


def test_mutual_tls_and_auth_header(built_repo, sample_images, tmp_path) -> None:
    pki = write_dev_pki(tmp_path / "pki")
    restricted = RestrictedProtocols("mtqa-key", "s3cret", ("inference",))
    server = TritonServer(
        built_repo,
        tls=ServerTls(pki.server_cert, pki.server_key, pki.ca),
        restricted=restricted,
        startup_timeout=180,
    )
    tls = TlsConfig(
        root_certificates=pki.ca, private_key=pki.client_key, certificate_chain=pki.client_cert
    )
    with server:
        with InspectionClient(
            server.grpc_url, tls=tls, headers=restricted.grpc_headers(), timeout_s=60
        ) as client:
            assert client.inspect(sample_images[1]).image_size == sample_images[1].shape[:2]
        with (
            InspectionClient(server.grpc_url, tls=tls) as anonymous,
            pytest.raises(AuthenticationError),
        ):
            anonymous.inspect(sample_images[1])
        with pytest.raises(ServerUnavailableError):  # plaintext cannot talk to a TLS port
            InspectionClient(server.grpc_url, connect_timeout_s=1, retries=0)
        no_cert = TlsConfig(root_certificates=pki.ca)
        with pytest.raises(ServerUnavailableError):  # mutual TLS: a client cert is required
            InspectionClient(server.grpc_url, tls=no_cert, connect_timeout_s=1, retries=0)


def test_queue_full_is_overload_and_retries_absorb_it(built_repo, sample_images, tmp_path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(built_repo, repo)
    config_path = repo / "mtqa_net" / "config.pbtxt"
    config = text_format.Parse(config_path.read_text(), mc.ModelConfig())
    config.dynamic_batching.default_queue_policy.max_queue_size = 1  # reject what cannot wait
    config_path.write_text(text_format.MessageToString(config))
    images = [sample_images[i % len(sample_images)] for i in range(24)]
    with TritonServer(repo, startup_timeout=180) as server:

        async def flood(retries: int) -> list:
            async with AsyncInspectionClient(server.grpc_url, retries=retries) as client:
                calls = [client.inspect(img) for img in images]
                return await asyncio.gather(*calls, return_exceptions=True)

        failed = [r for r in asyncio.run(flood(0)) if isinstance(r, Exception)]
        assert failed, "24 concurrent requests never overflowed a queue of 1"
        assert all(isinstance(e, ServerOverloadedError) for e in failed), failed[:3]
        patient = RetryPolicy(retries=30, base_delay_s=0.05, max_delay_s=0.5)
        results = asyncio.run(flood(patient))
        assert not [r for r in results if isinstance(r, Exception)]
