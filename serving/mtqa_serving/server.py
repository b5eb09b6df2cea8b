"""`TritonServer`: start a real `tritonserver` on a model repository, wait for it, control, stop.

The server runs in its own process group with its output in a log file. Every wait is bounded: a
python-backend stub that cannot start makes Triton hang instead of exiting, so a start that does
not become ready in `startup_timeout` seconds is killed (whole group) and reported with the log
tail. Stopping removes the python backend's shared-memory regions of this server only.

Every server follows the security policy of `mtqa_serving.security`: loopback unless `listen`
widens it, and the admin protocols restricted by a control key (generated when none is given,
written to a 0600 file the server's own tools and `mtqa swap` read).
"""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mtqa_client.control_key import CONTROL_HEADER
from mtqa_serving import http_api, shm
from mtqa_serving.binary import backend_directory, find_tritonserver
from mtqa_serving.errors import ModelControlError, ServerStartError, ServingError
from mtqa_serving.ports import free_ports
from mtqa_serving.security import (
    ADMIN_PROTOCOLS,
    LOOPBACK,
    RestrictedProtocols,
    SecurityConfigError,
    TlsConfig,
    listen_policy,
    new_key,
    write_key_file,
)

_log = logging.getLogger(__name__)
_ERROR_LINE = re.compile(r"^E\d{4} ")
_HARMLESS = ("CudaDriverHelper has not been initialized",)  # every start on a CPU-only host
_PORT_CLASH = "already in use"  # gRPC: "Address already in use"; HTTP: "Socket ... already in use"
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], object] | None:
    """Return a pre-exec hook that makes the server get SIGTERM if our process dies (Linux).

    The kernel ties PR_SET_PDEATHSIG to the *thread* that forked, so the hook is only used from
    the main thread: a server started by a worker thread would otherwise die with that thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, called after
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class TritonServer:
    """A local `tritonserver` process serving one model repository.

    Ports given as 0 are picked free (and re-picked if another process takes them first).
    `models=None` loads every model in the repository, an empty list loads none (explicit model
    control; use `load`/`unload`); `poll=True` lets Triton poll the repository instead.
    `model_control=False` runs Triton with model control off (every model loaded at start, no
    load/unload). URLs are `host:port` for tritonclient (`grpc_url`, `http_url`) and a full URL
    for `metrics_url`.

    Security (checked here, before anything starts; SecurityConfigError): endpoints bind to
    `listen` (default 127.0.0.1); the admin protocols need `key` on both gRPC and HTTP (a random
    key when None; `control` holds the header and key, `key_file` the 0600 file holding it while
    the server runs); a non-loopback `listen` needs `tls` or `insecure=True`, and with model
    control on a `key` given by the caller. `restricted` adds restrictions on other protocols.
    """

    def __init__(
        self,
        repo: Path | str,
        grpc_port: int = 0,
        http_port: int = 0,
        metrics_port: int = 0,
        models: Iterable[str] | None = None,
        tls: TlsConfig | None = None,
        restricted: RestrictedProtocols | None = None,
        startup_timeout: float = 60.0,
        poll: bool = False,
        poll_secs: int = 5,
        log_verbose: int = 0,
        exit_timeout: int = 10,
        *,
        listen: str = LOOPBACK,
        model_control: bool = True,
        key: str | None = None,
        insecure: bool = False,
    ) -> None:
        self.repo = Path(repo).resolve()
        self.models = None if models is None else list(models)
        if poll and self.models is not None:
            raise ServingError("poll mode loads every model in the repository; do not name models")
        if not model_control and (poll or self.models is not None):
            raise ServingError(
                "with model control off every model loads at start: do not name models or poll"
            )
        self.model_control = model_control
        self.tls = tls
        self.listen = listen
        self.exposure = listen_policy(
            listen,
            tls=tls is not None,
            insecure=insecure,
            model_control=model_control,
            key_given=key is not None,
        )
        self.control = RestrictedProtocols(CONTROL_HEADER, key or new_key(), ADMIN_PROTOCOLS)
        if restricted is not None:
            shared = sorted(set(restricted.protocols) & set(ADMIN_PROTOCOLS))
            if shared:
                raise SecurityConfigError(
                    f"{', '.join(shared)} are restricted by the control key already;"
                    " `restricted` may only add other protocols"
                )
        self.restricted = restricted
        self.startup_timeout = startup_timeout
        self.poll = poll
        self.poll_secs = poll_secs
        self.log_verbose = log_verbose
        self.exit_timeout = exit_timeout
        self._requested = (grpc_port, http_port, metrics_port)
        self.grpc_port, self.http_port, self.metrics_port = self._requested
        self.shm_prefix = shm.unique_prefix()
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log_path: Path | None = None
        self._final_log = ""
        self._exit_code: int | None = None
        self._pid: int | None = None
        self._key_file: Path | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def grpc_url(self) -> str:
        return f"{_connect_host(self.exposure.grpc)}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{_connect_host(self.exposure.http)}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_connect_host(self.exposure.metrics)}:{self.metrics_port}/metrics"

    @property
    def key_file(self) -> Path | None:
        """The 0600 file holding the control key while the server runs (removed by `stop`)."""
        return self._key_file

    @property
    def pid(self) -> int | None:
        """Process (and process-group) id of the latest server process; kept after `stop`."""
        return self._pid

    @property
    def exit_code(self) -> int | None:
        """The server's exit status once it has exited, None while it runs or before start."""
        return self._proc.poll() if self._proc is not None else self._exit_code

    @property
    def log_path(self) -> Path | None:
        """The server's log file while it runs (removed by `stop`; `log_tail` still works)."""
        return self._log_path

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> TritonServer:
        """Start the server and return once it (and every requested model) is ready."""
        if self._proc is not None:
            raise ServingError(f"server already running (pid {self.pid})")
        if not self.repo.is_dir():
            raise ServerStartError(f"model repository {self.repo} is not a directory")
        if self.exposure.warning:
            _log.warning(self.exposure.warning)
        binary = find_tritonserver()
        if self.poll:
            # The stub runs isolated (ignores PYTHONDONTWRITEBYTECODE) and writes __pycache__ into
            # version folders, which poll mode sees as a change and reloads: compile up front.
            compileall.compile_dir(self.repo, quiet=2)
        auto_ports = 0 in self._requested
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._launch(binary)
                self._wait_ready()
                return self
            except ServerStartError:  # _fail already stopped everything
                clash = _PORT_CLASH in self.log_tail(200)
                if not (auto_ports and clash and attempt < _PORT_ATTEMPTS):
                    raise
            except BaseException:  # Ctrl-C or SIGTERM mid-start: leave nothing behind
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self, binary: Path) -> None:
        """Pick ports, prepare the work folder and spawn the server in its own process group."""
        self._workdir = Path(tempfile.mkdtemp(prefix="mtqa-triton-"))
        self._log_path = self._workdir / "tritonserver.log"
        self._key_file = write_key_file(self._workdir / "control.key", self.control.key)
        picked = iter(free_ports(3))
        self.grpc_port, self.http_port, self.metrics_port = (
            p or next(picked) for p in self._requested
        )
        cmd = self._command(binary, backend_directory(binary, self._workdir))
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )
        self._pid = self._proc.pid

    def _command(self, binary: Path, backends: Path) -> list[str]:
        cmd = [
            str(binary),
            f"--model-repository={self.repo}",
            f"--backend-directory={backends}",
            f"--http-address={self.exposure.http}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.exposure.grpc}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.exposure.metrics}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            # p50/p99 per model (nv_inference_request_summary_us) for the latency alerts
            "--metrics-config=summary_latencies=true",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={self.exit_timeout}",
            f"--log-verbose={self.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        if not self.model_control:
            cmd.append("--model-control-mode=none")
        elif self.poll:
            cmd += ["--model-control-mode=poll", f"--repository-poll-secs={self.poll_secs}"]
        else:
            cmd.append("--model-control-mode=explicit")
            names = ["*"] if self.models is None else self.models
            cmd += [f"--load-model={name}" for name in names]
        if self.tls is not None:
            cmd += self.tls.server_args()
        cmd += self.control.server_args()
        if self.restricted is not None:
            cmd += self.restricted.server_args()
        return cmd

    @staticmethod
    def _environment() -> dict[str, str]:
        """The stub finds the venv's packages through the venv's bin first on PATH."""
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)  # not resolved: the venv's own bin
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
        libdir = sysconfig.get_config_var("LIBDIR")
        if libdir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        ready_url = f"http://{self.http_url}/v2/health/ready"
        while True:
            code = self._proc.poll()
            if code is not None:
                self._fail(f"tritonserver exited with code {code} during start-up")
            if http_api.is_ok(ready_url, timeout=1.0):
                break
            if time.monotonic() > deadline:
                self._fail(
                    f"tritonserver was not ready within {self.startup_timeout:g} s"
                    " (a python-backend stub that cannot start makes it hang)"
                )
            time.sleep(0.1)
        for name in self.models or []:
            if not self.model_ready(name):
                self._fail(f"model {name!r} is not ready after start-up")

    def _fail(self, reason: str) -> None:
        """Stop everything this start created and raise ServerStartError with the log's cause."""
        self.stop()
        lines = self._final_log.splitlines()
        errors = [
            line
            for line in lines
            if _ERROR_LINE.match(line) and not any(h in line for h in _HARMLESS)
        ][-10:]
        message = [reason]
        if errors:
            message += ["errors:", *errors]
        message += ["--- tritonserver log (tail) ---", *lines[-25:]]
        raise ServerStartError("\n".join(message))

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL to the group), remove its shm and work files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=self.exit_timeout + 5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            self._exit_code = proc.wait()  # reap the leader first: its zombie keeps the group
            _kill_group(proc.pid)
            shm.remove_regions(self.shm_prefix)
        if self._log_path is not None and self._log_path.is_file():
            self._final_log = self._log_path.read_text(errors="replace")
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = self._log_path = self._key_file = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server log (kept after `stop`)."""
        if self._log_path is not None and self._log_path.is_file():
            text = self._log_path.read_text(errors="replace")
        else:
            text = self._final_log
        return "\n".join(text.splitlines()[-lines:])

    # -- model control -----------------------------------------------------------------------
    def _control_headers(self) -> dict[str, str]:
        return self.control.http_headers()

    def _require_running(self) -> None:
        if not self.running:
            raise ServingError("server is not running")

    def _require_model_control(self) -> None:
        if not self.model_control:
            raise ModelControlError("model control is off on this server (model_control=False)")

    def is_ready(self) -> bool:
        """True when the server answers /v2/health/ready."""
        return self.running and http_api.is_ok(f"http://{self.http_url}/v2/health/ready")

    def model_ready(self, name: str) -> bool:
        """True when model `name` is loaded and ready."""
        return http_api.is_ok(f"http://{self.http_url}/v2/models/{quote(name, safe='')}/ready")

    def load(self, name: str) -> None:
        """Load (or reload, picking up new versions) model `name`; blocks until done."""
        self._require_running()
        self._require_model_control()
        url = f"http://{self.http_url}/v2/repository/models/{quote(name, safe='')}/load"
        http_api.post(url, self._control_headers(), self.startup_timeout, f"load model {name!r}")
        if not self.model_ready(name):
            raise ModelControlError(f"model {name!r} is not ready after loading")

    def unload(self, name: str) -> None:
        """Unload model `name` and wait (bounded) until it no longer answers ready."""
        self._require_running()
        self._require_model_control()
        url = f"http://{self.http_url}/v2/repository/models/{quote(name, safe='')}/unload"
        http_api.post(url, self._control_headers(), self.startup_timeout, f"unload model {name!r}")
        deadline = time.monotonic() + self.startup_timeout
        while self.model_ready(name):
            if time.monotonic() > deadline:
                raise ModelControlError(
                    f"model {name!r} still ready {self.startup_timeout:g} s after unload"
                )
            time.sleep(0.05)

    def repository_index(self) -> list[dict[str, Any]]:
        """Triton's repository index: one dict (name, version, state, reason) per model."""
        self._require_running()
        url = f"http://{self.http_url}/v2/repository/index"
        return http_api.post(url, self._control_headers(), 10.0, "repository index") or []


def _connect_host(bound: str) -> str:
    """Where a local client reaches an endpoint bound to `bound` (0.0.0.0 includes loopback)."""
    return LOOPBACK if bound == "0.0.0.0" else bound


def _kill_group(pgid: int, timeout: float = 5.0) -> None:
    """SIGKILL every process left in group `pgid` (stubs) and wait until none remains."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:
            return  # the group id was reused by someone else's process: not ours to kill
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
