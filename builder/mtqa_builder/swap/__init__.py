"""Engine swap: replace the serving `mtqa_net` version on a live Triton, checked, with rollback.

`swap(SwapRequest(...))` publishes or resolves the new version, loads it beside the old one
(explicit model control, config override), checks it on a golden set through the SDK, switches
the ensemble to it and retires the old version; any failure rolls back. See docs/reliability.md.
"""

from mtqa_builder.swap.errors import (
    ControlError,
    GoldenCheckError,
    ServerUnreachableError,
    SwapError,
    SwapFailedError,
    SwapInProgressError,
    TargetError,
)
from mtqa_builder.swap.history import HISTORY_FILE
from mtqa_builder.swap.history import read as read_history
from mtqa_builder.swap.procedure import SwapRequest, swap

__all__ = [
    "HISTORY_FILE",
    "ControlError",
    "GoldenCheckError",
    "ServerUnreachableError",
    "SwapError",
    "SwapFailedError",
    "SwapInProgressError",
    "SwapRequest",
    "TargetError",
    "read_history",
    "swap",
]
