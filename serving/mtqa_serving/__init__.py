"""Serving: launch a real Triton server on a model repository (locally or in NGC images)."""

from mtqa_client.control_key import CONTROL_HEADER, CONTROL_KEY_ENV, control_headers
from mtqa_serving.errors import (
    ModelControlError,
    SecurityConfigError,
    ServerNotFoundError,
    ServerStartError,
    ServingError,
)
from mtqa_serving.ports import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    free_ports,
)
from mtqa_serving.security import (
    ADMIN_PROTOCOLS,
    RestrictedProtocols,
    TlsConfig,
    control_key,
)
from mtqa_serving.server import TritonServer

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
    "control_headers",
    "control_key",
    "free_ports",
]
