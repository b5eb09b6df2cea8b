"""Typed errors of the serving launcher, so callers can tell set-up problems from failures."""

from __future__ import annotations


class ServingError(RuntimeError):
    """Base class of every error the serving launcher raises."""


class ServerNotFoundError(ServingError):
    """No usable `tritonserver` binary or python backend files were found."""


class ServerStartError(ServingError):
    """The server exited, hung or never became ready; the message ends with the log tail."""


class ModelControlError(ServingError):
    """Loading, unloading or listing models through the repository API failed."""


class SecurityConfigError(ServingError):
    """TLS files, a key or a restricted-protocol setting are missing or malformed, or a listen
    request breaks the security policy (raised before anything is launched)."""
