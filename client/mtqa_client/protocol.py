"""Request building and response reading shared by the sync and asyncio clients (no I/O here).

Images travel to the ensemble as one BYTES tensor `image_bytes` of shape [N, 1]; raw tensors go
to `mtqa_net` as FP32 `images` [N, 3, S, S]. Batches larger than the model's `max_batch_size`
are split by `chunks` before they reach these functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import tritonclient.grpc as grpcclient

from mtqa_client.errors import InvalidInputError
from mtqa_client.images import EncodedImage
from mtqa_client.spec import (
    IMAGE_BYTES,
    IMAGES,
    INSPECT_OUTPUTS,
    ITEM_ERROR,
    NET_OUTPUTS,
    ModelSpec,
)

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (size <= 0 means one slice)."""
    size = size if size > 0 else max(1, len(items))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batch_size_for(n: int, max_batch_size: int, concurrency: int) -> int:
    """Requests small enough that `concurrency` of them can be in flight, capped by the model."""
    cap = max_batch_size if max_batch_size > 0 else n
    return max(1, min(cap, math.ceil(n / max(1, concurrency))))


def inspect_request(
    images: Sequence[EncodedImage], spec: ModelSpec
) -> tuple[list[grpcclient.InferInput], list[grpcclient.InferRequestedOutput]]:
    """The ensemble request for a batch of encoded images."""
    data = np.array([[img.data] for img in images], dtype=np.object_)
    tensor = grpcclient.InferInput(IMAGE_BYTES, list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    # mask_size: the part of the input a letterboxed image fills, which its masks are cropped to
    optional = [n for n in ("orig_size", "mask_size", ITEM_ERROR) if n in spec.outputs]
    names = list(INSPECT_OUTPUTS) + optional
    return [tensor], [grpcclient.InferRequestedOutput(n) for n in names]


def check_tensor(images: Any, spec: ModelSpec) -> np.ndarray:
    """Validate a raw batch for `mtqa_net`: float32 [N, 3, S, S] matching the served size."""
    if not isinstance(images, np.ndarray):
        raise InvalidInputError(f"infer_tensor needs a numpy array, got {type(images).__name__}")
    if images.dtype != np.float32:
        raise InvalidInputError(f"infer_tensor needs float32, got {images.dtype}")
    expected = spec.inputs[IMAGES][1][-3:]
    if (
        images.ndim != 4
        or images.shape[0] == 0
        or any(e > 0 and e != a for e, a in zip(expected, images.shape[1:], strict=True))
    ):
        want = "[N, " + ", ".join(str(e) if e > 0 else "?" for e in expected) + "]"
        raise InvalidInputError(
            f"infer_tensor needs shape {want} with N >= 1, got {list(images.shape)}"
        )
    if not np.isfinite(images).all():
        raise InvalidInputError("infer_tensor input holds NaN or Inf values")
    return np.ascontiguousarray(images)


def net_request(
    images: np.ndarray, *, with_data: bool = True
) -> tuple[list[grpcclient.InferInput], list[grpcclient.InferRequestedOutput]]:
    """The `mtqa_net` request for a float32 batch already checked by `check_tensor`.

    `with_data=False` leaves the tensor's bytes out, for a caller that places them in shared
    memory (serialising them first would copy megabytes for nothing).
    """
    tensor = grpcclient.InferInput(IMAGES, list(images.shape), "FP32")
    if with_data:
        tensor.set_data_from_numpy(images)
    return [tensor], [grpcclient.InferRequestedOutput(n) for n in NET_OUTPUTS]


def read_outputs(result: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named outputs of an InferResult as numpy arrays (missing optional ones skipped)."""
    out = {}
    for name in names:
        arr = result.as_numpy(name)
        if arr is not None:
            out[name] = arr
    return out


def response_info(result: Any) -> tuple[str, dict[str, float]]:
    """(model_version, numeric response parameters) of an InferResult."""
    response = result.get_response()
    server: dict[str, float] = {}
    params: Mapping[str, Any] = getattr(response, "parameters", {}) or {}
    for key, param in params.items():
        kind = param.WhichOneof("parameter_choice")
        if key.startswith("sequence_"):  # request bookkeeping echoed back, not a figure
            continue
        if kind in ("int64_param", "uint64_param", "double_param"):
            server[key] = float(getattr(param, kind))
    return str(response.model_version), server


def not_ready_reason(
    index: Sequence[Mapping[str, Any]] | None, model: str, version: str | None, timeout_s: float
) -> str:
    """Explain why `model` is not ready from the repository index (None if it was unreadable)."""
    want = f"model {model!r}" + (f" version {version}" if version else "")
    if index is None:
        return f"{want} not ready within {timeout_s:g} s"
    rows = [m for m in index if m.get("name") == model]
    if not rows:
        names = sorted({str(m.get("name", "?")) for m in index})
        return f"{want} is not in the server's repository; available models: {names}"
    states = [
        f"v{m.get('version', '?')}: {m.get('state', '?')} {m.get('reason', '')}".strip()
        for m in rows
    ]
    return f"{want} not ready within {timeout_s:g} s ({'; '.join(states)})"
