"""GPU reference: PyTorch throughput of the mtqa network on one device, for comparison with serving.

``python -m mtqa_bench.gpu_check [--config neu] [--run RUN] [--device cuda]`` sweeps
precision (fp32, bf16 and fp16 autocast) and batch size (1..256), eagerly and, on CUDA, replayed
through a captured CUDA graph; prints a table and writes JSON (device name, versions, every point)
to ``benchmarks/results/gpu_reference.json``. Without a checkpoint the network is built from a
preset or config file of this repository with random weights (timing does not depend on them).
Self-contained on purpose: it needs only torch and the repository's `mtqa` package (and PyYAML,
which `mtqa.config` imports), so it runs on a GPU host where nothing else is installed.
``--device cpu --quick`` is the CI smoke mode. A time budget keeps a run under 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_reference.json"
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class GpuCheckError(RuntimeError):
    """Bad options or a model that cannot be built."""


def build_network(config: str, checkpoint: Path | None) -> tuple[torch.nn.Module, int, str]:
    """The network (eval, fp32) and its input size, from a checkpoint or a config with random
    weights; the third value says which."""
    # mtqa is imported per path: a config needs only torch and PyYAML, while mtqa.checkpoint
    # also loads scipy, scikit-learn and safetensors, which a bare GPU host may lack.
    if checkpoint is not None:
        from mtqa.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        return ckpt.model, ckpt.image_size, f"checkpoint {checkpoint}"
    from mtqa.config import ConfigError, named_config
    from mtqa.models import build_model

    try:
        cfg = named_config(config)
    except ConfigError as exc:
        raise GpuCheckError(str(exc)) from exc
    classes = 3 if config == "neu" else 4  # NEU-Seg has 3 defect classes, synth 4
    model = build_model(cfg.model, classes, 4)
    return model.eval(), int(cfg.data.image_size), f"config {config!r}, random weights"


def _timed(fn, device: torch.device, min_s: float, max_iters: int) -> tuple[float, int]:
    """Mean seconds per call of `fn` over at least `min_s` (or `max_iters` calls)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        fn()
    sync()
    iters, start = 0, time.perf_counter()
    while iters < max_iters and (iters < 3 or time.perf_counter() - start < min_s):
        fn()
        iters += 1
    sync()
    return (time.perf_counter() - start) / iters, iters


def _runner(model, x: torch.Tensor, dtype, graph: bool):
    """A zero-argument callable running one forward pass (autocast when `dtype` is set)."""
    device_type = x.device.type

    def forward():
        # Autocast's weight-cast cache must be off while a CUDA graph is captured.
        autocast = torch.autocast(
            device_type, dtype=dtype, enabled=bool(dtype), cache_enabled=not graph
        )
        with torch.inference_mode(), autocast:
            return model(x)

    if not graph:
        return forward
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as capture requires
            forward()
    torch.cuda.current_stream().wait_stream(stream)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        forward()
    return cuda_graph.replay


def sweep(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    model, size, source = build_network(args.config, args.run)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    modes = ["eager"] + (["cuda_graph"] if device.type == "cuda" and not args.no_graphs else [])
    results, skipped = [], []
    started = time.perf_counter()
    for dtype_name in args.dtypes:
        for mode in modes:
            for batch in args.batches:
                if time.perf_counter() - started > args.budget_s:
                    skipped.append({"dtype": dtype_name, "mode": mode, "batch": batch,
                                    "reason": "time budget"})  # fmt: skip
                    continue
                x = torch.randn(batch, 3, size, size, device=device)
                if device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                try:
                    fn = _runner(model, x, DTYPES[dtype_name], mode == "cuda_graph")
                    seconds, iters = _timed(fn, device, args.min_s, args.max_iters)
                except torch.cuda.OutOfMemoryError:
                    skipped.append({"dtype": dtype_name, "mode": mode, "batch": batch,
                                    "reason": "out of memory"})  # fmt: skip
                    torch.cuda.empty_cache()
                    break
                except RuntimeError as exc:  # e.g. an op that cannot be captured in a graph
                    if mode == "eager":
                        raise
                    skipped.append({"dtype": dtype_name, "mode": mode, "batch": batch,
                                    "reason": f"capture failed: {exc}"[:300]})  # fmt: skip
                    break
                row = {
                    "dtype": dtype_name,
                    "mode": mode,
                    "batch": batch,
                    "ms_per_batch": seconds * 1000.0,
                    "images_per_s": batch / seconds,
                    "iters": iters,
                }
                results.append(row)
                print(
                    f"{dtype_name:>5} {mode:>10} batch {batch:>4}: {row['images_per_s']:10.1f}"
                    f" img/s  {row['ms_per_batch']:8.3f} ms/batch",
                    flush=True,
                )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": name or platform.machine(),
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "model": source,
        "image_size": size,
        "parameters": params,
        "threads": torch.get_num_threads(),
        "results": results,
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 1),
    }


def table(report: dict) -> str:
    """Best images/s per dtype and batch (over modes), as a fixed-width table."""
    best: dict[tuple[str, int], dict] = {}
    for r in report["results"]:
        key = (r["dtype"], r["batch"])
        if key not in best or r["images_per_s"] > best[key]["images_per_s"]:
            best[key] = r
    dtypes = sorted({d for d, _ in best}, key=list(DTYPES).index)
    batches = sorted({b for _, b in best})
    lines = [f"{report['device']} ({report['model']}, {report['image_size']} px): best images/s"]
    lines.append("batch " + "".join(f"{d:>22}" for d in dtypes))
    for b in batches:
        cells = []
        for d in dtypes:
            r = best.get((d, b))
            cells.append(f"{r['images_per_s']:>12.1f} ({r['mode'][:5]:>5})" if r else f"{'-':>22}")
        lines.append(f"{b:>5} " + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="neu", help="preset (tiny|small|neu) or config file")
    parser.add_argument(  # --checkpoint: the old name, as `mtqa` accepts it for one release
        "--run",
        "--checkpoint",
        dest="run",
        type=Path,
        help="run directory (default: random weights)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", default="fp32,bf16,fp16")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64,128,256")
    parser.add_argument("--no-graphs", action="store_true", help="skip CUDA-graph replay")
    parser.add_argument("--min-s", type=float, default=1.0, help="seconds timed per point")
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--budget-s", type=float, default=360.0, help="stop starting new points")
    parser.add_argument("--quick", action="store_true", help="CPU smoke: tiny, 2 batches, short")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.config, args.batches, args.dtypes = "tiny", "1,2", "fp32,bf16"
        args.min_s, args.max_iters, args.budget_s = 0.2, 20, 60.0
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches takes comma-separated integers, got {args.batches!r}")
    args.dtypes = [d.strip() for d in args.dtypes.split(",")]
    unknown = [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"unknown dtypes {unknown}; expected {list(DTYPES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device (use --device cpu)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = sweep(args)
    except GpuCheckError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the repository's `mtqa` package, installed or not
    sys.exit(main())
