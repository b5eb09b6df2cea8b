"""Constructor options shared by `InspectionClient` and `AsyncInspectionClient`, validated once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mtqa_client.errors import InvalidInputError
from mtqa_client.images import DEFAULT_MAX_PIXELS
from mtqa_client.retry import RetryPolicy
from mtqa_client.transport import DEFAULT_MAX_MESSAGE_BYTES, TlsConfig, channel_args, resolve_tls


@dataclass(frozen=True)
class ClientOptions:
    """Everything but the transport: endpoints, model, deadlines, retries, TLS, headers."""

    urls: tuple[str, ...]
    model: str
    net_model: str | None  # None: the one the inspect model's config names
    model_version: str | None  # None: the server's version policy
    timeout_s: float
    connect_timeout_s: float
    retry: RetryPolicy
    tls: TlsConfig | None
    headers: Mapping[str, str] = field(default_factory=dict)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    validate_images: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    wait_for_server: bool = False  # False: a refused connection on every endpoint fails at once

    @property
    def version_str(self) -> str:
        """The version as tritonclient wants it ("" = the server's version policy)."""
        return self.model_version or ""

    @property
    def version(self) -> str | None:
        """Deprecated name of `model_version`."""
        return self.model_version

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for tritonclient's grpc (or grpc.aio) InferenceServerClient."""
        kwargs: dict[str, object] = {"channel_args": channel_args(self.max_message_bytes, self.tls)}
        if self.tls is not None:
            kwargs["creds"] = self.tls.credentials()
        return kwargs


def _strip_scheme(url: str) -> str:
    for scheme in ("grpc://", "grpcs://"):
        if url.startswith(scheme):
            return url[len(scheme) :]
    return url


def make_options(
    url: str,
    *,
    model: str,
    net_model: str | None,
    model_version: str | int | None,
    timeout_s: float,
    connect_timeout_s: float,
    retries: int | RetryPolicy,
    tls: bool | TlsConfig | None,
    headers: Mapping[str, str] | None,
    max_message_bytes: int,
    endpoints: Sequence[str],
    validate_images: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    wait_for_server: bool = False,
) -> ClientOptions:
    """Validate constructor arguments into ClientOptions (InvalidInputError on nonsense)."""
    urls = tuple(dict.fromkeys(_strip_scheme(u) for u in (url, *endpoints) if u))
    if not urls or any(":" not in u for u in urls):
        raise InvalidInputError(f"endpoints must be HOST:PORT, got {[url, *endpoints]}")
    if timeout_s <= 0 or connect_timeout_s < 0:
        raise InvalidInputError("timeout_s must be > 0 and connect_timeout_s >= 0")
    if max_pixels < 1:
        raise InvalidInputError(f"max_pixels must be >= 1, got {max_pixels}")
    try:
        policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=int(retries))
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    return ClientOptions(
        urls=urls,
        model=model,
        net_model=net_model or None,
        model_version=None if model_version in (None, "") else str(model_version),
        timeout_s=float(timeout_s),
        connect_timeout_s=float(connect_timeout_s),
        retry=policy,
        tls=resolve_tls(tls),
        headers=dict(headers or {}),
        max_message_bytes=int(max_message_bytes),
        validate_images=validate_images,
        max_pixels=int(max_pixels),
        wait_for_server=bool(wait_for_server),
    )
