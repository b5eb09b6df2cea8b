"""`mtqa build`: checkpoint -> gated precision variants -> Triton model repository."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtqa_cli import exits, progress
from mtqa_cli.preconditions import unwritable

HELP = "Export, quantize, gate and publish a checkpoint into a Triton model repository."
EXAMPLE = (
    "mtqa build --checkpoint runs/tiny --precision fp32,int8 --calib synth --repo model_repository"
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mtqa build`."""
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="run directory written by `mtqa train`"
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("model_repository"),
        help="model repository to publish into (created if missing; new versions are added)",
    )
    parser.add_argument(
        "--precision", default="fp32", help="comma list of fp32,fp16,int8 (default fp32)"
    )
    parser.add_argument(
        "--calib",
        help="INT8 calibration images: synth, neu_seg or a dataset/image folder "
        "(default: none; int8 needs it)",
    )
    parser.add_argument("--calib-count", type=int, default=64, help="INT8 calibration images")
    parser.add_argument(
        "--target",
        default="local",
        choices=["local", "ngc-onnx", "ngc-trt"],
        help="local: CPU, ONNX Runtime in the python backend; ngc-onnx: the NGC image's GPU "
        "ONNX Runtime backend; ngc-trt: TensorRT plans",
    )
    parser.add_argument(
        "--engines",
        type=Path,
        help="prebuilt TensorRT plans for ngc-trt (default: compile them here, which needs "
        "a GPU and TensorRT: the 'gpu' extra)",
    )
    parser.add_argument("--serve", help="precision the ensemble serves (default: the first)")
    parser.add_argument("--tolerance", type=float, default=1.0, help="max drop per head, points")
    parser.add_argument("--val-data", help="gate data (default: the checkpoint's data source)")
    parser.add_argument(
        "--val-limit", type=int, help="cap on validation images for the gate (default: all)"
    )
    parser.add_argument(
        "--synth-val",
        type=int,
        default=1024,
        help="synthetic data: validation images for the gate (the run's own first)",
    )
    # Serving flags default to None: `Serving.for_target` fills in the target's defaults.
    parser.add_argument("--max-batch", type=int, help="max_batch_size of every model (default: 32)")
    parser.add_argument(
        "--queue-delay-us",
        type=int,
        help="dynamic-batching delay (default: 0 for local, 2000 for the NGC GPU targets)",
    )
    parser.add_argument(
        "--preferred-batch",
        help="comma list of preferred batch sizes (default: 4 for local, none for NGC targets)",
    )
    parser.add_argument(
        "--max-queue-size", type=int, help="queued requests per model (default: 256)"
    )
    parser.add_argument(
        "--queue-timeout-us",
        type=int,
        help="queue time before a request is rejected (default: 5000000)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        help="instances per model (default: min(max(cores, 2), 4) locally, 1 for NGC GPU targets)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        help="ORT threads per local mtqa_net instance (default: cores / (2 x instances))",
    )
    parser.add_argument(
        "--lane-sessions",
        type=int,
        help="ORT sessions a local mtqa_net instance spreads a batch over (default: cores, max 4)",
    )
    parser.add_argument(
        "--chunk-images",
        type=int,
        help="most images per ORT call in a local mtqa_net, 0 = a whole request (default: "
        "64 Ki pixels a call: 4 images at 128 px, 2 at 192)",
    )
    parser.add_argument(
        "--decode-threads",
        type=int,
        help="threads mtqa_preprocess decodes one request's images on (default: cores, at most 4)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        help="mtqa_preprocess refuses an image whose header declares more pixels, before "
        "decoding it (default 40,000,000; Pillow's own limit, ~89 Mpx, still applies)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep intermediate ONNX files here (default: a temporary folder, removed after)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    progress.add_option(parser)


def run(args: argparse.Namespace) -> int:
    """Build; a bad option value exits 2, a failed build 1, each with one line on stderr."""
    from mtqa_builder.configs import Serving
    from mtqa_builder.errors import BuildError, ServingError
    from mtqa_builder.pipeline import BuildOptions, build

    preferred = None
    if args.preferred_batch is not None:
        try:
            preferred = tuple(int(b) for b in args.preferred_batch.split(",") if b.strip())
        except ValueError:
            return exits.usage(
                "build",
                f"--preferred-batch must be a comma list of integers: {args.preferred_batch}",
            )
    try:  # unset flags (None) keep the builder's defaults for the target and this host
        serving = Serving.for_target(
            args.target,
            max_batch=args.max_batch,
            queue_delay_us=args.queue_delay_us,
            preferred_batch=preferred,
            instances=args.instances,
            max_queue_size=args.max_queue_size,
            queue_timeout_us=args.queue_timeout_us,
            intra_op_threads=args.intra_op_threads,
            lane_sessions=args.lane_sessions,
            chunk_images=args.chunk_images,
            decode_threads=args.decode_threads,
            max_pixels=args.max_pixels,
        )
    except ServingError as exc:
        return exits.usage("build", f"--{exc.field.replace('_', '-')} {exc.detail}")
    for flag, folder in (("--repo", args.repo), ("--work-dir", args.work_dir)):
        reason = unwritable(folder) if folder is not None else None
        if reason:  # before the export and the gate, not after them
            return exits.fail("build", f"{flag} {folder}: {reason}")
    opts = BuildOptions(
        checkpoint=args.checkpoint,
        repo=args.repo,
        precisions=[p.strip() for p in args.precision.split(",") if p.strip()],
        target=args.target,
        calib=args.calib,
        calib_count=args.calib_count,
        serving=serving,
        serve=args.serve,
        tolerance=args.tolerance,
        val_data=args.val_data,
        val_limit=args.val_limit,
        synth_val=args.synth_val,
        engines=args.engines,
        work_dir=args.work_dir,
    )
    try:
        result = build(
            opts,
            log=(lambda _m: None) if args.json else print,
            progress=progress.for_args("build", args),
        )
    except BuildError as exc:
        return exits.fail("build", exc)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(
            f"published to {args.repo}: {result['versions']} (ensemble serves mtqa_net "
            f"v{result['serving']})"
        )
    return 0
