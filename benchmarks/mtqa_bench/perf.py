"""perf_analyzer: find (or fetch) the binary, run it at one concurrency, parse its CSV.

First choice is an installed perf_analyzer that starts here: the binary of PyPI's
`perf-analyzer` package (`pip install perf-analyzer`; 2.58+ are built for glibc >= 2.38, and on
an older glibc pip picks the 0.1.0 placeholder, which has none), then one on PATH (NGC's SDK
image). Otherwise the fallback: the binary inside the `tritonclient==2.51.0` wheel, which runs on
glibc 2.36. That wheel is only downloaded (`pip download --no-deps`, never installed: it would
downgrade protobuf) into a cache folder; the binary is extracted and given `libb64.so.0d` and
`libcudart.so.12` from `nvidia_pytriton.libs`, whose files carry hashed names, via symlinks.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mtqa_bench.errors import BenchError, ToolUnavailableError

WHEEL_VERSION = "2.51.0"
_MEMBER = f"tritonclient-{WHEEL_VERSION}.data/data/bin/perf_analyzer"
_LIBS = {"libb64.so.0d": "libb64-", "libcudart.so.12": "libcudart-"}
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtqa" / "perf"


@dataclass(frozen=True)
class PerfAnalyzer:
    """A runnable perf_analyzer binary, the library folder it needs (None: the system's), and
    where it came from (for the log)."""

    binary: Path
    lib_dir: Path | None = None
    source: str = ""

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.lib_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env


def installed_binaries() -> list[tuple[Path, str]]:
    """Installed perf_analyzer binaries, preferred first, each with where it came from."""
    found: list[tuple[Path, str]] = []
    spec = importlib.util.find_spec("perf_analyzer")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "bin" / "perf_analyzer"
        if binary.is_file():  # the 0.1.0 placeholder has no bin/
            found.append((binary, "the perf-analyzer package"))
    on_path = shutil.which("perf_analyzer")
    # With the package installed, PATH holds its console script: a wrapper of the same binary
    # that always exits 0. Only a perf_analyzer on PATH without the package counts.
    if on_path and not found:
        found.append((Path(on_path), f"PATH ({on_path})"))
    return found


def start_problem(tool: PerfAnalyzer) -> str | None:
    """Why `tool` does not start here (the loader's or its own words), or None when it does."""
    try:
        probe = subprocess.run(
            [str(tool.binary), "--version"],
            capture_output=True,
            text=True,
            env=tool.env(),
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode == 0 and "Perf Analyzer" in probe.stdout + probe.stderr:
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines()
    return lines[0] if lines else f"exit code {probe.returncode}"


def _pytriton_libs() -> Path:
    # Deferred: pytriton (the `serve` extra, ~0.5 s to import) is loaded only to find its libs.
    import pytriton

    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    if not libs.is_dir():
        raise ToolUnavailableError(f"nvidia_pytriton.libs not found at {libs}")
    return libs


def _link_libs(lib_dir: Path) -> None:
    libs = _pytriton_libs()
    lib_dir.mkdir(parents=True, exist_ok=True)
    for name, prefix in _LIBS.items():
        found = sorted(libs.glob(f"{prefix}*"))
        if not found:
            raise ToolUnavailableError(f"{prefix}*.so not in {libs}; perf_analyzer cannot load")
        link = lib_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found[0])


def _download_wheel(cache: Path) -> Path:
    wheels = sorted(cache.glob(f"tritonclient-{WHEEL_VERSION}-*.whl"))
    if wheels:
        return wheels[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache)]
    proc = subprocess.run(
        [*cmd, f"tritonclient=={WHEEL_VERSION}"], capture_output=True, text=True, timeout=300
    )
    wheels = sorted(cache.glob(f"tritonclient-{WHEEL_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolUnavailableError(
            f"could not download tritonclient=={WHEEL_VERSION} for perf_analyzer: {' '.join(tail)}"
        )
    return wheels[0]


def ensure_perf_analyzer(cache: Path = DEFAULT_CACHE) -> PerfAnalyzer:
    """Return a runnable perf_analyzer: an installed one that starts, else the fallback fetched
    into `cache` on first use. Its `source` says which, and why an installed one was passed over.

    Raises ToolUnavailableError (with the reason) when it cannot be had or does not start.
    """
    passed_over = []
    for binary, where in installed_binaries():
        tool = PerfAnalyzer(binary, None, where)
        problem = start_problem(tool)
        if problem is None:
            return tool
        passed_over.append(f"{where} does not start here: {problem}")
    tool = _wheel_perf_analyzer(cache)
    source = f"the tritonclient=={WHEEL_VERSION} wheel"
    return PerfAnalyzer(tool.binary, tool.lib_dir, "; ".join([source, *passed_over]))


def _wheel_perf_analyzer(cache: Path) -> PerfAnalyzer:
    """The fallback: perf_analyzer out of the tritonclient wheel, with pytriton's libraries."""
    cache.mkdir(parents=True, exist_ok=True)
    binary, lib_dir = cache / "bin" / "perf_analyzer", cache / "lib"
    if not binary.is_file():
        wheel = _download_wheel(cache)
        binary.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf, zf.open(_MEMBER) as src, open(binary, "wb") as dst:
            shutil.copyfileobj(src, dst)
        binary.chmod(0o755)
    _link_libs(lib_dir)
    tool = PerfAnalyzer(binary, lib_dir)
    problem = start_problem(tool)
    if problem is not None:
        raise ToolUnavailableError(f"perf_analyzer cannot start: {problem}")
    return tool


@dataclass(frozen=True)
class PerfPoint:
    """perf_analyzer's figures at one concurrency (latencies in ms, throughput in inferences/s)."""

    concurrency: int
    throughput: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    client_send_ms: float
    client_recv_ms: float
    network_ms: float
    server_queue_ms: float
    server_compute_ms: float


def parse_csv(path: Path) -> PerfPoint:
    """Parse the `-f` CSV of a single-concurrency run (times there are in microseconds)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise BenchError(f"perf_analyzer wrote no measurement to {path}")
    row = rows[-1]

    def ms(key: str) -> float:
        return float(row.get(key) or 0.0) / 1000.0

    compute = sum(
        ms(k) for k in ("Server Compute Input", "Server Compute Infer", "Server Compute Output")
    )
    return PerfPoint(
        concurrency=int(float(row["Concurrency"])),
        throughput=float(row["Inferences/Second"]),
        p50_ms=ms("p50 latency"),
        p90_ms=ms("p90 latency"),
        p95_ms=ms("p95 latency"),
        p99_ms=ms("p99 latency"),
        client_send_ms=ms("Client Send"),
        client_recv_ms=ms("Client Recv"),
        network_ms=ms("Network+Server Send/Recv"),
        server_queue_ms=ms("Server Queue"),
        server_compute_ms=compute,
    )


def run_point(
    tool: PerfAnalyzer,
    url: str,
    model: str,
    concurrency: int,
    work: Path,
    *,
    version: str = "",
    batch: int = 1,
    input_data: Path | None = None,
    window_ms: int = 3000,
    output_shm_bytes: int = 0,
    timeout_s: float = 300.0,
    tag: str = "",
    headers: dict[str, str] | None = None,
) -> PerfPoint:
    """Measure `model` over gRPC at one concurrency with a closed loop of synchronous requests.

    `output_shm_bytes` > 0 passes inputs and outputs through system shared memory (regions of
    that many bytes per output), as the SDK's `shared_memory=True` does. Files go to `work` as
    `perf_<tag or model>_c<concurrency>.csv|.log`.
    """
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"perf_{tag or model}_c{concurrency}.csv"
    cmd = [
        str(tool.binary),
        "-m",
        model,
        "-u",
        url,
        "-i",
        "grpc",
        "-b",
        str(batch),
        "--concurrency-range",
        f"{concurrency}:{concurrency}",
        "--measurement-interval",
        str(window_ms),
        # A shared machine rarely holds 10 % over three windows; accept (almost) any three so a
        # point takes a bounded time (the figures are the average of the last three windows).
        "--stability-percentage",
        "1000",
        "--max-trials",
        "5",
        "-f",
        str(out),
    ]
    if version:
        cmd += ["-x", version]
    if input_data is not None:
        cmd += ["--input-data", str(input_data)]
    if output_shm_bytes:
        cmd += ["--shared-memory", "system", "--output-shared-memory-size", str(output_shm_bytes)]
    for name, value in (headers or {}).items():  # e.g. the control key shm registration needs
        cmd += ["-H", f"{name}:{value}"]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=tool.env(), timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"perf_analyzer on {model} at concurrency {concurrency} timed out"
        ) from None
    (work / f"{out.stem}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.is_file():
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
        raise BenchError(f"perf_analyzer failed on {model} (rc {proc.returncode}): {tail}")
    return parse_csv(out)
