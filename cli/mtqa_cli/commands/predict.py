"""`mtqa predict`: run a built repository on images in this process (ONNX Runtime, no server).

For quick checks, like `yolo predict`: the ensemble `mtqa inspect` talks to, replayed from the
repository's files by `mtqa_builder.offline` (same decoding, preprocessing, network, thresholds
and postprocess), printed as `mtqa inspect` prints it: the same table, the same `--json`, the
same overlay PNGs. An image that cannot be read is listed with its error and the others are
answered; the exit code is then that of the first failure (mtqa_cli.exits).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtqa_cli import exits
from mtqa_cli.commands.inspect import add_report_options, report

HELP = "Inspect images offline on a built repository's ONNX model (no server; as `inspect`)."
EXAMPLE = "mtqa predict part_0001.png part_0002.png --repo model_repository --overlays overlays/"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGES", help="image files")
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("model_repository"),
        help="model repository written by `mtqa build` (a local or ngc-onnx target)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        help="network variant to run: fp32, fp16 or int8 (default: the one the ensemble serves)",
    )
    add_report_options(parser)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime threads, 0 = every core"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per ONNX Runtime batch (default: the ensemble's max_batch_size)",
    )


def run(args: argparse.Namespace) -> int:
    from mtqa_builder.errors import BuildError
    from mtqa_builder.offline import OfflinePredictor
    from mtqa_client import BatchError, InspectionError

    if args.threads < 0 or (args.batch_size is not None and args.batch_size < 1):
        return exits.usage("predict", "--threads must be >= 0 and --batch-size >= 1")
    try:
        with OfflinePredictor(args.repo, precision=args.precision, threads=args.threads) as model:
            try:
                results = model.predict(args.images, batch_size=args.batch_size)
            except BatchError as exc:  # a batch failed as a whole: show what was answered
                report(exc.results, args, model.spec.classes, "predict")
                return exits.fail("predict", f"BatchError: {exc}", exits.code_for(exc))
            return report(results, args, model.spec.classes, "predict")
    except (BuildError, InspectionError) as exc:
        return exits.fail("predict", f"{type(exc).__name__}: {exc}", exits.code_for(exc))
