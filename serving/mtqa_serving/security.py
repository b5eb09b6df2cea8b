"""gRPC TLS, restricted protocols and the listen policy, turned into `tritonserver` flags.

Triton checks restricted protocols per request: gRPC callers must send the metadata header
`triton-grpc-protocol-<header>: <key>`, HTTP callers the plain header `<header>: <key>`. We restrict
both endpoints with the same key, so the HTTP port is no back door around a restricted gRPC port.

The policy every launcher applies (docs/serving.md, "Security policy"):

- the admin protocols (`ADMIN_PROTOCOLS`) are always restricted by the control key, whether model
  control is on or off; without a key from the user a random one is generated;
- every endpoint binds to 127.0.0.1 unless a listen address is given;
- a non-loopback listen needs gRPC TLS or an explicit `insecure`, and with model control on a key
  the user supplied (a generated key never leaves this host); with TLS, HTTP stays on loopback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from mtqa_client.control_key import (
    CONTROL_KEY_ENV,
    GRPC_HEADER_PREFIX,
)
from mtqa_serving.errors import SecurityConfigError

LOOPBACK = "127.0.0.1"
# What an unauthenticated peer must never reach: load/unload/index (runs code as the server's
# user), shared-memory registration (makes the server read or write /dev/shm objects), trace and
# logging settings (choose files the server writes, fill its disk). Model config, metadata and
# statistics stay open: clients read them to build their model spec, and the metrics port
# publishes the same counters as statistics.
ADMIN_PROTOCOLS = ("model-repository", "shared-memory", "logging", "trace")
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
    key: str = field(repr=False)  # a secret: kept out of reprs and logs
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


def new_key() -> str:
    """A random control key (URL-safe text, so it is a valid restricted-protocol value)."""
    return secrets.token_urlsafe(32)


def read_key_file(path: Path | str) -> str:
    """The control key stored in `path` (surrounding whitespace dropped)."""
    path = Path(path)
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read the control key file {path}: {exc}") from None
    if not key:
        raise SecurityConfigError(f"control key file {path} is empty")
    return key


def write_key_file(path: Path, key: str) -> Path:
    """Write `key` to a new file readable by its owner only (0600) and return the path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return path


def control_key(key_file: Path | str | None = None) -> str | None:
    """The key from `key_file`, else from $MTQA_CONTROL_KEY, else None (not configured)."""
    if key_file is not None:
        return read_key_file(key_file)
    return os.environ.get(CONTROL_KEY_ENV, "").strip() or None


@dataclass(frozen=True)
class Exposure:
    """Where each endpoint binds, decided by `listen_policy`; `warning` is set for --insecure."""

    grpc: str
    http: str
    metrics: str
    warning: str | None = None


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def listen_policy(
    listen: str,
    *,
    tls: bool,
    insecure: bool,
    model_control: bool,
    key_given: bool,
) -> Exposure:
    """Check a listen request against the policy and return the bind addresses.

    Raises SecurityConfigError (before anything starts) for a non-IPv4 address, a non-loopback
    listen without TLS or `insecure`, and a non-loopback listen with model control on and no key
    from the user. With TLS, HTTP binds to loopback: Triton's HTTP endpoint has no TLS.
    """
    try:
        address = ipaddress.IPv4Address(listen)
    except ValueError:
        raise SecurityConfigError(
            f"listen address {listen!r} must be an IPv4 address (e.g. 0.0.0.0 or 10.0.0.5)"
        ) from None
    if address.is_loopback:
        return Exposure(listen, listen, listen)
    if model_control and not key_given:
        raise SecurityConfigError(
            f"refusing to listen on {listen} with model control on and no control key: give one"
            f" (--key-file or ${CONTROL_KEY_ENV}) or turn model control off"
        )
    if tls:
        return Exposure(grpc=listen, http=LOOPBACK, metrics=listen)
    if not insecure:
        raise SecurityConfigError(
            f"refusing to listen on {listen} without TLS: images, results and the control key"
            " would cross the network in plain text; give --tls-cert/--tls-key, or --insecure"
            " on a network you trust"
        )
    return Exposure(
        listen,
        listen,
        listen,
        warning=f"INSECURE: gRPC and HTTP listen on {listen} in plain text without TLS; anyone"
        " who can reach these ports can send inference and read the control key off the wire",
    )
