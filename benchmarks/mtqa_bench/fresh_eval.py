"""Presence macro-F1 and defect IoU of a synthetic-data checkpoint on many fresh images.

A run scores itself on its 256 test images, a figure that moves by about +-0.02 with which
images are drawn. This scores a longer slice of the same test stream (the run's test images
first, then the ones after them) at per-class thresholds chosen on a longer slice of the val
stream; it is how the issue-2 acceptance figures in docs/training.md are measured:

    python -m mtqa_bench.fresh_eval --run runs/tiny [--val 512 --test 1024 --json F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from mtqa.calibrate import checkpoint_split, run_source
from mtqa.checkpoint import load_checkpoint
from mtqa.evaluate import evaluate_predictor, select_thresholds, torch_predict_fn
from mtqa.evaluate.evaluation import run_evaluation
from mtqa.evaluate.jsonsafe import dumps


def fresh_eval(run_dir: str | Path, n_val: int = 512, n_test: int = 1024) -> dict[str, Any]:
    """Thresholds chosen on `n_val` val-stream images, metrics on `n_test` test-stream images."""
    checkpoint = load_checkpoint(run_dir)
    if run_source(checkpoint.config) != "synth":
        raise SystemExit(f"{run_dir} was not trained on synthetic data: use `mtqa evaluate`")
    # Exactly n images of each stream: read at least n, cap at n.
    val_set, _ = checkpoint_split(checkpoint, "val", limit=n_val, synth_size=n_val)
    test_set, _ = checkpoint_split(checkpoint, "test", limit=n_test, synth_size=n_test)
    predict = torch_predict_fn(checkpoint.model)
    classes, grades = checkpoint.classes, checkpoint.grades
    val = run_evaluation(predict, val_set, classes, grades)
    thresholds = {
        "presence": select_thresholds(val.presence_probs, val.presence_targets, classes),
        "segmentation": val.pixel_histogram.select(classes),
    }
    metrics = evaluate_predictor(predict, test_set, classes, grades, thresholds)
    return {"run": str(run_dir), "classes": classes, "n_val": n_val, "n_test": n_test, **metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(  # --checkpoint: the old name, as `mtqa` accepts it for one release
        "--run", "--checkpoint", dest="run", required=True, help="run directory (runs/NAME)"
    )
    parser.add_argument("--val", type=int, default=512, help="val-stream images for thresholds")
    parser.add_argument("--test", type=int, default=1024, help="test-stream images scored")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write every metric here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = fresh_eval(args.run, args.val, args.test)
    per_class = " / ".join(f"{c} {result[f'presence_f1/{c}']:.3f}" for c in result["classes"])
    print(
        f"{args.run}: presence macro-F1 {result['presence_macro_f1']:.3f} ({per_class}), "
        f"defect IoU {result['defect_iou']:.3f}, grade accuracy {result['grade_accuracy']:.3f} "
        f"on {args.test} fresh test images (thresholds from {args.val} val images)"
    )
    if args.json:
        args.json.write_text(dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
