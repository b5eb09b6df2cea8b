"""The shared image decoder (mtqa/data/decode.py): bounds, pixel mapping, orientation, one source.

The same file decodes for training (`mtqa.data.load_image`), the SDK (`mtqa_client.decode`, a
vendored copy) and the server (copied next to `mtqa_preprocess` by the builder); the server side is
tested against a real Triton in tests/test_bad_input.py.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa.data import decode, load_image
from mtqa.data.errors import DatasetError

ROOT = Path(__file__).resolve().parents[1]


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def bomb_png() -> bytes:
    """A ~20 KB all-zero 13000 x 13000 1-bit PNG: 169 Mpx behind a tiny file."""
    return encode(Image.new("1", (13000, 13000)), "PNG")


def exif_rotated_jpeg() -> bytes:
    """A 40x20 (w x h) JPEG, left half white, tagged Orientation 6 (display rotated 90 cw)."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def test_sdk_copy_is_byte_identical() -> None:
    shared = (ROOT / "mtqa" / "data" / "decode.py").read_bytes()
    assert (ROOT / "client" / "mtqa_client" / "decode.py").read_bytes() == shared, (
        "client/mtqa_client/decode.py must be a verbatim copy of mtqa/data/decode.py: "
        "cp mtqa/data/decode.py client/mtqa_client/decode.py"
    )


def test_decode_module_is_self_contained() -> None:
    source = (ROOT / "mtqa" / "data" / "decode.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all("mtqa" not in line for line in imports), imports


def test_bomb_is_refused_from_its_header_quickly() -> None:
    data = bomb_png()
    assert len(data) < 40_000
    start = time.perf_counter()
    with pytest.raises(decode.ImageTooLargeError, match="too large"):
        decode.decode_image(data)
    with pytest.raises(decode.ImageTooLargeError):
        decode.probe_image(data)
    assert time.perf_counter() - start < 1.0


def test_max_pixels_is_checked_before_decoding() -> None:
    data = encode(Image.new("L", (300, 200)), "PNG")
    with pytest.raises(decode.ImageTooLargeError, match="300x200"):
        decode.decode_image(data, max_pixels=50_000)
    assert decode.decode_image(data, max_pixels=60_000).rgb.shape == (200, 300, 3)


def test_16bit_maps_by_dtype_range_not_clipped() -> None:
    scene = np.arange(256, dtype=np.uint8).reshape(16, 16)
    eight = decode.decode_image(encode(Image.fromarray(scene), "PNG")).rgb
    sixteen = decode.decode_image(encode(Image.fromarray(scene.astype(np.uint16) * 257), "PNG"))
    assert np.array_equal(eight, sixteen.rgb)
    # 12-bit data in 16 bits comes out dark (documented), never saturated.
    twelve = decode.decode_image(encode(Image.fromarray(np.full((4, 4), 4095, np.uint16)), "PNG"))
    assert int(twelve.rgb.max()) == 16


def test_float_images_map_by_range_and_refuse_nan() -> None:
    unit = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    rgb = decode.decode_image(encode(Image.fromarray(unit), "TIFF")).rgb
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and rgb[4, 0, 0] == round(unit[4, 0] * 255)
    wide = decode.decode_image(encode(Image.fromarray(unit * 1000 - 200), "TIFF")).rgb
    assert wide.min() == 0 and wide.max() == 255  # min-max, not clipped at 1.0
    nan = np.full((4, 4), np.nan, np.float32)
    with pytest.raises(decode.DecodeError, match="NaN"):
        decode.decode_image(encode(Image.fromarray(nan), "TIFF"))


def test_exif_orientation_is_applied() -> None:
    data = exif_rotated_jpeg()
    assert decode.probe_image(data) == (40, 20)
    out = decode.decode_image(data)
    assert out.rgb.shape == (40, 20, 3) and out.orig_hw == (40, 20)
    # Orientation 6: the white left half ends on top.
    assert out.rgb[:15].mean() > 200 and out.rgb[25:].mean() < 55


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGBA", "CMYK", "I", "I;16"])
def test_modes_decode_to_rgb(mode: str) -> None:
    fmt = {"CMYK": "JPEG", "I": "TIFF"}.get(mode, "PNG")
    out = decode.decode_image(encode(Image.new(mode, (12, 10)), fmt))
    assert out.rgb.dtype == np.uint8 and out.rgb.shape == (10, 12, 3)


def test_large_jpeg_is_drafted_to_the_network_size() -> None:
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), np.uint8)), "JPEG")
    out = decode.decode_image(data, size=128)
    assert out.orig_hw == (1200, 1600)
    assert out.rgb.shape == (150, 200, 3)  # 1/8 scale: the smallest that still covers 128 px
    assert decode.decode_image(data).rgb.shape == (1200, 1600, 3)


def test_errors_name_no_object_repr() -> None:
    with pytest.raises(decode.DecodeError) as info:
        decode.decode_image(b"not an image at all")
    assert "object at 0x" not in str(info.value) and "19 bytes" in str(info.value)


def test_training_loads_through_the_shared_decoder(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(exif_rotated_jpeg())
    assert load_image(path).shape == (40, 20, 3)
    scene = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257
    Image.fromarray(scene).save(tmp_path / "deep.png")
    assert int(load_image(tmp_path / "deep.png").max()) == 255
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="bad.png"):
        load_image(tmp_path / "bad.png")


def test_probe_reads_the_header_only_and_decode_errors_surface() -> None:
    good = encode(Image.fromarray(np.full((40, 50, 3), 128, np.uint8)), "PNG")
    broken = good[:45] + bytes(b ^ 0xFF for b in good[45:60]) + good[60:]  # corrupt IDAT
    assert decode.probe_image(broken) == (40, 50)  # no pixel decoded, so no error yet
    with pytest.raises(decode.DecodeError, match="broken data stream"):
        decode.decode_image(broken)
