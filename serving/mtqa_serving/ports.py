"""Default Triton ports and free-port picking for tests and side-by-side servers."""

from __future__ import annotations

import socket

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports that were free on all interfaces a moment ago.

    All sockets stay open until every port is chosen so the kernel cannot hand out the same port
    twice; another process may still grab one before the server binds it (callers retry).
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
