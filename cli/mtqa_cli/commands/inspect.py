"""`mtqa inspect`: send images to a served mtqa model and print what it found.

A thin front end to the SDK (`mtqa_client`): a table (rich) or JSON on stdout, optional overlay
PNGs (masks tinted per class, boxes), and typed SDK errors reported as one line on stderr with their
exit code (mtqa_cli.exits: 4 for a server that is unavailable, 3 for a bad image). Images that got
no answer are listed with their error (in the table, the JSON and on stderr) while the others are
shown; the exit code is then that of the first failure. A refused connection fails at once unless
`--wait` is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtqa_cli import exits

HELP = "Inspect images through a running Triton server (table, JSON, overlay PNGs)."
EXAMPLE = "mtqa inspect part_0001.png part_0002.png --url localhost:8001 --overlays overlays/"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGES", help="image files")
    parser.add_argument("--url", default="localhost:8001", help="gRPC HOST:PORT of Triton")
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="another replica of the same server, for failover (repeatable; default: none)",
    )
    parser.add_argument("--model", default="mtqa_inspect", help="ensemble model name")
    parser.add_argument(
        "--model-version",
        default=None,
        help="pin a model version (default: the one the server's version policy serves)",
    )
    add_report_options(parser)
    parser.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the server and model to become ready",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="also wait (up to --connect-timeout) for a server that is not listening yet; "
        "without it a refused connection fails at once",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")


def _table(results: list, classes: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mtqa inspection")
    table.add_column("image")
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("grade")
    table.add_column("regions", justify="right")
    table.add_column("ms", justify="right")
    for r in results:
        if not r.ok:
            table.add_row(Path(r.source).name, *(["-"] * len(classes)), "error", "-", "-")
            continue
        cells = [f"{d.probability:.3f}{' *' if d.decision else ''}" for d in r.defects]
        table.add_row(
            Path(r.source).name,
            *cells,
            f"{r.grade.name} ({r.grade.probabilities[r.grade.name]:.2f})",
            str(len(r.regions)),
            f"{r.timings.round_trip_ms:.1f}",
        )
    console = Console(width=max(100, 24 + 12 * len(classes)))
    console.print(table)
    answered = [r for r in results if r.ok]
    if answered:
        r = answered[0]
        console.print(f"model {r.model_name} v{r.model_version}; * = defect decided present")


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """`--json` and `--overlays`: how `report` shows results (inspect and predict share them)."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--overlays",
        type=Path,
        default=None,
        metavar="DIR",
        help="write one overlay PNG per image here (default: none written)",
    )


def report(
    results: list, args: argparse.Namespace, classes: tuple[str, ...], command: str = "inspect"
) -> int:
    """Print results (answered and not) and write overlays; the exit code of the first image
    that got no answer (mtqa_cli.exits.code_for), else 0. `mtqa predict` reports its offline
    results through it too (`command`)."""
    from mtqa_client.overlay import render_overlay

    if args.overlays is not None:
        args.overlays.mkdir(parents=True, exist_ok=True)
        for result in results:
            if result.ok:
                out = args.overlays / f"{Path(result.source).stem}_overlay.png"
                render_overlay(result.source, result).save(out)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _table(results, classes)
    failed = [r for r in results if not r.ok]
    for item in failed:
        exits.fail(command, f"{item.source}: {type(item.error).__name__}: {item.error}")
    return exits.code_for(failed[0].error) if failed else exits.OK


def run(args: argparse.Namespace) -> int:
    from mtqa_client import BatchError, InspectionClient, InspectionError

    try:
        with InspectionClient(
            args.url,
            model=args.model,
            model_version=args.model_version,
            endpoints=args.endpoint,
            timeout_s=args.timeout,
            connect_timeout_s=args.connect_timeout,
            wait_for_server=args.wait,
        ) as client:
            paths = [str(p) for p in args.images]
            try:
                results = client.inspect_many(paths, concurrency=args.concurrency)
            except BatchError as exc:  # a request failed as a whole: show what was answered
                report(exc.results, args, client.spec.classes)
                return exits.fail("inspect", f"BatchError: {exc}", exits.code_for(exc))
            return report(results, args, client.spec.classes)
    except InspectionError as exc:
        return exits.fail("inspect", f"{type(exc).__name__}: {exc}", exits.code_for(exc))
