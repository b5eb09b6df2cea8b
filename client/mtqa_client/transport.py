"""Channel settings shared by the sync and asyncio clients: TLS credentials and channel options.

`TlsConfig` names PEM files (root CA, client key and certificate chain for mutual TLS); the files
are read once, and a missing file is an `InvalidInputError` at construction, not a gRPC failure
later. `channel_args` sets the send/receive message limit and keepalive so that a long-lived
client notices a dead replica and reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from mtqa_client.errors import InvalidInputError

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TlsConfig:
    """PEM paths for a TLS channel; all optional (no root CA means the system trust store)."""

    root_certificates: str | Path | None = None
    private_key: str | Path | None = None
    certificate_chain: str | Path | None = None
    server_name_override: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """Read the PEM files and build gRPC channel credentials."""
        if (self.private_key is None) != (self.certificate_chain is None):
            raise InvalidInputError("mutual TLS needs both private_key and certificate_chain")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.root_certificates),
            private_key=_read(self.private_key),
            certificate_chain=_read(self.certificate_chain),
        )


def _read(path: str | Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read TLS file {path}: {exc.strerror}") from None


def channel_args(max_message_bytes: int, tls: TlsConfig | None) -> list[tuple[str, object]]:
    """gRPC channel options: message limits, keepalive, and the TLS name override if any."""
    if max_message_bytes <= 0:
        raise InvalidInputError(f"max_message_bytes must be positive, got {max_message_bytes}")
    args: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Reconnect quickly after a replica restarts instead of gRPC's default 20 s ceiling.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
    ]
    if tls is not None and tls.server_name_override:
        args.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return args


def resolve_tls(tls: bool | TlsConfig | None) -> TlsConfig | None:
    """`True` means TLS with the system trust store; a TlsConfig is used as is."""
    if tls is True:
        return TlsConfig()
    return tls or None
