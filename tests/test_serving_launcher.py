"""The launcher against the real bundled tritonserver: start, health, metrics, control, failures."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fixtures.serving import (
    DOUBLE_SOURCE,
    HANGING_SOURCE,
    RAISING_SOURCE,
    assert_cleaned_up,
    write_python_model,
)

from mtqa_serving import (
    ModelControlError,
    ServerNotFoundError,
    ServerStartError,
    ServingError,
    TritonServer,
)

pytestmark = pytest.mark.server


def _double(url: str, model: str = "double") -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp]).as_numpy("y")


def test_health_metrics_and_inference(double_server: TritonServer) -> None:
    http = f"http://{double_server.http_url}"
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/double/ready"):
        assert urllib.request.urlopen(http + path, timeout=5).status == 200
    y = _double(double_server.grpc_url)
    np.testing.assert_array_equal(y, 2 * np.arange(8, dtype=np.float32).reshape(2, 4))
    metrics = urllib.request.urlopen(double_server.metrics_url, timeout=5).read().decode()
    assert 'nv_inference_request_success{model="double",version="1"}' in metrics
    assert double_server.pid is not None and double_server.running


def test_explicit_load_and_unload(double_server: TritonServer) -> None:
    states = {m["name"]: m.get("state") for m in double_server.repository_index()}
    assert states["double"] == "READY" and states.get("double_b") != "READY"
    assert not double_server.model_ready("double_b")
    double_server.load("double_b")
    np.testing.assert_array_equal(_double(double_server.grpc_url, "double_b")[0], [0, 2, 4, 6])
    double_server.unload("double_b")
    assert not double_server.model_ready("double_b")
    with pytest.raises(ModelControlError, match="no_such_model"):
        double_server.load("no_such_model")


def test_raising_model_fails_fast_with_cause(tmp_path: Path) -> None:
    write_python_model(tmp_path, "broken", RAISING_SOURCE)
    server = TritonServer(tmp_path, startup_timeout=60)
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="initialize refused on purpose"):
        server.start()
    assert time.monotonic() - started < 30
    assert_cleaned_up(server, server.pid)
    assert "initialize refused on purpose" in server.log_tail(200)


def test_hanging_model_is_bounded_and_killed(tmp_path: Path) -> None:
    write_python_model(tmp_path, "hangs", HANGING_SOURCE)
    server = TritonServer(tmp_path, startup_timeout=4)
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="not ready within 4 s"):
        server.start()
    assert time.monotonic() - started < 4 + 25  # timeout plus a bounded stop
    assert_cleaned_up(server, server.pid)


def test_load_failure_on_running_server_names_the_cause(tmp_path: Path) -> None:
    write_python_model(tmp_path, "double", DOUBLE_SOURCE)
    write_python_model(tmp_path, "broken", RAISING_SOURCE)
    with TritonServer(tmp_path, models=[]) as server:
        pid = server.pid
        assert server.repository_index() and not server.model_ready("double")
        with pytest.raises(ModelControlError, match="initialize refused on purpose"):
            server.load("broken")
        server.load("double")
        assert server.model_ready("double") and not server.model_ready("broken")
    assert_cleaned_up(server, pid)


def test_bad_inputs_raise_typed_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServerStartError, match="is not a directory"):
        TritonServer(tmp_path / "missing").start()
    with pytest.raises(ServingError, match="poll mode"):
        TritonServer(tmp_path, models=["x"], poll=True)
    monkeypatch.setenv("MTQA_TRITONSERVER", str(tmp_path / "nope"))
    with pytest.raises(ServerNotFoundError, match="MTQA_TRITONSERVER"):
        TritonServer(tmp_path).start()


def test_auto_ports_are_repicked_when_taken(
    double_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A free port grabbed by someone else before Triton binds it makes the launcher retry."""
    from mtqa_serving import server as server_module

    busy = socket.socket()
    busy.bind(("0.0.0.0", 0))
    busy.listen()
    real, calls = server_module.free_ports, []

    def first_pick_taken(count: int) -> list[int]:
        calls.append(count)
        ports = real(count)
        return [busy.getsockname()[1], *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(server_module, "free_ports", first_pick_taken)
    try:
        with TritonServer(double_repo, models=["double"]) as server:
            pid = server.pid
            assert len(calls) == 2 and server.grpc_port != busy.getsockname()[1]
            np.testing.assert_array_equal(_double(server.grpc_url)[0], [0, 2, 4, 6])
    finally:
        busy.close()
    assert_cleaned_up(server, pid)


def test_server_started_by_a_worker_thread_outlives_the_thread(double_repo: Path) -> None:
    """PR_SET_PDEATHSIG follows the forking thread: it must not kill a server a thread started."""
    server = TritonServer(double_repo, models=["double"], startup_timeout=60)
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join(timeout=90)
    try:
        time.sleep(1.0)  # the kernel would deliver the death signal as the thread exits
        assert server.running and server.is_ready()
        np.testing.assert_array_equal(_double(server.grpc_url)[0], [0, 2, 4, 6])
    finally:
        pid = server.pid
        server.stop()
    assert_cleaned_up(server, pid)
