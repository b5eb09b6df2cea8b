"""The control key of an mtqa server: how it travels, and where tools look for it.

`mtqa serve` restricts Triton's admin protocols (model control, shared-memory registration,
logging, trace) with a key; Triton checks it per request in the header below (gRPC callers add
the `triton-grpc-protocol-` prefix). The server, the swap procedure and this SDK share these
names, so they are declared here, at the bottom of the stack.
"""

from __future__ import annotations

CONTROL_HEADER = "mtqa-control-key"
CONTROL_KEY_ENV = "MTQA_CONTROL_KEY"
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
CONTROL_KEY_METADATA = GRPC_HEADER_PREFIX + CONTROL_HEADER


def control_headers(key: str | None) -> dict[str, str]:
    """The gRPC metadata that sends `key` as the server's control key (empty without a key)."""
    return {CONTROL_KEY_METADATA: key} if key else {}
