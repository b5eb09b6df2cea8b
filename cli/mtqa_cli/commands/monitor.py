"""`mtqa monitor`: a live terminal view of a server's serving and line figures, no Grafana needed.

Scrapes Triton's metrics port every `--interval` seconds and shows throughput, p50/p99, queue
time, batch size, the defect share per class, the grade mix and input drift (see
mtqa_cli.monitor_figures). `--once` prints one view after one interval and exits.
"""

from __future__ import annotations

import argparse
import time

HELP = "Watch a served repository's throughput, latency, defect rates, grades and input drift."
EXAMPLE = "mtqa monitor --url 127.0.0.1:8002 --interval 5"


def configure(parser: argparse.ArgumentParser) -> None:
    from mtqa_serving.ports import DEFAULT_METRICS_PORT

    parser.add_argument(
        "--url",
        default=f"127.0.0.1:{DEFAULT_METRICS_PORT}",
        help="Triton's metrics endpoint, HOST:PORT or a full http://HOST:PORT/metrics URL",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between scrapes (rates span one)"
    )
    parser.add_argument("--once", action="store_true", help="print one view and exit")


def metrics_url(url: str) -> str:
    """`HOST:PORT` -> http://HOST:PORT/metrics; full URLs unchanged."""
    return url if "://" in url else f"http://{url}/metrics"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from mtqa_cli import exits
    from mtqa_cli.monitor_figures import figures, render, scrape

    if args.interval <= 0:
        return exits.usage("monitor", f"--interval must be > 0, got {args.interval}")
    url = metrics_url(args.url)
    before, start = scrape(url), time.monotonic()
    console = Console()
    if args.once:
        time.sleep(args.interval)
        console.print(render(figures(before, scrape(url), time.monotonic() - start), url))
        return exits.OK
    with Live(console=console, auto_refresh=False) as live:
        while True:
            time.sleep(args.interval)
            after, now = scrape(url), time.monotonic()
            live.update(render(figures(before, after, now - start), url), refresh=True)
            before, start = after, now
