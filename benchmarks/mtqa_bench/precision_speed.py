"""ORT CPU throughput of each precision variant in a built repository, beside its gate figures.

Reads the network's `variants.json` and every listed version's `model.onnx` and `manifest.json`
(local or ngc-onnx targets), times batches of `--batch` images on ONNX Runtime's CPU provider and
prints images/s, the speed-up over FP32 and the per-head gate drops:

    python -m mtqa_bench.precision_speed --repo model_repository --batch 32
    python -m mtqa_bench.precision_speed --repo model_repository --threads 1 --sessions 2
    python -m mtqa_bench.precision_speed --repo model_repository --threads 1 --lanes 2 --chunk 4
    python -m mtqa_bench.precision_speed --repo model_repository --threads 1 --profile

`--profile` adds, per variant, where a batch's time goes by operator type (ONNX Runtime's own
profiler, kernel time only).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtqa_bench import ort_peer
from mtqa_builder import contract
from mtqa_builder.contract import NET
from mtqa_builder.triton_models.ort_plan import LaneRunner, open_runner

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


def throughput(onnx_paths: list[Path], batch: int, iters: int, arr: Arrangement) -> list[dict]:
    """Median images/s of each model; runs are interleaved round-robin so that load changes on a
    shared machine hit every variant alike (timing them one after another did not). Batches run
    at once release the GIL in ORT, as the instances of a local server do."""
    # Every variant's sessions live through the interleaved rounds; idle workers that spin-wait
    # would steal the cores from the session running (2 cores, 2 threads: fp32 359 img/s
    # interleaved with spinning vs 528 without, 570 alone).
    pools = [
        [open_runner(path, arr.threads, arr.lanes, arr.chunk) for _ in range(arr.sessions)]
        for path in onnx_paths
    ]
    first = pools[0][0].sessions[0]
    shape = [d if isinstance(d, int) else batch for d in first.get_inputs()[0].shape]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    times: list[list[float]] = [[] for _ in pools]
    with ThreadPoolExecutor(max_workers=arr.sessions) as workers:

        def one_round(pool: list[LaneRunner]) -> float:
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


def measure(repo: Path, batch: int, iters: int, arr: Arrangement) -> list[dict]:
    """One row per published mtqa_net version holding an ONNX file."""
    table = contract.read_variants(repo)
    if not table:
        raise SystemExit(f"error: {repo / NET} lists no variants; build it with `mtqa build`")
    rows = []
    for version, info in sorted(table.items(), key=lambda item: int(item[0])):
        onnx_path = contract.version_dir(repo, NET, version) / "model.onnx"
        if not onnx_path.is_file():
            continue
        try:
            manifest = contract.read_manifest(repo, NET, version)
        except contract.ContractError as exc:
            raise SystemExit(f"error: {exc}") from None
        gate = manifest.get("gate", {})
        drops = {h: gate.get("heads", {}).get(h, {}).get("drop_points") for h in HEADS}
        metrics = gate.get("metrics", {})
        rows.append(
            {
                "version": int(version),
                "precision": info["precision"],
                "presence_macro_f1": metrics.get("presence_macro_f1"),
                "miou": metrics.get("miou"),
                "grade_accuracy": metrics.get("grade_accuracy"),
                "drop_points": drops,
                "kept_fp32": manifest.get("quantization", {}).get("kept_fp32", []),
                "onnx": onnx_path,
            }
        )
    if rows:
        speeds = throughput([r["onnx"] for r in rows], batch, iters, arr)
        for row, speed in zip(rows, speeds, strict=True):
            row.update(speed)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table (and optionally write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("model_repository"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="ORT threads per session")
    parser.add_argument(
        "--sessions", type=int, default=1, help="sessions per variant running at once"
    )
    parser.add_argument(
        "--lanes", type=int, default=1, help="ORT sessions one batch is spread over (ort_plan)"
    )
    parser.add_argument(
        "--chunk", type=int, default=0, help="most images per ORT call, 0 = the whole batch"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print kernel time per operator type"
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
    rows = measure(args.repo, args.batch, args.iters, arr)
    if not rows:
        print(f"error: no ONNX variants under {args.repo / NET}", file=sys.stderr)
        return 2
    base = next((r["images_per_s"] for r in rows if r["precision"] == "fp32"), None)
    print(
        f"ORT CPU, batch {args.batch}, {args.sessions} session(s) x {args.threads} thread(s), "
        f"{args.lanes} lane(s), chunk {args.chunk or 'whole batch'}, "
        f"median of {args.iters} interleaved rounds"
    )
    print("ver prec   img/s   ms/batch  x_fp32  F1      mIoU    grade   drop pts (pres/seg/grade)")
    for r in rows:
        speedup = r["images_per_s"] / base if base else float("nan")
        drops = "/".join("-" if v is None else f"{v:+.2f}" for v in r["drop_points"].values())
        vals = [r[k] for k in ("presence_macro_f1", "miou", "grade_accuracy")]
        cells = " ".join("  -   " if v is None else f"{v:.4f}" for v in vals)
        print(
            f"{r['version']:>3} {r['precision']:<5} {r['images_per_s']:7.1f} "
            f"{r['ms_per_batch']:9.1f}  {speedup:5.2f}x  {cells}  {drops}"
        )
    if args.profile:
        for r in rows:
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


if __name__ == "__main__":
    sys.exit(main())
