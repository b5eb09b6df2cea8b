"""`mtqa data`: write a synthetic dataset (`synth`), import labelled data (`import`), or
describe a dataset (`info`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtqa_cli import exits
from mtqa_cli.helptext import with_example
from mtqa_cli.renamed import option

HELP = (
    "Write a synthetic dataset, import YOLO / COCO / LabelMe / mask-folder labels, or print a "
    "dataset's classes, split sizes and class rates."
)

EXAMPLE = "mtqa data import datasets/raw/data.yaml --from yolo --out datasets/parts"

# mtqa.data.importers.FORMATS, spelled here so that building the parser imports no torch.
IMPORT_FORMATS = ("yolo", "coco", "labelme", "voc", "masks")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = sub.add_parser(
        "synth",
        help="write a synthetic dataset in the indexed-mask format",
        description="Write a synthetic dataset (images/, masks/, classes.json) in the "
        "indexed-mask format.",
        epilog=with_example("mtqa data synth --out datasets/synth --n 512 --size 128"),
    )
    synth.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    synth.add_argument("--n", type=int, required=True, help="number of images over all splits")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels")
    synth.add_argument("--seed", type=int, default=0, help="random seed of images and splits")
    # the split shares are named as in `mtqa data import`
    option(synth, "--val-fraction", "--val-frac", type=float, default=0.1, help="val share")
    option(synth, "--test-fraction", "--test-frac", type=float, default=0.1, help="test share")
    synth.add_argument("--max-defects", type=int, default=3, help="defects per image at most")
    _configure_import(sub)
    info = sub.add_parser(
        "info",
        help="classes, split sizes and class frequencies",
        description="Print a dataset's classes, split sizes, normalisation and class rates.",
        epilog=with_example("mtqa data info datasets/parts --max-items 256"),
    )
    info.add_argument("source", help="'synth', 'neu_seg' or a dataset path (folder or .csv)")
    info.add_argument(
        "--image-size", type=int, default=128, help="side the images are resized to when read"
    )
    info.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="class names, or a subset of them (default: the dataset's own)",
    )
    info.add_argument("--max-items", type=int, default=512, help="items sampled per split")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _configure_import(sub) -> None:
    imp = sub.add_parser(
        "import",
        help="import YOLO / COCO / LabelMe / mask-folder labels into the indexed-mask format",
        description="Import a labelled dataset into the indexed-mask format (images/, masks/, "
        "classes.json) and write report.json (classes, split counts, image sizes, defect areas, "
        "images without labels, files skipped). Splits are kept where the source has them, "
        "else drawn seeded and stratified by class.",
        epilog=with_example(
            "mtqa data import datasets/raw/data.yaml --from yolo --out datasets/parts"
        ),
    )
    imp.add_argument("source", type=Path, help="the dataset folder (or data.yaml / COCO .json)")
    imp.add_argument(
        "--from", dest="fmt", choices=IMPORT_FORMATS, required=True, help="source format"
    )
    imp.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    imp.add_argument("--seed", type=int, default=0, help="seed of the drawn splits")
    imp.add_argument("--val-fraction", type=float, default=0.15, help="val share when drawn")
    imp.add_argument("--test-fraction", type=float, default=0.15, help="test share when drawn")
    imp.add_argument(
        "--limit",
        type=int,
        default=None,
        help="import about N images, evenly spaced in each source split (a quick trial; "
        "default: every image)",
    )
    imp.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from mtqa.data import DatasetError

    actions = {"synth": _synth, "import": _import, "info": _info}
    try:
        return actions[args.data_command](args)
    except DatasetError as exc:
        return exits.fail("data", exc)


def _synth(args: argparse.Namespace) -> int:
    from mtqa.data.synth import SynthConfig
    from mtqa.data.writer import write_synth_dataset

    config = SynthConfig(size=args.size, max_defects=args.max_defects)
    sizes = write_synth_dataset(
        args.out,
        args.n,
        config=config,
        seed=args.seed,
        val_frac=args.val_fraction,
        test_frac=args.test_fraction,
    )
    print(f"wrote {sum(sizes.values())} images to {args.out} ({sizes})")
    return 0


def _import(args: argparse.Namespace) -> int:
    from mtqa_cli.extras import require

    require("train")  # pycocotools (RLE masks): named before any file is read
    from mtqa.data.importers import import_dataset, summary_text

    report = import_dataset(
        args.fmt,
        args.source,
        args.out,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        limit=args.limit,
    )
    print(json.dumps(report, indent=2) if args.json else summary_text(report))
    if not args.json:
        print(f"report: {args.out / 'report.json'}")
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
