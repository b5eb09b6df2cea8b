"""gRPC TLS and restricted-protocol settings, turned into `tritonserver` flags and client headers.

Triton checks restricted protocols per request: gRPC callers must send the metadata header
`triton-grpc-protocol-<header>: <key>`, HTTP callers the plain header `<header>: <key>`. We restrict
both endpoints with the same key, so the HTTP port is no back door around a restricted gRPC port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mtqa.serving.errors import SecurityConfigError

GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
PROTOCOLS = (
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
)
_HEADER = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _pem_file(path: Path | str, what: str) -> Path:
    """Return `path` as a Path after checking it is a readable PEM file."""
    path = Path(path)
    if not path.is_file():
        raise SecurityConfigError(f"{what} {path} does not exist")
    if b"-----BEGIN " not in path.read_bytes()[:4096]:
        raise SecurityConfigError(f"{what} {path} is not a PEM file")
    return path


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate and key for gRPC TLS; with `ca`, clients must present a cert it signed."""

    cert: Path
    key: Path
    ca: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cert", _pem_file(self.cert, "TLS certificate"))
        object.__setattr__(self, "key", _pem_file(self.key, "TLS private key"))
        if self.ca is not None:
            object.__setattr__(self, "ca", _pem_file(self.ca, "TLS CA certificate"))

    @property
    def mutual(self) -> bool:
        """True when clients must authenticate with a certificate (mutual TLS)."""
        return self.ca is not None

    def server_args(self) -> list[str]:
        """Return the `tritonserver` flags that enable TLS on the gRPC endpoint."""
        args = [
            "--grpc-use-ssl=true",
            f"--grpc-server-cert={self.cert}",
            f"--grpc-server-key={self.key}",
        ]
        if self.ca is not None:
            args += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={self.ca}"]
        return args


@dataclass(frozen=True)
class RestrictedProtocols:
    """Protocols (default: model-repository, i.e. load/unload/index) that need `header: key`."""

    header: str
    key: str
    protocols: tuple[str, ...] = ("model-repository",)

    def __post_init__(self) -> None:
        if not _HEADER.match(self.header):
            raise SecurityConfigError(
                f"restricted-protocol header {self.header!r} must be lower-case letters, digits,"
                " '-' or '_'"
            )
        if not self.key or any(c in self.key for c in ",:= \t\n"):
            raise SecurityConfigError(
                "restricted-protocol key must be non-empty without ,:= or spaces"
            )
        unknown = sorted(set(self.protocols) - set(PROTOCOLS))
        if unknown or not self.protocols:
            raise SecurityConfigError(
                f"unknown protocols {unknown or '(none given)'}; choose from {', '.join(PROTOCOLS)}"
            )

    @classmethod
    def parse(
        cls, spec: str, protocols: tuple[str, ...] = ("model-repository",)
    ) -> RestrictedProtocols:
        """Build from a `HEADER=KEY` string as given on the command line."""
        header, sep, key = spec.partition("=")
        if not sep:
            raise SecurityConfigError(f"expected HEADER=KEY, got {spec!r}")
        return cls(header.strip().lower(), key.strip(), protocols)

    def server_args(self) -> list[str]:
        """Return the flags restricting the protocols on both gRPC and HTTP."""
        spec = f"{','.join(self.protocols)}:{self.header}={self.key}"
        return [f"--grpc-restricted-protocol={spec}", f"--http-restricted-api={spec}"]

    def grpc_headers(self) -> dict[str, str]:
        """Metadata a gRPC client sends to use the restricted protocols."""
        return {GRPC_HEADER_PREFIX + self.header: self.key}

    def http_headers(self) -> dict[str, str]:
        """Headers an HTTP client sends to use the restricted APIs."""
        return {self.header: self.key}
