"""A corpus of bad input against a real local Triton, through the SDK and raw to the server.

Every case must end in a clear error (a typed `InspectionError` from the SDK, an error status with
a message from the server, or, for an image of an ensemble request, its own `item_error` while the
other images are answered) or, for unusual but valid images, in a correct answer; after each case a
valid request is still answered and the server is still running. docs/reliability.md's bad-input
table is written from these cases.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from mtqa_client import (
    InspectionClient,
    InspectionError,
    InvalidInputError,
    ModelNotReadyError,
)
from mtqa_serving import TritonServer

pytestmark = pytest.mark.server


@dataclass
class Ctx:
    """What a case needs: the SDK client (server-side image checks), a raw client, geometry."""

    sdk: InspectionClient
    raw: grpcclient.InferenceServerClient
    size: int
    max_batch: int
    good_png: bytes
    server: TritonServer


@pytest.fixture(scope="module")
def ctx(triton_server: TritonServer) -> Iterator[Ctx]:
    """Clients on the session server (no server of its own: every case must leave it serving)."""
    # validate_images=False: the server, not the SDK's pre-check, must judge the bytes.
    sdk = InspectionClient(triton_server.grpc_url, retries=0, validate_images=False, timeout_s=30)
    raw = grpcclient.InferenceServerClient(triton_server.grpc_url)
    spec = sdk.net_spec()
    good = _png(np.full((40, 50, 3), 128, np.uint8))
    yield Ctx(sdk, raw, spec.image_size, spec.max_batch_size, good, triton_server)
    assert triton_server.running, "the server died during the bad-input corpus"
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


def _item_errors(c: Ctx, items: list[bytes]) -> list[str]:
    """Raw ensemble request; the per-image `item_error` messages ("" = answered)."""
    out = _ens(c, items).as_numpy("item_error").reshape(-1)
    return [e.decode() if isinstance(e, bytes) else str(e) for e in out]


def _only_item_fails(c: Ctx, bad: bytes) -> str:
    """Send [good, bad, good] raw: the bad one must carry a message, the good ones none."""
    errors = _item_errors(c, [c.good_png, bad, c.good_png])
    assert errors[0] == errors[2] == "" and errors[1].strip(), errors
    assert "object at 0x" not in errors[1], errors[1]
    print(f"item_error: {errors[1]}")  # shown with -s: docs/reliability.md quotes these
    return errors[1]


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


def _bomb_png() -> bytes:
    """A ~20 KB all-zero 13000 x 13000 1-bit PNG (169 Mpx): a real file, not a forged header."""
    return _encode(Image.new("1", (13000, 13000)), "PNG")


def _float_tiff(value: float) -> bytes:
    """A 32-bit float TIFF (mode F), every pixel `value`, a ramp added when it is finite."""
    arr = np.full((24, 24), value, np.float32)
    if np.isfinite(value):
        arr += np.linspace(0, 0.5, 24, dtype=np.float32)[None, :]
    return _encode(Image.fromarray(arr), "TIFF")


def _exif_png(arr: np.ndarray, orientation: int = 6) -> bytes:
    """A lossless PNG of `arr` tagged with an EXIF orientation (6: display rotated 90 cw)."""
    img = Image.fromarray(arr.astype(np.uint8))
    exif = img.getexif()
    exif[0x0112] = orientation
    return _encode(img, "PNG", exif=exif.tobytes())


CASES: dict[str, Case] = {
    "truncated_jpeg": ("sdk", lambda c: c.sdk.inspect(_jpeg()[:300]), InvalidInputError),
    "zero_bytes": ("sdk", lambda c: c.sdk.inspect(b""), InvalidInputError),
    "zero_bytes_raw": ("item", lambda c: _only_item_fails(c, b""), "empty"),
    # Several images a request are decoded on parallel threads: one bad one fails alone.
    "one_bad_of_three_raw": ("item", lambda c: _only_item_fails(c, b"?"), "not a recognised"),
    "truncated_jpeg_raw": ("item", lambda c: _only_item_fails(c, _jpeg()[:300]), "cannot decode"),
    "text_file": ("sdk", lambda c: c.sdk.inspect(b"lot 42 passed QA\n" * 20), InvalidInputError),
    "random_bytes": ("sdk", lambda c: c.sdk.inspect(_noise_bytes()), InvalidInputError),
    "png_bad_crc": ("sdk", lambda c: c.sdk.inspect(_flip(c.good_png, 45, 60)), InvalidInputError),
    "huge_dimensions": ("sdk", lambda c: c.sdk.inspect(_huge_png()), InvalidInputError),
    "huge_dimensions_raw": ("item", lambda c: _only_item_fails(c, _huge_png()), "too large"),
    "bomb_png": ("sdk", lambda c: c.sdk.inspect(_bomb_png()), InvalidInputError),
    "bomb_png_raw": ("item", lambda c: _only_item_fails(c, _bomb_png()), "too large"),
    "float_tiff_nan_raw": ("item", lambda c: _only_item_fails(c, _float_tiff(np.nan)), "NaN"),
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
        lambda c: c.sdk.infer_tensor(_images(c), model_version=99),
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
    "float_tiff": ("answer", lambda c: c.sdk.inspect(_float_tiff(0.25)), "-"),
    "exif_rotated_png": ("answer", lambda c: c.sdk.inspect(_exif_png(np.zeros((20, 30)))), "-"),
    "cmyk_jpeg": ("answer", lambda c: c.sdk.inspect(_cmyk_jpeg()), "-"),
    "animated_gif": ("answer", lambda c: c.sdk.inspect(_gif()), "-"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_clearly(ctx: Ctx, name: str) -> None:
    how, call, expected = CASES[name]
    if how == "answer":
        result = call(ctx)
        assert len(result.defects) == len(ctx.sdk.spec.classes)
    elif how == "item":
        assert expected in call(ctx)
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


# -- bounded decoding ---------------------------------------------------------------------------

RSS_GROWTH_LIMIT = 200 * 2**20


def _preprocess_rss(server: TritonServer) -> int:
    """Summed resident memory (bytes) of the server's `mtqa_preprocess` stub processes."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != server.pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"mtqa_preprocess" not in f.read():
                    continue
            with open(f"/proc/{entry}/status") as f:
                rss = next(line for line in f if line.startswith("VmRSS:"))
            total += int(rss.split()[1]) * 1024
        except (OSError, ProcessLookupError, StopIteration):
            continue  # a process that ended while it was read
    return total


def test_bomb_is_refused_fast_by_sdk_and_server_with_bounded_memory(ctx: Ctx) -> None:
    bomb = _bomb_png()
    assert len(bomb) < 40_000
    with InspectionClient(ctx.server.grpc_url, retries=0) as checking:  # validate_images=True
        for client in (checking, ctx.sdk):
            start = time.perf_counter()
            with pytest.raises(InvalidInputError, match="too large"):
                client.inspect(bomb)
            assert time.perf_counter() - start < 1.0
    before = _preprocess_rss(ctx.server)
    assert before > 0, "no mtqa_preprocess stub found in the server's process group"
    start = time.perf_counter()
    errors = _item_errors(ctx, [bomb] * 8)  # raw: past the SDK's check
    elapsed = time.perf_counter() - start
    assert all("too large" in e for e in errors), errors
    assert elapsed < 1.0, f"8 bombs took {elapsed:.2f} s"
    growth = _preprocess_rss(ctx.server) - before
    print(
        f"8 bombs: {elapsed * 1000:.0f} ms, preprocess RSS {before / 2**20:.0f} MB "
        f"{growth / 2**20:+.1f} MB"
    )
    assert growth < RSS_GROWTH_LIMIT, f"preprocess stubs grew by {growth / 2**20:.0f} MB"


def test_large_jpeg_is_answered_with_bounded_memory(ctx: Ctx) -> None:
    """24 Mpx under the 40 Mpx limit: drafted at the network size, memory back near baseline."""
    ramp = np.linspace(0, 255, 6000, dtype=np.float32)
    img = ramp[None, :, None] * np.linspace(0.2, 1, 4000, dtype=np.float32)[:, None, None]
    data = _encode(Image.fromarray(np.repeat(img.astype(np.uint8), 3, axis=2)), "JPEG")
    before = _preprocess_rss(ctx.server)
    result = _ens(ctx, [data])
    assert result.as_numpy("item_error").reshape(-1)[0] in (b"", "")
    assert np.isfinite(result.as_numpy("presence_prob")).all()
    growth = _preprocess_rss(ctx.server) - before
    print(f"24 Mpx JPEG ({len(data)} bytes): preprocess RSS {growth / 2**20:+.1f} MB")
    assert growth < RSS_GROWTH_LIMIT, f"preprocess stubs grew by {growth / 2**20:.0f} MB"


# -- correct pixels -----------------------------------------------------------------------------


def _same_answer(a, b) -> None:
    assert [d.decision for d in a.defects] == [d.decision for d in b.defects]
    np.testing.assert_allclose(
        [d.probability for d in a.defects], [d.probability for d in b.defects], atol=1e-6
    )
    assert a.grade.name == b.grade.name and a.image_size == b.image_size


def test_8bit_and_16bit_png_of_one_scene_get_the_same_answer(
    ctx: Ctx, sample_images: list[np.ndarray]
) -> None:
    for scene in sample_images[:4]:
        gray = np.asarray(Image.fromarray(scene).convert("L"))
        eight = ctx.sdk.inspect(_png(gray))
        sixteen = ctx.sdk.inspect(_png(gray.astype(np.uint16) * 257))  # full 16-bit range
        _same_answer(eight, sixteen)


def test_exif_rotated_image_is_decoded_upright(ctx: Ctx, sample_images: list[np.ndarray]) -> None:
    upright = sample_images[1]  # 110 x 150: not square, so a missed rotation shows
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # what a camera held sideways writes
    rotated = ctx.sdk.inspect(_exif_png(stored, orientation=6))
    assert rotated.image_size == upright.shape[:2]
    _same_answer(ctx.sdk.inspect(_png(upright)), rotated)


# -- per-item batch results ---------------------------------------------------------------------


def test_mixed_batch_returns_its_good_items(ctx: Ctx, tmp_path: Path) -> None:
    from mtqa_client import ItemError

    missing = tmp_path / "missing.png"
    out = ctx.sdk.inspect([ctx.good_png, b"junk bytes", str(missing), _bomb_png(), ctx.good_png])
    assert [r.ok for r in out] == [True, False, False, False, True]
    assert out[0].image_size == out[4].image_size == (40, 50)
    for i in (1, 2, 3):
        assert isinstance(out[i], ItemError) and out[i].index == i
        assert isinstance(out[i].error, InvalidInputError)
        text = str(out[i].error)
        assert f"item {i}" in text and "object at 0x" not in text
    assert "missing.png" in str(out[2].error) and "too large" in str(out[3].error)
    assert "server refused" in str(out[1].error)  # judged by the server (validate_images=False)
    many = ctx.sdk.inspect_many([ctx.good_png] * 5 + [b"?"], batch_size=2, concurrency=2)
    assert [r.ok for r in many] == [True] * 5 + [False] and many[5].index == 5


def test_a_failed_request_keeps_the_answered_ones(ctx: Ctx) -> None:
    """A request over the channel's message limit fails as a whole; the others are kept."""
    from mtqa_client import BatchError

    noise = _png(np.random.default_rng(2).integers(0, 255, (400, 400, 3), np.uint8))
    assert len(noise) > 256 * 1024
    with (
        InspectionClient(
            ctx.server.grpc_url, retries=0, max_message_bytes=256 * 1024, validate_images=False
        ) as small,
        pytest.raises(BatchError) as info,
    ):
        small.inspect_many(
            [ctx.good_png, ctx.good_png, noise, ctx.good_png], batch_size=2, concurrency=1
        )
    results = info.value.results
    assert [r.ok for r in results] == [True, True, False, False]
    assert len(info.value.failures) == 1 and results[2].error is results[3].error
    assert "2 of 4 images answered" in str(info.value)


# -- regions ------------------------------------------------------------------------------------


def test_regions_only_for_classes_decided_present(
    ctx: Ctx, sample_images: list[np.ndarray]
) -> None:
    results = ctx.sdk.inspect(list(sample_images))
    assert any(r.regions for r in results), "no region at all: the check would be empty"
    for result in results:
        decided = {d.index for d in result.defects if d.decision}
        assert {r.class_index for r in result.regions} <= decided, result.to_dict()


def test_async_client_reports_items_alike(ctx: Ctx) -> None:
    import asyncio

    from mtqa_client import AsyncInspectionClient, ItemError

    async def run() -> tuple[list, list]:
        async with AsyncInspectionClient(
            ctx.server.grpc_url, retries=0, validate_images=False
        ) as client:
            listed = await client.inspect([ctx.good_png, b"junk", ctx.good_png])
            many = await client.inspect_many([ctx.good_png] * 3 + [b"?"], batch_size=2)
            return listed, many

    listed, many = asyncio.run(run())
    assert [r.ok for r in listed] == [True, False, True] and isinstance(listed[1], ItemError)
    assert "item 1" in str(listed[1].error) and listed[2].image_size == (40, 50)
    assert [r.ok for r in many] == [True, True, True, False] and many[3].index == 3
