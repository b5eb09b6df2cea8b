"""Typed exceptions of the SDK and the mapping from tritonclient's InferenceServerException.

Every error the SDK raises derives from `InspectionError`, carries the gRPC status (when there was
one), the model and the endpoint, and says in plain words what went wrong. `from_server_error`
turns the status code and message that Triton returns into the matching subclass, so callers can
catch `ServerOverloadedError` or `InvalidInputError` instead of parsing strings.
"""

from __future__ import annotations


class InspectionError(Exception):
    """Base class of every SDK error; `status` is the gRPC status name or None."""

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.model = model
        self.endpoint = endpoint

    def __str__(self) -> str:
        parts = (("endpoint", self.endpoint), ("model", self.model), ("status", self.status))
        where = ", ".join(f"{k}={v}" for k, v in parts if v)
        return f"{self.message} ({where})" if where else self.message


class ServerUnavailableError(InspectionError):
    """No endpoint answered (connection refused, server down or not ready before the timeout)."""


class ModelNotReadyError(InspectionError):
    """The model or the requested version is unknown to the server or not loaded."""


class ModelContractError(InspectionError):
    """The served model does not match the mtqa tensor contract (names, shapes, dtypes)."""


class InvalidInputError(InspectionError):
    """The request itself is bad: not an image, wrong shape or dtype, empty, or too large."""


class InferenceTimeoutError(InspectionError):
    """The call did not finish within its deadline (gRPC DEADLINE_EXCEEDED)."""


class ServerOverloadedError(InspectionError):
    """The server refused the request because its queue is full or resources are exhausted."""


class AuthenticationError(InspectionError):
    """The server rejected the credentials or auth headers (UNAUTHENTICATED, restricted API)."""


class PermissionDeniedError(AuthenticationError):
    """The call uses a restricted protocol and the right key was not sent. Never retried.

    Triton answers such a call with gRPC UNAVAILABLE ("This protocol is restricted, expecting
    header ..."), which would otherwise read as a server that is down; it is told by its message.
    """


# Message fragments Triton uses for conditions that share a gRPC status with other errors.
# "request timeout expired": Triton's queue policy dropped the request after waiting its timeout.
_OVERLOAD_MARKERS = (
    "exceeds maximum queue size",
    "queue is full",
    "resource exhausted",
    "request timeout expired",
)
_TOO_LARGE_MARKERS = ("larger than max", "message larger", "exceeds the maximum")
_NOT_FOUND_MARKERS = ("unknown model", "is not found", "not ready", "is not available")
# The mtqa preprocess model answers undecodable bytes with this (as an INTERNAL error).
_BAD_IMAGE_MARKERS = ("cannot preprocess image", "cannot identify image", "not a decodable image")
_RESTRICTED_MARKERS = ("protocol is restricted", "api is restricted", "expecting header")
_AUTH_MARKERS = ("restricted", "unauthenticated", "permission denied")


def _status_name(status: object) -> str | None:
    """Normalise tritonclient's status ("StatusCode.UNAVAILABLE" or None) to "UNAVAILABLE"."""
    if not status:
        return None
    return str(status).rsplit(".", 1)[-1].upper()


# Transport messages (gRPC core) that mean nothing accepted the connection, right now.
_REFUSAL_MARKERS = ("connection refused", "failed to connect", "dns resolution failed")


def is_refusal(error: InspectionError) -> bool:
    """True when the endpoint refused the connection (or did not resolve): nothing listens."""
    low = error.message.lower()
    return isinstance(error, ServerUnavailableError) and any(m in low for m in _REFUSAL_MARKERS)


def from_server_error(
    exc: Exception, *, model: str | None = None, endpoint: str | None = None
) -> InspectionError:
    """Return the typed SDK error for a tritonclient InferenceServerException (or grpc error)."""
    status = _status_name(getattr(exc, "status", lambda: None)())
    raw = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    message = (raw or str(exc) or "no message").strip()
    low = message.lower()
    kw = {"status": status, "model": model, "endpoint": endpoint}
    if any(m in low for m in _OVERLOAD_MARKERS):
        return ServerOverloadedError(f"server overloaded: {message}", **kw)
    if status == "RESOURCE_EXHAUSTED":
        if any(m in low for m in _TOO_LARGE_MARKERS):
            return InvalidInputError(
                f"message too large for the channel (raise max_message_bytes): {message}", **kw
            )
        return ServerOverloadedError(f"server resources exhausted: {message}", **kw)
    if status == "DEADLINE_EXCEEDED":
        return InferenceTimeoutError(f"deadline exceeded: {message}", **kw)
    if any(m in low for m in _RESTRICTED_MARKERS):
        return PermissionDeniedError(
            f"refused: this call needs the server's key (pass key= or headers=): {message}", **kw
        )
    if status in ("UNAUTHENTICATED", "PERMISSION_DENIED") or any(m in low for m in _AUTH_MARKERS):
        return AuthenticationError(f"not authorised: {message}", **kw)
    if status == "NOT_FOUND" or any(m in low for m in _NOT_FOUND_MARKERS):
        return ModelNotReadyError(f"model not available: {message}", **kw)
    if any(m in low for m in _BAD_IMAGE_MARKERS):
        return InvalidInputError(f"the server could not decode the image: {message}", **kw)
    if status == "UNAVAILABLE":
        return ServerUnavailableError(f"server unavailable: {message}", **kw)
    if status in ("INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION"):
        return InvalidInputError(f"request rejected: {message}", **kw)
    return InspectionError(f"inference failed: {message}", **kw)
