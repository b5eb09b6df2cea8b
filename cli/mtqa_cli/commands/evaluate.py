"""`mtqa evaluate`: score a checkpoint on a split and write metrics, plots and report.md."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from mtqa_cli import exits, progress
from mtqa_cli.preconditions import first_problem, missing_data, missing_run, unwritable
from mtqa_cli.renamed import option

HELP = "evaluate a checkpoint: metrics.json, confusion matrices, PR/overlay plots, report.md"

# Optional installs this command needs (mtqa_cli.extras): matplotlib for the plots.
EXTRAS = ("train",)

EXAMPLE = "mtqa evaluate --run runs/tiny --out results/eval --calibrate"

HEADLINE = (
    "presence_macro_f1",
    "presence_macro_auroc",
    "presence_macro_ap",
    "miou",
    "mdice",
    "miou_with_background",
    "defect_iou",
    "grade_accuracy",
    "grade_qwk",
)


def configure(parser: argparse.ArgumentParser) -> None:
    option(
        parser,
        "--run",
        "--checkpoint",
        required=True,
        type=Path,
        help="run directory written by `mtqa train` (runs/NAME)",
    )
    parser.add_argument(
        "--data", help="synth | neu_seg | PATH (default: the data source the run was trained on)"
    )
    parser.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="split to score"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the artefacts")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="first choose thresholds on the val split and store them in the checkpoint",
    )
    parser.add_argument(
        "--rule",
        default="max_f1",
        choices=("max_f1", "target_recall"),
        help="with --calibrate: how each class's threshold is chosen",
    )
    parser.add_argument(
        "--target-recall",
        type=float,
        default=0.95,
        help="with --rule target_recall: the recall each threshold keeps",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument(
        "--limit",
        type=int,
        help="score only the first N images of each split read (default: the whole split, "
        "whatever data.limit the run trained under)",
    )
    parser.add_argument("--samples", type=int, default=4, help="images in overlays.png")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    progress.add_option(parser)


def run(args: argparse.Namespace) -> int:
    problem = first_problem(  # in a second, before torch is even imported
        [
            ("--run", args.run, missing_run(args.run)),
            ("--data", args.data, missing_data(args.data)),
            ("--out", args.out, unwritable(args.out)),
        ]
    )
    if problem:
        return exits.bad_input("evaluate", problem)
    import torch

    from mtqa.calibrate import calibrate_run, score_split
    from mtqa.checkpoint import CheckpointError, load_checkpoint
    from mtqa.data import DatasetError
    from mtqa.evaluate.artefacts import write_artefacts
    from mtqa.evaluate.evaluation import EvaluationError
    from mtqa.evaluate.jsonsafe import dumps
    from mtqa.evaluate.metrics import MetricInputError
    from mtqa.evaluate.thresholds import ThresholdError
    from mtqa.progress import stage

    bar = progress.for_args("evaluate", args)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.calibrate:
            calibrate_run(
                args.run,
                args.data,
                "val",
                args.rule,
                args.target_recall,
                args.batch_size,
                args.limit,
                progress=bar,
            )
        checkpoint = load_checkpoint(args.run)  # after calibrating: its thresholds are new
        result, source = score_split(
            checkpoint,
            args.split,
            args.data,
            args.limit,
            args.batch_size,
            bar,
            label=f"score {args.split}",
            thresholds=checkpoint.thresholds,
            keep_samples=args.samples,
        )
        info = {
            "checkpoint": str(args.run),
            "data": source,
            "split": args.split,
            "limit": args.limit,
            "thresholds_rule": checkpoint.thresholds.get("rule"),
            "thresholds_selected_on": checkpoint.thresholds.get("selected_on"),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        with stage(bar, "write report") as writing:
            files = write_artefacts(
                result,
                args.out,
                info,
                checkpoint.mean,
                checkpoint.std,
                metrics_csv=Path(args.run) / "metrics.csv",
            )
            writing.detail = str(files["report_html"])
    except (
        CheckpointError,
        DatasetError,
        ThresholdError,
        EvaluationError,
        MetricInputError,
    ) as exc:
        return exits.fail("evaluate", exc)
    flat = result.flat()
    scope = f"the first {args.limit} images" if args.limit else "the whole split"
    print(
        f"mtqa evaluate: scored {flat['n_images']} images of the {args.split!r} split of "
        f"{source} ({scope}; {flat['n_images_with_masks']} with masks)",
        file=sys.stderr,
    )
    evaluated = {"data": source, "split": args.split, "limit": args.limit}
    summary = evaluated | {"n_images": flat["n_images"]} | {k: flat[k] for k in HEADLINE}
    print(
        dumps({"report": str(files["report"]), "report_html": str(files["report_html"]), **summary})
    )
    return 0
