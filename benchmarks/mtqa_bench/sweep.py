"""The benchmark sweep behind `mtqa bench`: every (batching, variant, target, users) point through
Locust and perf_analyzer against a real Triton, then the peers (in-process ORT, naive server).

With `repo` the sweep starts its own server per batching setting on a view of the repository
(`repo_view`); with `url` it measures a running server as it is configured. Rows are written to
`results.json` in the output folder; `report.write_report` turns them into the report.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from mtqa.progress import NO_PROGRESS, Progress, stage
from mtqa_bench import ort_peer, payloads, perf, repo_view, server_stats
from mtqa_bench.errors import BenchError, ToolUnavailableError
from mtqa_bench.locust_run import run_locust
from mtqa_builder.contract import ENSEMBLE, NET
from mtqa_builder.triton_models.ov_plan import read_runtime
from mtqa_client import InspectionClient, InspectionError
from mtqa_client.control_key import CONTROL_KEY_ENV, control_headers
from mtqa_serving import TritonServer

TARGETS = ("inspect", "net")
PEERS = ("ort", "naive")


@dataclass
class BenchOptions:
    """Everything `mtqa bench` was asked for."""

    out: Path
    repo: Path | None = None
    url: str | None = None
    repo_info: Path | None = None  # with url: the repository that server serves
    users: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    duration: float = 10.0
    variants: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    batching: list[str] = field(default_factory=lambda: ["on", "off"])
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    checkpoint: Path | None = None
    perf_analyzer: bool = True
    request_batch: int = 1
    shared_memory: bool = False  # raw tensors through system shared memory (same host)
    image_px: int = 256
    image_format: str = "jpeg"
    startup_timeout: float = 240.0
    key: str | None = field(default=None, repr=False)  # control key of the --url server

    def validate(self) -> None:
        if (self.repo is None) == (self.url is None):
            raise BenchError("give either --repo DIR (start a server) or --url HOST:PORT")
        if not self.users or min(self.users) < 1:
            raise BenchError(f"--users must be positive integers, got {self.users}")
        if self.duration < 1:
            raise BenchError(f"--duration must be >= 1 second, got {self.duration:g}")
        bad = [b for b in self.batching if b not in ("on", "off")]
        if bad or not self.batching:
            raise BenchError(f"--batching takes on,off; got {self.batching}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise BenchError(f"--targets takes {','.join(TARGETS)}; got {self.targets}")
        bad = [p for p in self.peers if p not in PEERS]
        if bad:
            raise BenchError(f"--peers takes {','.join(PEERS)} (or none); got {self.peers}")
        if self.image_format not in payloads.FORMATS:
            raise BenchError(f"--image-format takes {sorted(payloads.FORMATS)}")
        if self.request_batch < 1:
            raise BenchError("--request-batch must be >= 1")


class Sweep:
    """One bench run: collects rows and notes, writes results.json."""

    def __init__(
        self,
        opts: BenchOptions,
        log: Callable[[str], None] = print,
        progress: Progress = NO_PROGRESS,
    ) -> None:
        opts.validate()
        self.opts, self.log, self.progress = opts, log, progress
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.raw = opts.out / "raw"
        self.raw.mkdir(parents=True, exist_ok=True)
        self.info_repo = opts.repo or opts.repo_info
        self.info = repo_view.inspect_repository(self.info_repo) if self.info_repo else None
        self.tool: perf.PerfAnalyzer | None = None
        self.key = opts.key  # the served server's control key (shared-memory registration)

    # -- set-up ----------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"note: {text}")

    def _variants(self) -> dict[str, str]:
        """precision -> mtqa_net version for the requested variants."""
        known = self.info.variants if self.info else {}
        chosen: dict[str, str] = {}
        for item in self.opts.variants:
            name, _, version = item.partition("=")
            if version:
                chosen[name] = version
            elif name in known:
                chosen[name] = known[name]
            else:
                where = f"the repository has {sorted(known)}" if known else "no --repo given"
                raise BenchError(
                    f"variant {name!r} has no mtqa_net version ({where}); use NAME=VERSION"
                )
        return chosen

    def _payloads(self) -> Path:
        info = self.info
        size = info.image_size if info else self._served_image_size()
        kwargs = {"mean": info.mean, "std": info.std} if info else {}
        if not info:
            self._note("normalisation unknown without --repo: tensors use mean 0.5 / std 0.25")
        folder = payloads.write_payloads(
            self.opts.out / "payloads",
            size=self.opts.image_px,
            fmt=self.opts.image_format,
            model_size=size,
            **kwargs,
        )
        payloads.perf_analyzer_inputs(folder, folder / "pa_inspect.json", "inspect")
        payloads.perf_analyzer_inputs(folder, folder / "pa_net.json", "net")
        return folder

    def _served_image_size(self) -> int:
        with InspectionClient(self.opts.url, connect_timeout_s=30) as client:
            size = client.net_spec().image_size
        if not size:
            raise BenchError(f"cannot read mtqa_net's image size from {self.opts.url}")
        return size

    def _perf_tool(self) -> perf.PerfAnalyzer | None:
        if not self.opts.perf_analyzer:
            self._note("perf_analyzer column skipped (--no-perf-analyzer)")
            return None
        try:
            tool = perf.ensure_perf_analyzer()
            self.log(f"perf_analyzer: {tool.binary}, from {tool.source}")
            return tool
        except ToolUnavailableError as exc:
            self._note(f"perf_analyzer column skipped: {exc}")
            return None

    @contextlib.contextmanager
    def _server(self, batching: str, variants: dict[str, str]) -> Iterator[tuple[str, dict]]:
        """Yield (grpc url, {precision: ensemble model}) for one batching setting."""
        if self.opts.url:
            yield self.opts.url, self._served_ensembles(variants)
            return

        view = repo_view.write_view(
            self.opts.repo, self.raw / f"view_batching_{batching}", batching == "on", variants
        )
        self.log(f"starting Triton on {view} (dynamic batching {batching})")
        with TritonServer(view, startup_timeout=self.opts.startup_timeout) as server:
            self.key = server.control.key
            yield server.grpc_url, {p: repo_view.ensemble_name(p) for p in variants}

    def _served_ensembles(self, variants: dict[str, str]) -> dict[str, str]:
        """Against --url only the ensemble's pinned variant can be measured end to end."""
        with grpcclient.InferenceServerClient(self.opts.url) as client:
            cfg = client.get_model_config(ENSEMBLE, as_json=True)["config"]
        steps = cfg.get("ensemble_scheduling", {}).get("step", [])
        pinned = next((str(s.get("model_version")) for s in steps if s["model_name"] == NET), "")
        out = {p: ENSEMBLE for p, v in variants.items() if v == pinned}
        if len(out) < len(variants):
            self._note(f"--url: mtqa_inspect pins mtqa_net v{pinned}; other variants run raw only")
        return out

    def _served_batching(self) -> str:
        with grpcclient.InferenceServerClient(self.opts.url) as client:
            cfg = client.get_model_config(NET, as_json=True)["config"]
        return "on" if "dynamic_batching" in cfg else "off"

    # -- points ------------------------------------------------------------------------------
    def _point(
        self, url: str, target: str, model: str, version: str, users: int, base: dict[str, Any]
    ) -> None:
        opts = self.opts
        tag = f"{base['batching']}_{base['variant']}_{target}_u{users}"
        options = {"payloads": self.payloads, "batch": opts.request_batch}
        shm = target == "net" and opts.shared_memory
        if target == "net":
            options["version"] = version
        else:
            options["model"] = model
        if shm:
            options["shared-memory"] = "system"
        base = {**base, "transport": "shm" if shm else "grpc"}
        user_class = "InspectUser" if target == "inspect" else "TensorUser"
        key = self.key if shm else None
        env = {**os.environ, CONTROL_KEY_ENV: key} if key else None
        before = server_stats.snapshot(url)
        prefix = self.raw / f"locust_{tag}"
        loc = run_locust(user_class, url, users, opts.duration, prefix, options, env=env)
        server = server_stats.difference(before, server_stats.snapshot(url), model, NET)
        if loc["requests"] == 0:
            self._note(f"locust {tag}: no request completed (see raw/locust_{tag}.log)")
        row = {**base, "source": "locust", "target": target, "users": users}
        row.update(_served_row(loc, opts.request_batch, server))
        row["transport"] = "shm" if row.pop("shm", 0.0) else "grpc"  # what the clients did
        self.rows.append(row)
        self.log(_describe(row))
        if self.tool is None:
            return
        kind = "inspect" if target == "inspect" else "net"
        try:
            pa = perf.run_point(
                self.tool,
                url,
                model,
                users,
                self.raw,
                version=version if target == "net" else "",
                batch=opts.request_batch,
                input_data=self.payloads / f"pa_{kind}.json",
                window_ms=max(1000, int(opts.duration * 1000 / 3)),
                output_shm_bytes=self._largest_output_bytes(url) if shm else 0,
                tag=tag,
                headers=control_headers(key),
            )
        except BenchError as exc:
            self._note(f"perf_analyzer {tag}: {exc}")
            return
        row = {**base, "source": "perf_analyzer", "target": target, "users": users}
        row.update(_perf_row(pa, opts.request_batch))
        self.rows.append(row)
        self.log(_describe(row))

    @functools.cache  # noqa: B019 - one sweep object, a handful of urls
    def _largest_output_bytes(self, url: str) -> int:
        """Bytes of mtqa_net's largest output (the masks) in one request: the size of
        perf_analyzer's shared-memory output regions."""
        with InspectionClient(url, connect_timeout_s=30) as client:
            spec = client.net_spec()
        side = spec.image_size or payloads.read_tensors(self.payloads).shape[-1]
        return self.opts.request_batch * len(spec.classes) * side * side * 4

    def _ort_peer(self, variants: dict[str, str]) -> None:
        if not self.info:
            self._note("in-process ORT peer skipped: needs --repo for the served model.onnx")
            return
        tensors = payloads.read_tensors(self.payloads)
        for variant, version in variants.items():
            batches = {1, self.opts.request_batch}
            batches |= {
                max(1, round(r["net_batch"]))
                for r in self.rows
                if r["variant"] == variant and r["source"] == "locust" and r.get("net_batch")
            }
            onnx = self.info_repo / NET / version / "model.onnx"
            runtime = read_runtime(onnx.parent)["runtime"]
            if runtime != "onnxruntime":  # the ORT peer would time another runtime on its file
                self._note(f"in-process ORT peer skipped for {variant}: it runs on {runtime}")
                continue
            # One busy session per request in flight, up to the server's instance count.
            points = list(itertools.product(sorted(batches), sorted({1, self.info.instances})))
            with stage(self.progress, f"ort peer {variant}", total=len(points)) as measuring:
                for batch, sessions in points:
                    res = ort_peer.measure(
                        onnx,
                        tensors,
                        batch,
                        self.info.intra_op_threads,
                        min(self.opts.duration, 5),
                        instances=sessions,
                        lanes=self.info.lane_sessions,
                        chunk=self.info.chunk_images,
                    )
                    row = {"source": "ort", "target": "net", "variant": variant}
                    row.update({"batching": "n/a", "users": sessions, "batch": batch})
                    row.update({"net_batch": batch, **res})
                    self.rows.append(row)
                    self.log(_describe(row))
                    measuring.advance()

    def _naive_peer(self) -> None:
        ckpt = self.opts.checkpoint or (self.info.checkpoint if self.info else None)
        if ckpt is None:
            self._note("naive peer skipped: no run directory (give --run)")
            return
        port = _free_port()
        log = open(self.raw / "naive_server.log", "wb")  # noqa: SIM115 - outlives the with below
        cmd = [sys.executable, "-m", "mtqa_bench.naive_server", "--checkpoint", str(ckpt)]
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            host = f"http://127.0.0.1:{port}"
            _wait_http(f"{host}/health", proc, self.opts.startup_timeout)
            with stage(self.progress, "naive peer", total=len(self.opts.users)) as measuring:
                for users in self.opts.users:
                    loc = run_locust(
                        "NaiveUser",
                        host,
                        users,
                        self.opts.duration,
                        self.raw / f"locust_naive_u{users}",
                        {"payloads": self.payloads},
                    )
                    row = {"source": "naive", "target": "inspect", "variant": "fp32 eager"}
                    row.update({"batching": "n/a", "users": users, "batch": 1, **loc})
                    row["throughput"] = _successful(loc, 1)
                    self.rows.append(row)
                    self.log(_describe(row))
                    measuring.advance()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> Path:
        """Run the whole sweep and write `results.json`; returns its path.

        Errors from tritonclient or the SDK (server gone, model missing) become BenchError.
        """
        try:
            return self._run()
        except (InferenceServerException, InspectionError) as exc:
            raise BenchError(f"server error during the bench: {exc}") from exc

    def _run(self) -> Path:
        opts = self.opts
        variants = self._variants()
        self.payloads = self._payloads()
        self.tool = self._perf_tool()
        settings = opts.batching
        if opts.url:
            served = self._served_batching()
            if served not in settings:
                self._note(f"--url serves batching {served}; {settings} cannot be changed there")
            settings = [served]
        started = time.time()
        points = len(settings) * len(variants) * len(opts.targets) * len(opts.users)
        estimate = sweep_estimate(points, opts.duration, self.tool is not None)
        with stage(self.progress, "sweep", total=points, detail=estimate) as sweeping:
            for batching in settings:
                with self._server(batching, variants) as (url, ensembles):
                    for variant, version in variants.items():
                        base = {"variant": variant, "batching": batching, "version": version}
                        for target in opts.targets:
                            if target == "inspect" and variant not in ensembles:
                                sweeping.advance(len(opts.users))  # not served: nothing to wait
                                continue
                            model = ensembles.get(variant, "") if target == "inspect" else NET
                            for users in opts.users:
                                self._point(url, target, model, version, users, base)
                                sweeping.advance()
            sweeping.detail = f"{len(self.rows)} rows"
        # A peer that cannot run costs its column, not the served measurements above.
        if "ort" in opts.peers:
            try:
                self._ort_peer(variants)
            except (BenchError, OSError, RuntimeError) as exc:
                self._note(f"in-process ORT peer failed: {exc}")
        if "naive" in opts.peers:
            try:
                self._naive_peer()
            except BenchError as exc:
                self._note(f"naive peer failed: {exc} (log: {self.raw / 'naive_server.log'})")
        meta = {
            "options": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in asdict(opts).items()
                if k != "key"  # a secret: never written to the results
            },
            "variants": variants,
            "seconds": round(time.time() - started, 1),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        }
        path = opts.out / "results.json"
        path.write_text(
            json.dumps({"meta": meta, "notes": self.notes, "rows": self.rows}, indent=1)
        )
        return path


def sweep_estimate(points: int, duration: float, perf_analyzer: bool) -> str:
    """The sweep's size and expected time, stated before it starts: each point runs Locust for
    `duration` s and, with perf_analyzer, three windows of duration / 3 s more (start-up, server
    starts and peers come on top)."""
    per_point = duration * (2 if perf_analyzer else 1)
    seconds = points * per_point
    took = f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
    tools = "Locust + perf_analyzer" if perf_analyzer else "Locust"
    plural = "s" if points != 1 else ""
    return f"{points} point{plural} x {per_point:g} s ({tools}): at least {took}"


def _served_row(loc: dict[str, float], batch: int, server: server_stats.ServerTimes) -> dict:
    row = dict(loc, batch=batch, throughput=_successful(loc, batch))
    row.update(
        server_ms=server.request_ms,
        queue_ms=server.queue_ms,
        compute_ms=server.compute_ms,
        net_batch=server.net_batch,
    )
    if "rpc_ms" in loc:
        row["network_ms"] = max(0.0, loc["rpc_ms"] - server.request_ms)
    return row


def _successful(loc: dict[str, float], batch: int) -> float:
    """Images/s of successful requests only: a failing server must not look fast."""
    ok = 1.0 - loc["failures"] / loc["requests"] if loc["requests"] else 0.0
    return loc["rps"] * ok * batch


def _perf_row(pa: perf.PerfPoint, batch: int) -> dict:
    return {
        "batch": batch,
        "throughput": pa.throughput,
        "p50_ms": pa.p50_ms,
        "p95_ms": pa.p95_ms,
        "p99_ms": pa.p99_ms,
        "client_ms": pa.client_send_ms + pa.client_recv_ms,
        "network_ms": pa.network_ms,
        "queue_ms": pa.server_queue_ms,
        "compute_ms": pa.server_compute_ms,
    }


def _describe(row: dict) -> str:
    return (
        f"{row['source']:>13} {row['target']:>7} {row['variant']:>10} batching={row['batching']:<3}"
        f" users={row['users']:<3} batch={row['batch']:<3} {row['throughput']:8.1f} img/s"
        f"  p50 {row['p50_ms']:7.1f}  p99 {row['p99_ms']:7.1f} ms"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"naive server exited with code {proc.returncode} during start-up")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"naive server not ready at {url} within {timeout:g} s")
