"""Realistic request payloads: encoded product-size images from the synthetic generator, and the
matching preprocessed float32 tensors for the raw network.

Payloads are written once per bench into a folder (`images/NNN.jpg|png`, `tensors.npy`) that the
Locust workers, perf_analyzer's input file and the peers all read, so every column of a report
sends the same bytes.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = {"jpeg": ("JPEG", ".jpg"), "png": ("PNG", ".png")}
# Used only when the model's normalisation is unknown (bench against --url without a repository):
# tensor values change no timing of the network, only its outputs.
FALLBACK_MEAN = (0.5, 0.5, 0.5)
FALLBACK_STD = (0.25, 0.25, 0.25)


def product_images(count: int, size: int, seed: int = 7) -> list[np.ndarray]:
    """`count` synthetic RGB product images (uint8, `size` x `size`) with random defects."""
    # mtqa.data loads torch: imported only where payloads are made, so Locust workers (which
    # import this module to read payloads) stay free of it.
    from mtqa.data.synth import SynthConfig, SynthGenerator

    gen = SynthGenerator(SynthConfig(size=size, max_defects=3), seed=seed)
    return [gen.generate(0, i).image for i in range(count)]


def encode(image: np.ndarray, fmt: str) -> bytes:
    """Encode one uint8 image as JPEG (quality 90) or PNG."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {sorted(FORMATS)}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=FORMATS[fmt][0], quality=90)
    return buf.getvalue()


def write_payloads(
    folder: Path,
    *,
    count: int = 16,
    size: int = 256,
    fmt: str = "jpeg",
    model_size: int,
    mean: Sequence[float] = FALLBACK_MEAN,
    std: Sequence[float] = FALLBACK_STD,
) -> Path:
    """Write encoded images and their model-ready tensors [count, 3, S, S] into `folder`."""
    from mtqa.data.decode import decode_image
    from mtqa.data.preprocess import preprocess_image

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    tensors = []
    for i, image in enumerate(product_images(count, size)):
        data = encode(image, fmt)
        (folder / "images" / f"{i:03d}{FORMATS[fmt][1]}").write_bytes(data)
        tensors.append(
            preprocess_image(decode_image(data, size=model_size).rgb, model_size, mean, std)
        )
    np.save(folder / "tensors.npy", np.stack(tensors).astype(np.float32))
    meta = {"count": count, "size": size, "format": fmt, "model_size": model_size}
    (folder / "payloads.json").write_text(
        json.dumps({**meta, "mean": list(mean), "std": list(std)})
    )
    return folder


def read_images(folder: Path) -> list[bytes]:
    """The encoded images of a payload folder, in order."""
    files = sorted((Path(folder) / "images").iterdir())
    if not files:
        raise FileNotFoundError(f"no payload images in {folder}/images")
    return [f.read_bytes() for f in files]


def read_tensors(folder: Path) -> np.ndarray:
    """The preprocessed tensors of a payload folder, float32 [count, 3, S, S]."""
    return np.load(Path(folder) / "tensors.npy", allow_pickle=False)


def perf_analyzer_inputs(folder: Path, target: Path, kind: str, tensor_steps: int = 2) -> Path:
    """perf_analyzer `--input-data` JSON: the same images (b64 BYTES) or tensors, one per step.

    Tensors travel as JSON numbers, so only `tensor_steps` of them are written (a few MB each).
    """
    steps = []
    if kind == "inspect":
        for data in read_images(folder):
            # b64 content is the tensor's wire form: BYTES elements carry a uint32 length prefix.
            b64 = base64.b64encode(struct.pack("<I", len(data)) + data).decode("ascii")
            steps.append({"image_bytes": {"b64": b64}})
    else:
        for x in read_tensors(folder)[:tensor_steps]:
            steps.append({"images": {"content": x.ravel().tolist(), "shape": list(x.shape)}})
    target.write_text(json.dumps({"data": steps}))
    return target
