"""A corpus of bad input against a real local Triton, through the SDK and raw to the server.

Every case must end in a clear error (a typed `InspectionError` from the SDK, or an error status
with a message from the server) or, for unusual but valid images, in a normal answer; after each
case a valid request is still answered and the server is still running.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from mtqa_client import (
    InspectionClient,
    InspectionError,
    InvalidInputError,
    ModelNotReadyError,
)
from PIL import Image
from tritonclient.utils import InferenceServerException

from mtqa.serving import TritonServer

pytestmark = pytest.mark.server


@dataclass
class Ctx:
    """What a case needs: the SDK client (server-side image checks), a raw client, geometry."""

    sdk: InspectionClient
    raw: grpcclient.InferenceServerClient
    size: int
    max_batch: int
    good_png: bytes


@pytest.fixture(scope="module")
def ctx(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    repo = Path(shutil.copytree(built_repo, tmp_path_factory.mktemp("bad") / "repo"))
    with TritonServer(repo, startup_timeout=180) as server:
        # validate_images=False: the server, not the SDK's pre-check, must judge the bytes.
        sdk = InspectionClient(server.grpc_url, retries=0, validate_images=False, timeout_s=30)
        raw = grpcclient.InferenceServerClient(server.grpc_url)
        spec = sdk.net_spec()
        good = _png(np.full((40, 50, 3), 128, np.uint8))
        yield Ctx(sdk, raw, spec.image_size, spec.max_batch_size, good)
        assert server.running, "the server died during the bad-input corpus"
        sdk.close()
        raw.close()


def _png(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, **kw).save(buf, format="PNG")
    return buf.getvalue()


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _jpeg() -> bytes:
    return _encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG"
    )


def _huge_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming width x height (a decompression bomb), with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _flip(data: bytes, start: int, stop: int) -> bytes:
    """`data` with bytes [start, stop) inverted (inside a PNG's first IDAT: CRC mismatch)."""
    return data[:start] + bytes(b ^ 0xFF for b in data[start:stop]) + data[stop:]


def _gif() -> bytes:
    frames = [Image.new("P", (32, 32), color=i * 40) for i in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _bytes_tensor(items: list[bytes]) -> grpcclient.InferInput:
    data = np.array([[b] for b in items], dtype=np.object_)
    t = grpcclient.InferInput("image_bytes", list(data.shape), "BYTES")
    t.set_data_from_numpy(data)
    return t


def _tensor(name: str, arr: np.ndarray, dtype: str) -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(arr.shape), dtype)
    t.set_data_from_numpy(arr)
    return t


def _images(c: Ctx, n: int = 1, side: int | None = None, fill: float = 0.0) -> np.ndarray:
    side = side or c.size
    return np.full((n, 3, side, side), fill, dtype=np.float32)


# Each case: (how it is sent, call, expected). "sdk" calls must raise the named typed error;
# "server" calls go raw to Triton and must come back as an error status with a message;
# "answer" means the input is odd but valid and must be answered normally.
Case = tuple[str, Callable[[Ctx], object], type[Exception] | str]


def _net(c: Ctx, arr: np.ndarray, dtype: str = "FP32", name: str = "images") -> object:
    """Raw request to `mtqa_net`, past the SDK's checks."""
    return c.raw.infer("mtqa_net", [_tensor(name, arr, dtype)])


def _ens(c: Ctx, items: list[bytes]) -> object:
    """Raw request to the `mtqa_inspect` ensemble, past the SDK's checks."""
    return c.raw.infer("mtqa_inspect", [_bytes_tensor(items)])


def _fp32_as_bytes(c: Ctx) -> object:
    return c.raw.infer(
        "mtqa_inspect", [_tensor("image_bytes", np.zeros((1, 1), np.float32), "FP32")]
    )


def _unknown_model(c: Ctx) -> object:
    return InspectionClient(c.sdk.options.urls[0], model="nope", connect_timeout_s=1, retries=0)


def _noise_bytes() -> bytes:
    return np.random.default_rng(1).bytes(4096)


def _cmyk_jpeg() -> bytes:
    return _encode(Image.new("CMYK", (48, 32), (10, 200, 30, 0)), "JPEG")


CASES: dict[str, Case] = {
    "truncated_jpeg": ("sdk", lambda c: c.sdk.inspect(_jpeg()[:300]), InvalidInputError),
    "zero_bytes": ("sdk", lambda c: c.sdk.inspect(b""), InvalidInputError),
    "zero_bytes_raw": ("server", lambda c: _ens(c, [b""]), "error"),
    # Several images a request are decoded on parallel threads: one bad one fails the request.
    "one_bad_of_three_raw": ("server", lambda c: _ens(c, [c.good_png, b"?", c.good_png]), "error"),
    "text_file": ("sdk", lambda c: c.sdk.inspect(b"lot 42 passed QA\n" * 20), InvalidInputError),
    "random_bytes": ("sdk", lambda c: c.sdk.inspect(_noise_bytes()), InvalidInputError),
    "png_bad_crc": ("sdk", lambda c: c.sdk.inspect(_flip(c.good_png, 45, 60)), InvalidInputError),
    "huge_dimensions": ("sdk", lambda c: c.sdk.inspect(_huge_png()), InvalidInputError),
    "huge_dimensions_raw": ("server", lambda c: _ens(c, [_huge_png()]), "error"),
    "non_image_array": (
        "sdk",
        lambda c: c.sdk.inspect(np.zeros((4, 4, 5), np.uint8)),
        InvalidInputError,
    ),
    "float_image_array": ("sdk", lambda c: c.sdk.inspect(np.zeros((8, 8))), InvalidInputError),
    "empty_image_list": ("sdk", lambda c: c.sdk.inspect([]), InvalidInputError),
    "tensor_wrong_dtype": (
        "sdk",
        lambda c: c.sdk.infer_tensor(_images(c).astype(np.float64)),
        InvalidInputError,
    ),
    "tensor_wrong_dtype_raw": (
        "server",
        lambda c: _net(c, _images(c).astype(np.float64), "FP64"),
        "error",
    ),
    "tensor_wrong_shape": (
        "sdk",
        lambda c: c.sdk.infer_tensor(_images(c, side=c.size + 3)),
        InvalidInputError,
    ),
    "tensor_wrong_shape_raw": ("server", lambda c: _net(c, _images(c, side=c.size + 3)), "error"),
    "tensor_nan": ("sdk", lambda c: c.sdk.infer_tensor(_images(c, fill=np.nan)), InvalidInputError),
    "tensor_inf": ("sdk", lambda c: c.sdk.infer_tensor(_images(c, fill=np.inf)), InvalidInputError),
    "tensor_nan_raw": ("server", lambda c: _net(c, _images(c, fill=np.nan)), "error"),
    "empty_batch": ("sdk", lambda c: c.sdk.infer_tensor(_images(c, n=0)), InvalidInputError),
    "empty_batch_raw": ("server", lambda c: _net(c, _images(c, n=0)), "error"),
    "over_max_batch_raw": ("server", lambda c: _net(c, _images(c, n=c.max_batch + 1)), "error"),
    "over_max_batch_bytes_raw": (
        "server",
        lambda c: _ens(c, [c.good_png] * (c.max_batch + 1)),
        "error",
    ),
    "unknown_model": ("sdk", _unknown_model, ModelNotReadyError),
    "unknown_version": (
        "sdk",
        lambda c: c.sdk.infer_tensor(_images(c), version=99),
        ModelNotReadyError,
    ),
    "wrong_input_name_raw": ("server", lambda c: _net(c, _images(c), name="pixels"), "error"),
    "bytes_as_fp32_raw": ("server", _fp32_as_bytes, "error"),
    "one_by_one_image": ("answer", lambda c: c.sdk.inspect(np.full((1, 1), 200, np.uint8)), "-"),
    "png_16bit": (
        "answer",
        lambda c: c.sdk.inspect(_png(np.full((30, 30), 40000, np.uint16))),
        "-",
    ),
    "cmyk_jpeg": ("answer", lambda c: c.sdk.inspect(_cmyk_jpeg()), "-"),
    "animated_gif": ("answer", lambda c: c.sdk.inspect(_gif()), "-"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_clearly(ctx: Ctx, name: str) -> None:
    how, call, expected = CASES[name]
    if how == "answer":
        result = call(ctx)
        assert len(result.defects) == len(ctx.sdk.spec.classes)
    elif how == "sdk":
        with pytest.raises(InspectionError) as info:
            call(ctx)
        assert isinstance(info.value, expected), f"{type(info.value).__name__}: {info.value}"
        assert str(info.value).strip()
    else:
        with pytest.raises(InferenceServerException) as info:
            call(ctx)
        assert (info.value.message() or "").strip(), "server error without a message"
    valid = ctx.sdk.inspect(ctx.good_png)  # the server still answers valid requests
    assert valid.image_size == (40, 50)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 20
