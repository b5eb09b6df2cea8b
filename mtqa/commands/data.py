"""`mtqa data`: write a synthetic dataset (`synth`) or describe a dataset (`info`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Write a synthetic dataset or print a dataset's classes, split sizes and class rates."


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = sub.add_parser("synth", help="write a synthetic dataset in the indexed-mask format")
    synth.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    synth.add_argument("--n", type=int, required=True, help="number of images over all splits")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--val-frac", type=float, default=0.1)
    synth.add_argument("--test-frac", type=float, default=0.1)
    synth.add_argument("--max-defects", type=int, default=3, help="defects per image at most")
    info = sub.add_parser("info", help="classes, split sizes and class frequencies")
    info.add_argument("source", help="'synth', 'neu_seg' or a dataset path (folder or .csv)")
    info.add_argument("--image-size", type=int, default=128)
    info.add_argument("--classes", nargs="+", default=None, help="class names (or a subset)")
    info.add_argument("--max-items", type=int, default=512, help="items sampled per split")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from mtqa.data import DatasetError

    try:
        return _synth(args) if args.data_command == "synth" else _info(args)
    except DatasetError as exc:
        print(f"mtqa data: error: {exc}", file=sys.stderr)
        return 2


def _synth(args: argparse.Namespace) -> int:
    from mtqa.data.synth import SynthConfig
    from mtqa.data.writer import write_synth_dataset

    config = SynthConfig(size=args.size, max_defects=args.max_defects)
    sizes = write_synth_dataset(
        args.out,
        args.n,
        config=config,
        seed=args.seed,
        val_frac=args.val_frac,
        test_frac=args.test_frac,
    )
    print(f"wrote {sum(sizes.values())} images to {args.out} ({sizes})")
    return 0


def _info(args: argparse.Namespace) -> int:
    from mtqa.data import build_datasets, class_stats

    bundle = build_datasets(args.source, args.image_size, augment=False, classes=args.classes)
    report = {
        "source": bundle.source,
        "classes": bundle.classes,
        "mean": bundle.mean,
        "std": bundle.std,
        "splits": {},
    }
    for split in ("train", "val", "test"):
        dataset = getattr(bundle, split)
        if dataset is not None:
            report["splits"][split] = class_stats(dataset, bundle.classes, args.max_items).to_dict()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"source: {bundle.source['kind']} {bundle.source.get('path') or ''}")
    print(f"classes: {', '.join(bundle.classes)}   grades: {', '.join(bundle.grades)}")
    print(f"mean {bundle.mean}  std {bundle.std}")
    width = max(len(c) for c in bundle.classes)
    for split, stats in report["splits"].items():
        size = bundle.source["sizes"][split]
        print(f"\n{split}: {size} items (rates over {stats['items']} sampled)")
        print(f"  {'class':<{width}}  presence  pixels")
        for c, p, q in zip(
            bundle.classes, stats["presence_rate"], stats["pixel_rate"], strict=True
        ):
            print(f"  {c:<{width}}  {p:8.3f}  {q:6.4f}")
    return 0
