"""`mtqa serve`: run a real Triton server on a model repository until Ctrl-C or SIGTERM.

Defaults are the safe ones (docs/serving.md, "Security policy"): loopback only, model control off,
the admin protocols behind a control key. The key itself is never printed, only the file that
holds it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtqa_serving import TlsConfig, TritonServer

HELP = "Serve a Triton model repository with tritonserver (local bundle or NGC install)."
# The nvidia-pytriton bundle, unless a tritonserver is on PATH (mtqa_cli.extras).
EXTRAS = ("serve",)
EXAMPLE = "mtqa serve --repo model_repository --grpc-port 8001"


def configure(parser: argparse.ArgumentParser) -> None:
    from mtqa_serving.ports import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT

    parser.add_argument(
        "--repo", type=Path, default=Path("model_repository"), help="the model repository to serve"
    )
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
        help="model to load at start (repeatable; default: every model in the repository);"
        " turns model control on, since only explicit control loads a subset",
    )
    parser.add_argument(
        "--model-control",
        action="store_true",
        help="explicit model control (load/unload, needed by `mtqa swap`), behind the control key",
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        help="let Triton poll the repository for changes (model control on, behind the key)",
    )
    parser.add_argument("--poll-secs", type=int, default=5, help="poll interval with --poll")
    parser.add_argument("--log-verbose", action="store_true", help="Triton verbose logging")
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the server and its models to become ready",
    )
    tls = parser.add_argument_group("gRPC TLS (default: none, plain text on loopback)")
    tls.add_argument(
        "--tls-cert",
        type=Path,
        help="server certificate (PEM); with --tls-key turns TLS on (default: none)",
    )
    tls.add_argument(
        "--tls-key",
        type=Path,
        help="server private key (PEM); goes with --tls-cert (default: none)",
    )
    tls.add_argument(
        "--tls-ca",
        type=Path,
        help="CA (PEM) client certificates must chain to: mutual TLS (default: no client check)",
    )
    access = parser.add_argument_group("access")
    access.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="ADDR",
        help="IPv4 address to bind (default 127.0.0.1); beyond loopback it needs TLS or"
        " --insecure, and with model control a key (HTTP stays on loopback under TLS)",
    )
    access.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --listen without TLS (plain text on the network)",
    )
    access.add_argument(
        "--key-file",
        type=Path,
        help="file holding the control key (default: $MTQA_CONTROL_KEY, else a random key)",
    )


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    """Build the TLS settings (SecurityConfigError on bad input)."""
    from mtqa_serving import SecurityConfigError, TlsConfig

    if not (args.tls_cert or args.tls_key or args.tls_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise SecurityConfigError("--tls-cert and --tls-key are both required for TLS")
    return TlsConfig(args.tls_cert, args.tls_key, args.tls_ca)


class _Stop(Exception):
    """Raised from the SIGTERM handler to leave the serving loop."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def run(args: argparse.Namespace) -> int:
    from mtqa_cli import exits
    from mtqa_cli.preconditions import missing_folder

    problem = missing_folder(args.repo)
    if problem:
        return exits.bad_input("serve", f"--repo {args.repo}: {problem}")
    from mtqa_serving import ServingError, TritonServer, control_key

    try:
        server = TritonServer(
            args.repo,
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            metrics_port=args.metrics_port,
            models=args.models,
            tls=_tls(args),
            startup_timeout=args.startup_timeout,
            poll=args.poll,
            poll_secs=args.poll_secs,
            log_verbose=1 if args.log_verbose else 0,
            listen=args.listen,
            model_control=bool(args.model_control or args.poll or args.models),
            key=control_key(args.key_file),
            insecure=args.insecure,
        )
        if server.exposure.warning:
            print(f"WARNING: {server.exposure.warning}", file=sys.stderr, flush=True)
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
    except ServingError as err:  # as is: a failed start ends with the server's log tail
        print(f"mtqa serve: {err}", file=sys.stderr)
        return exits.code_for(err)  # 3 for TLS files, keys and listen policy, else 1
    return 1  # the server exited on its own


def _serve(server: TritonServer) -> None:
    """Print the addresses and where the key is, then echo the server log until it exits."""
    from mtqa_serving import CONTROL_HEADER

    control = "on (explicit)" if server.model_control else "off"
    if server.model_control and server.poll:
        control = "on (poll)"
    print(
        f"serving {server.repo}\n  grpc    {server.grpc_url}"
        f"{' (TLS)' if server.tls else ''}\n  http    {server.http_url}\n"
        f"  metrics {server.metrics_url}\n  control {control}\n"
        f"  keyfile {server.key_file} (header {CONTROL_HEADER}; mtqa swap --key-file)\n"
        f"  pid     {server.pid}",
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
