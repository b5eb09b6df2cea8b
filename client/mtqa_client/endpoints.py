"""Round-robin over Triton replicas with failover: a replica that fails is benched for a while.

Each call asks `order()` for the endpoints to try: healthy ones first, rotating the starting
point per call (round robin), then benched ones (they are still tried as a last resort, so a
single-replica client never refuses to call). Thread-safe; the asyncio client uses it from one
loop thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class EndpointPool(Generic[T]):
    """Holds (url, handle) pairs and the time until which each one is benched."""

    def __init__(self, items: Sequence[tuple[str, T]], bench_s: float = 2.0) -> None:
        if not items:
            raise ValueError("at least one endpoint is required")
        self._items = list(items)
        self._benched_until = [0.0] * len(items)
        self._next = 0
        self._bench_s = bench_s
        self._lock = threading.Lock()

    @property
    def items(self) -> list[tuple[str, T]]:
        return list(self._items)

    def order(self) -> list[tuple[str, T]]:
        """Endpoints to try for one call, healthy first, rotated for round robin."""
        now = time.monotonic()
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self._items)
        idx = [(start + i) % len(self._items) for i in range(len(self._items))]
        healthy = [i for i in idx if self._benched_until[i] <= now]
        benched = [i for i in idx if self._benched_until[i] > now]
        return [self._items[i] for i in healthy + benched]

    def bench(self, url: str) -> None:
        """Mark `url` as failing so other replicas are preferred for a while."""
        with self._lock:
            for i, (u, _) in enumerate(self._items):
                if u == url:
                    self._benched_until[i] = time.monotonic() + self._bench_s

    def restore(self, url: str) -> None:
        """Mark `url` as healthy again after a successful call."""
        with self._lock:
            for i, (u, _) in enumerate(self._items):
                if u == url:
                    self._benched_until[i] = 0.0
