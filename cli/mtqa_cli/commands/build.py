"""`mtqa build`: checkpoint -> gated precision variants -> Triton model repository."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtqa_cli import exits, progress
from mtqa_cli.preconditions import (
    first_problem,
    missing_data,
    missing_run,
    unknown_precisions,
    unwritable,
)
from mtqa_cli.renamed import option

HELP = "Export, quantize, gate and publish a checkpoint into a Triton model repository."
EXAMPLE = (
    "mtqa build --run runs/tiny --precision fp32,int8 --calib-data synth --repo model_repository"
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mtqa build`."""
    option(
        parser,
        "--run",
        "--checkpoint",
        type=Path,
        required=True,
        help="run directory written by `mtqa train`",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("model_repository"),
        help="model repository to publish into (created if missing; new versions are added)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        help="comma list of precisions, e.g. fp32,fp16,int8 or the OpenVINO ov-fp32,ov-bf16,"
        "ov-int8 (local target; skipped with the reason where OpenVINO or the CPU lacks them; "
        "an unknown name is refused with the list of known ones; default fp32)",
    )
    option(
        parser,
        "--calib-data",
        "--calib",
        help="INT8 calibration images: synth | neu_seg | PATH (a dataset or image folder) "
        "(default: none; int8 needs it)",
    )
    parser.add_argument("--calib-count", type=int, default=64, help="INT8 calibration images")
    parser.add_argument(
        "--target",
        default="local",
        choices=["local", "ngc-onnx", "ngc-trt", "ngc-openvino"],
        help="local: CPU, ONNX Runtime in the python backend; ngc-onnx: the NGC image's GPU "
        "ONNX Runtime backend; ngc-trt: TensorRT plans; ngc-openvino: the NGC image's CPU "
        "OpenVINO backend (--precision ov-bf16)",
    )
    parser.add_argument(
        "--engines",
        type=Path,
        help="prebuilt TensorRT plans for ngc-trt (default: compile them here, which needs "
        "a GPU and TensorRT: the 'gpu' extra)",
    )
    parser.add_argument("--serve", help="precision the ensemble serves (default: the first)")
    parser.add_argument("--tolerance", type=float, default=1.0, help="max drop per head, points")
    option(
        parser,
        "--gate-data",
        "--val-data",
        help="data the accuracy gate scores (its val split): synth | neu_seg | PATH "
        "(default: the run's data source)",
    )
    option(
        parser,
        "--gate-limit",
        "--val-limit",
        type=int,
        help="cap on validation images for the gate (default: all)",
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
    """Build; each failure is one line on stderr and an exit code (mtqa_cli.exits): a bad option
    value 2, a missing run or data, an unknown precision or an unwritable output 3 (all checked
    before the export), a failed gate 5."""
    from mtqa_builder.configs import Serving
    from mtqa_builder.errors import BuildError, ServingError

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
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    problem = first_problem(  # before the export and the gate, not after them
        [
            ("--run", args.run, missing_run(args.run)),
            ("--precision", args.precision, unknown_precisions(precisions)),
            ("--calib-data", args.calib_data, missing_data(args.calib_data)),
            ("--gate-data", args.gate_data, missing_data(args.gate_data)),
            ("--repo", args.repo, unwritable(args.repo)),
            ("--work-dir", args.work_dir, args.work_dir and unwritable(args.work_dir)),
        ]
    )
    if problem:
        return exits.bad_input("build", problem)
    from mtqa_builder.pipeline import BuildOptions, build  # torch: seconds to import

    opts = BuildOptions(
        checkpoint=args.run,
        repo=args.repo,
        precisions=precisions,
        target=args.target,
        calib=args.calib_data,
        calib_count=args.calib_count,
        serving=serving,
        serve=args.serve,
        tolerance=args.tolerance,
        val_data=args.gate_data,
        val_limit=args.gate_limit,
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
