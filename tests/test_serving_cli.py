"""`mtqa serve` as a user runs it: real server, addresses printed, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fixtures.serving import (
    DOUBLE_SOURCE,
    HANGING_SOURCE,
    assert_cleaned_up,
    listening_sockets,
    loopback_address,
    stray_processes,
    write_python_model,
)
from tritonclient.utils import InferenceServerException

from mtqa_serving import CONTROL_KEY_ENV, TritonServer, control_headers
from mtqa_serving.certs import write_dev_pki

pytestmark = pytest.mark.server

MTQA = [sys.executable, "-m", "mtqa_cli.main", "serve"]


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> dict[str, str]:
    """Read the command's output until `pattern` matched, returning the lines seen by key."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        parts = line.split()
        if len(parts) >= 2:
            seen[parts[0]] = parts[1]
        if re.search(pattern, line):
            return seen
    proc.kill()
    raise AssertionError(f"`mtqa serve` never printed {pattern!r}; saw {seen}")


def test_serve_command_runs_until_sigterm(double_repo: Path) -> None:
    cmd = [*MTQA, "--repo", str(double_repo), "--model", "double"]
    cmd += ["--grpc-port", "0", "--http-port", "0", "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = _read_until(proc, r"^\s+pid\s+\d+", timeout=60)
        assert all(seen[k].startswith("127.0.0.1:") for k in ("grpc", "http"))
        sockets = listening_sockets(int(seen["pid"]))  # read from /proc: no traffic sent
        assert len(sockets) >= 3 and all(loopback_address(a) for a, _ in sockets), sockets
        client = grpcclient.InferenceServerClient(seen["grpc"])
        assert client.is_model_ready("double") and not client.is_model_ready("double_b")
        assert urllib.request.urlopen(seen["metrics"], timeout=5).status == 200
        assert seen["control"] == "on"  # --model needs explicit control: behind the key
        key_file = Path(seen["keyfile"])
        assert key_file.stat().st_mode & 0o777 == 0o600
        with pytest.raises(InferenceServerException, match="restricted"):
            client.load_model("double_b")
        key = key_file.read_text().strip()
        client.load_model("double_b", headers=control_headers(key))
        assert client.is_model_ready("double_b")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert key not in proc.stdout.read()  # the key is never echoed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not stray_processes(int(seen["pid"])) and not key_file.exists()


def test_serve_command_with_mtls_and_restricted_control(double_repo: Path, tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path / "pki")
    cmd = [*MTQA, "--repo", str(double_repo), "--model", "double", "--metrics-port", "0"]
    cmd += ["--grpc-port", "0", "--http-port", "0", "--model-control"]
    cmd += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    cmd += ["--tls-ca", str(pki.ca)]
    env = {**os.environ, CONTROL_KEY_ENV: "k3y"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        seen = _read_until(proc, r"^\s+pid\s+\d+", timeout=60)
        client = grpcclient.InferenceServerClient(
            seen["grpc"],
            ssl=True,
            root_certificates=str(pki.ca),
            private_key=str(pki.client_key),
            certificate_chain=str(pki.client_cert),
        )
        with pytest.raises(InferenceServerException, match="restricted"):
            client.load_model("double_b")
        client.load_model("double_b", headers={"triton-grpc-protocol-mtqa-control-key": "k3y"})
        assert client.is_model_ready("double_b")
        plain = grpcclient.InferenceServerClient(seen["grpc"])
        with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
            plain.is_server_live(client_timeout=5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not stray_processes(int(seen["pid"]))


def _processes_mentioning(text: str) -> list[str]:
    """Command lines in the process table that contain `text` (a test's unique tmp path)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and proc.name.isdigit():
            found.append(cmdline)
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_startup_leaves_nothing(signum: int, tmp_path: Path) -> None:
    write_python_model(tmp_path, "hangs", HANGING_SOURCE)
    cmd = [*MTQA, "--repo", str(tmp_path), "--grpc-port", "0", "--http-port", "0"]
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then keeps ignoring it (no KeyboardInterrupt): give the server the default back.
    proc = subprocess.Popen(
        [*cmd, "--metrics-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not any("tritonserver" in c for c in _processes_mentioning(str(tmp_path))):
        assert time.monotonic() < deadline and proc.poll() is None, "server never started"
        time.sleep(0.1)
    proc.send_signal(signum)
    try:
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopping tritonserver" in proc.stderr.read()
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [  # 3: an input error (mtqa_cli.exits), 1: options the launcher refuses together
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key are both required", 3),
        (["--key-file", "missing.key"], "cannot read the control key file", 3),
        (["--poll", "--model", "double"], "poll mode loads every model", 1),
        (["--listen", "0.0.0.0"], "refusing to listen on 0.0.0.0 without TLS", 3),
        (["--listen", "0.0.0.0", "--insecure", "--poll"], "model control on and no control key", 3),
        (["--repo", "does-not-exist"], "no such folder", 3),
    ],
)
def test_serve_command_reports_bad_input(
    args: list[str], message: str, code: int, double_repo: Path, tmp_path: Path
) -> None:
    cmd = [*MTQA, "--repo", str(double_repo), *args]
    env = {**os.environ, "MTQA_TRITONSERVER": "/nonexistent/tritonserver"}  # refused pre-launch
    env.pop(CONTROL_KEY_ENV, None)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_poll_mode_picks_up_a_new_version(tmp_path: Path) -> None:
    write_python_model(tmp_path, "double", DOUBLE_SOURCE)
    with TritonServer(tmp_path, poll=True, poll_secs=1) as server:
        pid = server.pid
        client = grpcclient.InferenceServerClient(server.grpc_url)
        inp = grpcclient.InferInput("x", [1, 4], "FP32")
        inp.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        assert client.infer("double", [inp]).as_numpy("y")[0, 0] == 2
        time.sleep(2.5)  # two polls: the stub's bytecode must not look like a repository change
        log = server.log_tail(500)
        assert log.count("loading: double:1") == 1 and "unloaded" not in log, "spurious reload"
        version2 = tmp_path / "double" / "2"
        version2.mkdir()
        source = (tmp_path / "double" / "1" / "model.py").read_text()
        (version2 / "model.py").write_text(source.replace("x * 2", "x * 3"))
        deadline = time.monotonic() + 30
        while client.infer("double", [inp]).as_numpy("y")[0, 0] != 3:
            assert time.monotonic() < deadline, "poll mode did not serve version 2 within 30 s"
            time.sleep(0.2)
    assert_cleaned_up(server, pid)
    assert not os.path.exists(f"/proc/{pid}")
