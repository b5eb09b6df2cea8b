"""Write a synthetic dataset to disk in the indexed-mask format (``mtqa data synth``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from mtqa.data.errors import DatasetError
from mtqa.data.synth import SynthConfig, SynthGenerator


def split_sizes(n: int, val_frac: float, test_frac: float) -> dict[str, int]:
    """Image counts per split for ``n`` images; val and test get at least one each."""
    if n < 3:
        raise DatasetError(f"need at least 3 images (one per split), got n={n}")
    if not (0 < val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise DatasetError(f"bad split fractions val={val_frac} test={test_frac}")
    n_val = max(1, round(n * val_frac))
    n_test = max(1, round(n * test_frac)) if test_frac > 0 else 0
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def write_synth_dataset(
    out: Path,
    n: int,
    *,
    config: SynthConfig | None = None,
    seed: int = 0,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
) -> dict[str, int]:
    """Generate ``n`` images into ``out`` (images/, masks/, classes.json); return split sizes.

    Masks are class-index PNGs where overlapping defects resolve to the later-drawn one. Images
    are lossless PNG so that the on-disk set equals the in-memory one pixel for pixel.
    """
    config = config or SynthConfig()
    sizes = split_sizes(n, val_frac, test_frac)
    out = Path(out)
    if (out / "images").exists() and any((out / "images").rglob("*.png")):
        raise DatasetError(f"{out} already holds a dataset; choose an empty folder")
    generator = SynthGenerator(config, seed)
    for stream, (split, count) in enumerate(sizes.items()):
        if count == 0:
            continue
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            sample = generator.generate(stream, 0, i)
            name = f"{split}_{i:06d}.png"
            Image.fromarray(sample.image).save(out / "images" / split / name, compress_level=1)
            Image.fromarray(np.ascontiguousarray(sample.index_mask)).save(
                out / "masks" / split / name, compress_level=1
            )
    meta = {"classes": list(config.classes), "generator": config.to_dict(), "seed": seed}
    (out / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    return sizes
