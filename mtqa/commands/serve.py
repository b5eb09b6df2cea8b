"""`mtqa serve`: run a real Triton server on a model repository until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtqa.serving import RestrictedProtocols, TlsConfig, TritonServer

HELP = "Serve a Triton model repository with tritonserver (local bundle or NGC install)."


def configure(parser: argparse.ArgumentParser) -> None:
    from mtqa.serving.ports import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT

    parser.add_argument("--repo", type=Path, default=Path("model_repository"))
    parser.add_argument(
        "--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="0 picks a free one"
    )
    parser.add_argument(
        "--http-port", type=int, default=DEFAULT_HTTP_PORT, help="0 picks a free one"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="0 picks a free one"
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="model to load at start (repeatable; default: every model in the repository)",
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        help="let Triton poll the repository for changes instead of explicit model control",
    )
    parser.add_argument("--poll-secs", type=int, default=5, help="poll interval with --poll")
    parser.add_argument("--log-verbose", action="store_true", help="Triton verbose logging")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds")
    tls = parser.add_argument_group("gRPC TLS")
    tls.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    tls.add_argument("--tls-ca", type=Path, help="CA (PEM) client certificates must chain to: mTLS")
    parser.add_argument(
        "--restrict-model-control",
        metavar="HEADER=KEY",
        help="load/unload/index need this header (gRPC: triton-grpc-protocol-HEADER)",
    )


def _security(
    args: argparse.Namespace,
) -> tuple[TlsConfig | None, RestrictedProtocols | None]:
    """Build the TLS and restricted-protocol settings (SecurityConfigError on bad input)."""
    from mtqa.serving import RestrictedProtocols, SecurityConfigError, TlsConfig

    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not (args.tls_cert and args.tls_key):
            raise SecurityConfigError("--tls-cert and --tls-key are both required for TLS")
        tls = TlsConfig(args.tls_cert, args.tls_key, args.tls_ca)
    restricted = None
    if args.restrict_model_control:
        restricted = RestrictedProtocols.parse(args.restrict_model_control)
    return tls, restricted


class _Stop(Exception):
    """Raised from the SIGTERM handler to leave the serving loop."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def run(args: argparse.Namespace) -> int:
    from mtqa.serving import ServingError, TritonServer

    try:
        tls, restricted = _security(args)
        server = TritonServer(
            args.repo,
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            metrics_port=args.metrics_port,
            models=args.models,
            tls=tls,
            restricted=restricted,
            startup_timeout=args.startup_timeout,
            poll=args.poll,
            poll_secs=args.poll_secs,
            log_verbose=1 if args.log_verbose else 0,
        )
        previous = signal.signal(signal.SIGTERM, _raise_stop)
        try:
            server.start()
            _serve(server)
        except (KeyboardInterrupt, _Stop):
            print("stopping tritonserver", file=sys.stderr)
            return 0  # a requested stop is a clean exit, whatever status the server ends with
        finally:
            server.stop()
            signal.signal(signal.SIGTERM, previous)
    except ServingError as err:
        print(f"mtqa serve: {err}", file=sys.stderr)
        return 1
    return 1  # the server exited on its own


def _serve(server: TritonServer) -> None:
    """Print the addresses, then echo the server log until the server exits."""
    print(
        f"serving {server.repo}\n  grpc    {server.grpc_url}"
        f"{' (TLS)' if server.tls else ''}\n  http    {server.http_url}\n"
        f"  metrics {server.metrics_url}\n  pid     {server.pid}",
        flush=True,
    )
    with open(server.log_path, errors="replace") as log:
        while server.running:
            chunk = log.read()
            if chunk:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            time.sleep(0.5)
        sys.stdout.write(log.read())
    print(f"tritonserver exited with code {server.exit_code}", file=sys.stderr)
