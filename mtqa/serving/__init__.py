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
from mtqa.serving.security import RestrictedProtocols, TlsConfig
from mtqa.serving.server import TritonServer

__all__ = [
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
    "free_ports",
]
