"""Typed errors of `mtqa swap`; the CLI prints each as one `error:` line on stderr, exit code 1."""

from __future__ import annotations


class SwapError(Exception):
    """Base class: the swap could not be done as asked (nothing changed, or it was rolled back)."""


class TargetError(SwapError):
    """`--model-version` names no usable version: unknown version or precision, missing or
    tampered files."""


class SwapInProgressError(SwapError):
    """Another swap holds the repository's swap lock."""


class ControlError(SwapError):
    """The server refused or failed a model-control call (load with config, index)."""


class ServerUnreachableError(ControlError):
    """The server did not answer its health check: refused, unreachable, timed out, not live."""


class GoldenCheckError(SwapError):
    """The candidate version disagrees with the serving one on the golden set beyond tolerance."""


class SwapFailedError(SwapError):
    """A step failed after the server was touched; `record` is the history entry written."""

    def __init__(self, message: str, record: dict) -> None:
        super().__init__(message)
        self.record = record
