"""CPU throughput of each precision variant, ONNX Runtime and OpenVINO side by side.

Reads the network's `variants.json` and every listed version's `model.onnx` and `manifest.json`
(local or ngc-onnx targets), times batches of `--batch` images on the version's runtime (ORT's
CPU provider, or OpenVINO for the `ov-*` versions) and prints images/s, the speed-up over FP32
and the per-head gate drops. `--openvino` adds OpenVINO runs of the repository's fp32 and int8
files (ov-fp32, ov-bf16, ov-int8; not gated). `--preset NAME` needs no repository: it exports an
untrained network of that preset (speed does not depend on the weights) and runs ORT FP32/INT8
and OpenVINO FP32/BF16/INT8 on it. The CPU's features and OpenVINO's capabilities are printed.

    python -m mtqa_bench.precision_speed --repo model_repository --batch 32
    python -m mtqa_bench.precision_speed --repo model_repository --threads 1 --sessions 2
    python -m mtqa_bench.precision_speed --repo model_repository --threads 1 --lanes 2 --chunk 4
    python -m mtqa_bench.precision_speed --repo model_repository --threads 1 --profile
    python -m mtqa_bench.precision_speed --repo model_repository --openvino
    python -m mtqa_bench.precision_speed --preset neu --batch 8 --threads 2

`--profile` adds, per ORT variant, where a batch's time goes by operator type (ONNX Runtime's own
profiler, kernel time only).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtqa_bench import ort_peer
from mtqa_builder import contract
from mtqa_builder import openvino_variants as ovv
from mtqa_builder.contract import NET
from mtqa_builder.triton_models import ov_plan
from mtqa_builder.triton_models.ort_plan import open_runner

HEADS = ("presence", "segmentation", "grade")


@dataclass(frozen=True)
class Arrangement:
    """How every variant runs: `sessions` batches at once (one per local server instance), each
    through `ort_plan.LaneRunner` over `lanes` ORT sessions of `threads` threads in chunks of
    `chunk` images (`lanes` 1 and `chunk` 0: one plain ORT call a batch)."""

    threads: int = 2
    sessions: int = 1
    lanes: int = 1
    chunk: int = 0


def _runner(onnx_path: Path, runtime: dict, arr: Arrangement):
    """The runner the local mtqa_net opens for this version: ORT lanes, or one OpenVINO model
    with `lanes` streams sharing `lanes x threads` threads (net_model.py)."""
    if runtime.get("runtime") == ov_plan.RUNTIME:
        precision = runtime["inference_precision"]
        return ov_plan.open_runner(
            onnx_path, precision, arr.threads * arr.lanes, arr.lanes, arr.chunk
        )
    return open_runner(onnx_path, arr.threads, arr.lanes, arr.chunk)


def _input_shape(onnx_path: Path, batch: int) -> list[int]:
    import onnx

    dims = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type
    return [d.dim_value if d.dim_value else batch for d in dims.shape.dim]


def throughput(
    onnx_paths: list[Path],
    batch: int,
    iters: int,
    arr: Arrangement,
    runtimes: list[dict] | None = None,
) -> list[dict]:
    """Median images/s of each model; runs are interleaved round-robin so that load changes on a
    shared machine hit every variant alike (timing them one after another did not). Batches run
    at once release the GIL in ORT, as the instances of a local server do."""
    # Every variant's sessions live through the interleaved rounds; idle workers that spin-wait
    # would steal the cores from the session running (2 cores, 2 threads: fp32 359 img/s
    # interleaved with spinning vs 528 without, 570 alone).
    runtimes = runtimes or [{} for _ in onnx_paths]
    pools = [
        [_runner(path, runtime, arr) for _ in range(arr.sessions)]
        for path, runtime in zip(onnx_paths, runtimes, strict=True)
    ]
    shape = _input_shape(onnx_paths[0], batch)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    times: list[list[float]] = [[] for _ in pools]
    with ThreadPoolExecutor(max_workers=arr.sessions) as workers:

        def one_round(pool: list) -> float:
            start = time.perf_counter()
            list(workers.map(lambda runner: runner.run([x]), pool))
            return time.perf_counter() - start

        for pool in pools:  # warm-up
            one_round(pool)
        for _ in range(iters):
            for pool, bucket in zip(pools, times, strict=True):
                bucket.append(one_round(pool))
    for runner in (r for pool in pools for r in pool):
        runner.close()
    medians = [statistics.median(t) for t in times]
    return [{"images_per_s": arr.sessions * batch / m, "ms_per_batch": m * 1000} for m in medians]


def op_profile(onnx_path: Path, batch: int, threads: int, runs: int = 5) -> dict[str, float]:
    """Kernel milliseconds per batch by operator type, largest first, from ORT's profiler over
    `runs` batches after one warm-up batch (left out: it allocates)."""
    sess = ort_peer.session(onnx_path, threads, profile=True)
    shape = [d if isinstance(d, int) else batch for d in sess.get_inputs()[0].shape]
    feed = {sess.get_inputs()[0].name: np.zeros(shape, np.float32)}
    for _ in range(runs + 1):
        sess.run(None, feed)
    trace = Path(sess.end_profiling())
    try:
        events = json.loads(trace.read_text())
    finally:
        os.remove(trace)
    run_ends = sorted(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    by_op: collections.Counter[str] = collections.Counter()
    for event in events:
        kernel = event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
        if kernel and event["ts"] >= run_ends[0]:
            by_op[event["args"]["op_name"]] += event["dur"]
    return {op: us / 1000 / runs for op, us in by_op.most_common()}


def _row(version, precision: str, onnx_path: Path, runtime: dict, manifest: dict | None) -> dict:
    gate = (manifest or {}).get("gate", {})
    metrics = gate.get("metrics", {})
    return {
        "version": version,
        "precision": precision,
        "runtime": runtime.get("runtime", "onnxruntime"),
        "runtime_record": runtime,
        "presence_macro_f1": metrics.get("presence_macro_f1"),
        "miou": metrics.get("miou"),
        "grade_accuracy": metrics.get("grade_accuracy"),
        "drop_points": {h: gate.get("heads", {}).get(h, {}).get("drop_points") for h in HEADS},
        "kept_fp32": (manifest or {}).get("quantization", {}).get("kept_fp32", []),
        "onnx": onnx_path,
    }


def _openvino_rows(rows: list[dict], notes: list[str]) -> list[dict]:
    """OpenVINO runs (not gated) of the ORT fp32 and int8 files among `rows`, for the variants
    this host can run and `rows` lacks; the others get a note saying why."""
    have = {r["precision"] for r in rows}
    files = {r["precision"]: r["onnx"] for r in rows if r["runtime"] == "onnxruntime"}
    extra = []
    for name in ovv.OV_VARIANTS:
        source = files.get(ovv.source_precision(name))
        reason = ovv.skip_reason(name)
        if name in have or source is None:
            continue
        if reason:
            notes.append(f"skipped {reason}")
            continue
        extra.append(_row(None, name, source, ovv.runtime_record(name), None))
    return extra


def repo_rows(repo: Path, openvino: bool = False) -> tuple[list[dict], list[str]]:
    """One row per published mtqa_net version holding an ONNX file (OpenVINO versions only where
    OpenVINO runs here), plus `_openvino_rows` with `openvino`; and notes on what was skipped."""
    table = contract.read_variants(repo)
    if not table:
        raise SystemExit(f"error: {repo / NET} lists no variants; build it with `mtqa build`")
    rows, notes = [], []
    for version, info in sorted(table.items(), key=lambda item: int(item[0])):
        vdir = contract.version_dir(repo, NET, version)
        onnx_path = vdir / "model.onnx"
        if not onnx_path.is_file():
            continue
        try:
            manifest = contract.read_manifest(repo, NET, version)
        except contract.ContractError as exc:
            raise SystemExit(f"error: {exc}") from None
        runtime = ov_plan.read_runtime(vdir)
        reason = ovv.skip_reason(info["precision"]) if ovv.is_openvino(info["precision"]) else None
        if reason:
            notes.append(f"skipped v{version} {reason}")
            continue
        rows.append(_row(int(version), info["precision"], onnx_path, runtime, manifest))
    if openvino:
        rows += _openvino_rows(rows, notes)
    return rows, notes


def export_preset(preset: str, out: Path, calib_count: int = 16) -> dict[str, Path]:
    """An untrained network of `preset` as the FP32 export and the local INT8 Q/DQ file (the
    `ort` flavour the local target builds), calibrated on random normalised images: the weights
    do not change the speed."""
    import torch

    from mtqa.config import named_config
    from mtqa.models import build_model
    from mtqa_builder import precision as prec
    from mtqa_builder.export import export_onnx

    cfg = named_config(preset)
    torch.manual_seed(0)
    classes = 3 if preset == "neu" else 4  # NEU-Seg has 3 defect classes, synth 4
    model = build_model(cfg.model, classes, 4).eval()
    size = int(cfg.data.image_size)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, size, out / "fp32.onnx")
    calib = np.random.default_rng(0).normal(size=(calib_count, 3, size, size)).astype(np.float32)
    int8 = prec.to_int8(fp32, out / "int8.onnx", calib, "ort")
    return {"fp32": fp32, "int8": int8}


def preset_rows(preset: str, work: Path) -> tuple[list[dict], list[str]]:
    """ORT FP32/INT8 and the OpenVINO variants this host runs, on an untrained `preset` network."""
    files = export_preset(preset, work)
    rows = [_row(None, name, path, {}, None) for name, path in files.items()]
    notes: list[str] = []
    return rows + _openvino_rows(rows, notes), notes


def measure(
    repo: Path, batch: int, iters: int, arr: Arrangement, openvino: bool = False
) -> list[dict]:
    """Rows of `repo_rows` with their images/s and ms per batch."""
    rows, _ = repo_rows(repo, openvino)
    return timed(rows, batch, iters, arr)


def timed(rows: list[dict], batch: int, iters: int, arr: Arrangement) -> list[dict]:
    if rows:
        runtimes = [r["runtime_record"] for r in rows]
        speeds = throughput([r["onnx"] for r in rows], batch, iters, arr, runtimes)
        for row, speed in zip(rows, speeds, strict=True):
            row.update(speed)
    return rows


def hardware_line() -> str:
    """The CPU, the flags that pick the kernels, and what OpenVINO says it can run."""
    hw = ovv.hardware()
    caps = ", ".join(hw["capabilities"]) if hw["capabilities"] else "OpenVINO not installed"
    flags = " ".join(hw["flags"]) or "unknown"
    return f"CPU {hw['cpu'] or 'unknown'}: {flags}; OpenVINO {hw['openvino'] or '-'} ({caps})"


def main(argv: list[str] | None = None) -> int:
    """Print the table (and optionally write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("model_repository"))
    parser.add_argument(
        "--preset", help="time an untrained network of this preset instead of a repository"
    )
    parser.add_argument(
        "--openvino", action="store_true", help="add OpenVINO runs of the repository's files"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="threads per session and lane")
    parser.add_argument(
        "--sessions", type=int, default=1, help="sessions per variant running at once"
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=1,
        help="ORT sessions (OpenVINO streams) one batch is spread over (ort_plan, ov_plan)",
    )
    parser.add_argument(
        "--chunk", type=int, default=0, help="most images per call, 0 = the whole batch"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print ORT kernel time per operator type"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if min(args.batch, args.iters, args.threads, args.sessions, args.lanes) < 1 or args.chunk < 0:
        print(
            "error: --batch, --iters, --threads, --sessions and --lanes must be >= 1, --chunk >= 0",
            file=sys.stderr,
        )
        return 2
    arr = Arrangement(args.threads, args.sessions, args.lanes, args.chunk)
    with tempfile.TemporaryDirectory(prefix="mtqa-precision-speed-") as tmp:
        if args.preset:
            rows, notes = preset_rows(args.preset, Path(tmp))
        else:
            rows, notes = repo_rows(args.repo, args.openvino)
        rows = timed(rows, args.batch, args.iters, arr)
        if not rows:
            print(f"error: no ONNX variants under {args.repo / NET}", file=sys.stderr)
            return 2
        _print(rows, notes, args)
        if args.profile:
            for r in (r for r in rows if r["runtime"] == "onnxruntime"):
                r["op_ms"] = op_profile(r["onnx"], args.batch, args.threads)
                total = sum(r["op_ms"].values())
                print(f"v{r['version']} {r['precision']}: {total:.1f} ms of kernels per batch")
                for op, ms in list(r["op_ms"].items())[:8]:
                    print(f"  {op:<24} {ms:7.2f} ms  {100 * ms / total:5.1f} %")
    if args.json:
        for r in rows:
            r["onnx"] = str(r["onnx"])
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _print(rows: list[dict], notes: list[str], args: argparse.Namespace) -> None:
    base = next((r["images_per_s"] for r in rows if r["precision"] == "fp32"), None)
    print(hardware_line())
    print(
        f"batch {args.batch}, {args.sessions} session(s) x {args.threads} thread(s), "
        f"{args.lanes} lane(s), chunk {args.chunk or 'whole batch'}, "
        f"median of {args.iters} interleaved rounds"
        + (f", untrained `{args.preset}` network" if args.preset else "")
    )
    print(
        "ver prec     runtime      img/s   ms/batch  x_fp32  F1      mIoU    grade   "
        "drop pts (pres/seg/grade)"
    )
    for r in rows:
        speedup = r["images_per_s"] / base if base else float("nan")
        drops = "/".join("-" if v is None else f"{v:+.2f}" for v in r["drop_points"].values())
        vals = [r[k] for k in ("presence_macro_f1", "miou", "grade_accuracy")]
        cells = " ".join("  -   " if v is None else f"{v:.4f}" for v in vals)
        version = "-" if r["version"] is None else r["version"]
        print(
            f"{version:>3} {r['precision']:<8} {r['runtime']:<11} {r['images_per_s']:7.1f} "
            f"{r['ms_per_batch']:9.1f}  {speedup:5.2f}x  {cells}  {drops}"
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    sys.exit(main())
