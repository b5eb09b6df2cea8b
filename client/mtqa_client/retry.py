"""Retry policy: which errors are retried and how long to wait between rounds.

Retried: `ServerUnavailableError` (connection refused or reset, replica restarting) and
`ServerOverloadedError` (queue full, RESOURCE_EXHAUSTED), since the server did no work for them.
`InferenceTimeoutError` is retried only for idempotent control reads (health, metadata, config):
an inference deadline is the caller's latency budget, and re-sending a request the server may
still be computing would add load exactly when it is slow. `ModelNotReadyError` is retried only
for a model the client already verified at connect: then "unknown model / no available versions"
means the replica is (re)loading it, e.g. right after a restart. Everything else (bad input,
auth, a model never seen) is final. Waits grow exponentially with "equal jitter".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mtqa_client.errors import (
    InferenceTimeoutError,
    InspectionError,
    ModelNotReadyError,
    ServerOverloadedError,
    ServerUnavailableError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` extra rounds over all endpoints, waiting base * 2**round (capped) between."""

    retries: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError(f"invalid retry policy {self}")

    def delay(self, round_index: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed round `round_index` (0-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**round_index))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def is_retryable(
    error: InspectionError, *, idempotent_read: bool, model_verified: bool = False
) -> bool:
    """Whether another attempt may succeed (see the module docstring for the rules)."""
    if isinstance(error, (ServerUnavailableError, ServerOverloadedError)):
        return True
    if isinstance(error, ModelNotReadyError):
        return model_verified
    return isinstance(error, InferenceTimeoutError) and idempotent_read
