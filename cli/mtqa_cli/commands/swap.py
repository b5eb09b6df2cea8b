"""`mtqa swap`: replace the serving mtqa_net version on a live Triton, checked, with rollback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtqa_cli import exits
from mtqa_cli.preconditions import first_problem, missing_data, missing_folder
from mtqa_cli.renamed import option

HELP = "Hot-swap the served mtqa_net version (golden check through the SDK, rollback on failure)."
EXAMPLE = (
    "mtqa swap --repo model_repository --model-version int8 --url localhost:8001 --key-file run/key"
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mtqa swap`."""
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("model_repository"),
        help="the model repository the server serves",
    )
    option(
        parser,
        "--model-version",
        "--to",
        required=True,
        help="a mtqa_net version number, a published precision (fp32|fp16|int8: its newest "
        "version) or an engine file (.onnx/.plan) to publish as a new version",
    )
    parser.add_argument("--url", default="localhost:8001", help="gRPC HOST:PORT of Triton")
    option(
        parser,
        "--golden-data",
        "--golden",
        default="synth",
        help="golden set, its val split: synth | neu_seg | PATH (an indexed-mask dataset)",
    )
    parser.add_argument("--golden-count", type=int, default=16, help="golden images")
    parser.add_argument(
        "--tolerance", type=float, default=1.0, help="max drop per head and disagreement, points"
    )
    parser.add_argument(
        "--precision",
        help="precision label of an engine file given to --model-version (default: the "
        "precision of the version now served)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per control call, seconds")
    parser.add_argument(
        "--key-file",
        type=Path,
        help="file holding the server's control key (`mtqa serve` prints it; default:"
        " $MTQA_CONTROL_KEY)",
    )
    parser.add_argument("--json", action="store_true", help="print the history record as JSON")


def run(args: argparse.Namespace) -> int:
    """Swap; a rejected or rolled-back swap prints one `error:` line on stderr and exits with
    its code (mtqa_cli.exits): 3 for a missing repository or unusable version, 4 when the server
    is unavailable, 5 when the golden check failed (the old version keeps serving)."""
    from mtqa_builder.swap import SwapError, SwapFailedError, SwapRequest, swap
    from mtqa_serving import SecurityConfigError, control_key

    if args.golden_count < 1 or args.tolerance < 0 or args.timeout <= 0:
        return exits.usage("swap", "--golden-count must be >= 1, --tolerance >= 0, --timeout > 0")
    problem = first_problem(
        [
            ("--repo", args.repo, missing_folder(args.repo)),
            ("--golden-data", args.golden_data, missing_data(args.golden_data)),
        ]
    )
    if problem:
        return exits.bad_input("swap", problem)
    try:
        key = control_key(args.key_file)
    except SecurityConfigError as exc:
        return exits.fail("swap", exc)
    request = SwapRequest(
        repo=args.repo,
        to=args.model_version,
        url=args.url,
        golden=args.golden_data,
        golden_count=args.golden_count,
        tolerance=args.tolerance,
        precision=args.precision,
        timeout_s=args.timeout,
        key=key,
    )
    log = (lambda _m: None) if args.json else print
    try:
        record = swap(request, log=log)
    except SwapFailedError as exc:
        if args.json:  # the history record of the failed swap is still the command's output
            print(json.dumps(exc.record, indent=2, default=str))
        return exits.fail("swap", exc)
    except SwapError as exc:
        return exits.fail("swap", exc)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    return 0
