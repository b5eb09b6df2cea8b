"""`mtqa bench`: Locust + perf_analyzer sweep against a real Triton, peers, and the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtqa_cli import exits, progress
from mtqa_cli.preconditions import first_problem, missing_folder, missing_run, unwritable
from mtqa_cli.renamed import option

HELP = "benchmark the served models (Locust, perf_analyzer, ORT and naive peers) and report"
# Optional installs this command needs (mtqa_cli.extras): Locust, the naive peer, Triton.
EXTRAS = ("bench",)
EXAMPLE = "mtqa bench --repo model_repository --users 1,4,16 --duration 10 --out results/bench"


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip() and v.strip() != "none"]


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--repo", type=Path, help="built repository: start Triton on it (this or --url required)"
    )
    where.add_argument("--url", help="gRPC HOST:PORT of a running Triton (this or --repo required)")
    parser.add_argument(
        "--repo-info",
        type=Path,
        help="with --url: the repository it serves, for its variants and the peers "
        "(default: none: give --variants as NAME=VERSION)",
    )
    parser.add_argument(
        "--users", type=_ints, default=[1, 4, 16, 64], help="comma list of concurrent users"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument(
        "--variants",
        type=_words,
        default=["fp32", "int8"],
        help="comma list of precisions (or NAME=VERSION) to measure",
    )
    parser.add_argument(
        "--batching", type=_words, default=["on", "off"], help="dynamic batching: on, off or both"
    )
    parser.add_argument(
        "--targets",
        type=_words,
        default=["inspect", "net"],
        help="models to load: inspect (the ensemble, image bytes), net (raw tensors)",
    )
    parser.add_argument(
        "--peers",
        type=_words,
        default=["ort", "naive"],
        help="comparison points: ort (ONNX Runtime in process), naive (FastAPI + torch), none",
    )
    option(
        parser,
        "--run",
        "--checkpoint",
        type=Path,
        help="run directory for the naive peer (default: the run the repository was built "
        "from; without one the naive peer is skipped)",
    )
    parser.add_argument("--request-batch", type=int, default=1, help="images per request")
    parser.add_argument(
        "--shared-memory",
        action="store_true",
        help="raw-tensor points pass tensors through system shared memory (client on the host)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        help="with --url --shared-memory: the server's control key (default: $MTQA_CONTROL_KEY)",
    )
    parser.add_argument("--image-px", type=int, default=256, help="side of the product images")
    parser.add_argument(
        "--image-format", default="jpeg", choices=["jpeg", "png"], help="encoding of the images"
    )
    parser.add_argument(
        "--no-perf-analyzer", action="store_true", help="skip the perf_analyzer measurements"
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    progress.add_option(parser)


def run(args: argparse.Namespace) -> int:
    problem = first_problem(  # before a server is started or a tool is looked for
        [
            ("--repo", args.repo, missing_folder(args.repo)),
            ("--repo-info", args.repo_info, missing_folder(args.repo_info)),
            ("--run", args.run, args.run and missing_run(args.run)),
            ("--out", args.out, unwritable(args.out)),
        ]
    )
    if problem:
        return exits.bad_input("bench", problem)
    from mtqa.progress import stage
    from mtqa_bench.errors import BenchError
    from mtqa_bench.report import format_summary, write_report
    from mtqa_bench.sweep import BenchOptions, Sweep
    from mtqa_serving import ServingError, control_key

    try:
        key = control_key(args.key_file)
    except ServingError as exc:
        return exits.fail("bench", exc)
    opts = BenchOptions(
        out=args.out,
        repo=args.repo,
        url=args.url,
        repo_info=args.repo_info,
        users=args.users,
        duration=args.duration,
        variants=args.variants,
        batching=args.batching,
        targets=args.targets,
        peers=args.peers,
        checkpoint=args.run,
        perf_analyzer=not args.no_perf_analyzer,
        request_batch=args.request_batch,
        shared_memory=args.shared_memory,
        image_px=args.image_px,
        image_format=args.image_format,
        key=key,
    )
    try:
        bar = progress.for_args("bench", args)
        results = Sweep(opts, progress=bar).run()
        with stage(bar, "write report"):
            head = write_report(results)
    except (BenchError, ServingError) as exc:
        return exits.fail("bench", exc)
    print(f"report: {args.out / 'report.md'} (self-contained: {args.out / 'report.html'})")
    print(format_summary(head))
    return 0
