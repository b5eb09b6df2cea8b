"""Serving: launch a real Triton server on a model repository (locally or in NGC images)."""

from mtqa.serving.errors import (
    ModelControlError,
    SecurityConfigError,
    ServerNotFoundError,
    ServerStartError,
    ServingError,
)
from mtqa.serving.ports import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    free_ports,
)
from mtqa.serving.security import (
    ADMIN_PROTOCOLS,
    CONTROL_HEADER,
    CONTROL_KEY_ENV,
    RestrictedProtocols,
    TlsConfig,
    control_grpc_headers,
    control_key,
)
from mtqa.serving.server import TritonServer

__all__ = [
    "ADMIN_PROTOCOLS",
    "CONTROL_HEADER",
    "CONTROL_KEY_ENV",
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_METRICS_PORT",
    "ModelControlError",
    "RestrictedProtocols",
    "SecurityConfigError",
    "ServerNotFoundError",
    "ServerStartError",
    "ServingError",
    "TlsConfig",
    "TritonServer",
    "control_grpc_headers",
    "control_key",
    "free_ports",
]
