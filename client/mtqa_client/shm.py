"""System shared memory regions for `infer_tensor` when client and server share a host.

Raw tensors are large (N x 3 x S x S floats in, N x K x S x S out); with shared memory the gRPC
messages carry only region names and offsets. Regions are created lazily, registered with the
server through the callables given, reused from a free list (one per in-flight call) and
unregistered and destroyed by `close`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tritonclient.utils.shared_memory as shm


@dataclass
class Region:
    """One registered region: Triton name, POSIX key, size in bytes and the local mapping."""

    name: str
    key: str
    size: int
    handle: Any


class ShmPool:
    """Creates, registers, lends out and finally destroys system shared memory regions."""

    _ids = itertools.count()

    def __init__(
        self,
        register: Callable[[str, str, int], None],
        unregister: Callable[[str], None],
    ) -> None:
        self._register, self._unregister = register, unregister
        self._free: list[Region] = []
        self._all: list[Region] = []
        self._lock = threading.Lock()

    def acquire(self, nbytes: int) -> Region:
        """A registered region of at least `nbytes` bytes, reused if a free one is big enough."""
        with self._lock:
            for i, region in enumerate(self._free):
                if region.size >= nbytes:
                    return self._free.pop(i)
        name = f"mtqa_client_{os.getpid()}_{next(self._ids)}"
        handle = shm.create_shared_memory_region(name, "/" + name, nbytes)
        region = Region(name, "/" + name, nbytes, handle)
        try:
            self._register(name, region.key, nbytes)
        except Exception:
            shm.destroy_shared_memory_region(handle)
            raise
        with self._lock:
            self._all.append(region)
        return region

    def release(self, region: Region) -> None:
        """Give a region back for reuse."""
        with self._lock:
            self._free.append(region)

    def close(self) -> None:
        """Unregister (best effort: the server may be gone) and destroy every region."""
        with self._lock:
            regions, self._all, self._free = self._all, [], []
        for region in regions:
            with contextlib.suppress(Exception):  # the server may be gone; still free memory
                self._unregister(region.name)
            shm.destroy_shared_memory_region(region.handle)


def write(region: Region, array: Any) -> None:
    """Copy a numpy array to the start of a region."""
    shm.set_shared_memory_region(region.handle, [array])


def read(region: Region, dtype: Any, shape: list[int], offset: int) -> Any:
    """Copy a tensor out of a region (so the region can be reused at once)."""
    return shm.get_contents_as_numpy(region.handle, dtype, shape, offset).copy()
