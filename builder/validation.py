"""The gate's validation split, rebuilt from the checkpoint's own data record.

Items are normalised with the checkpoint's mean/std (not statistics re-measured on a limited train
subset), so the ONNX variants see exactly the inputs serving would give them.
"""

from __future__ import annotations

from typing import Any

from mtqa_builder.errors import BuildError


def validation_set(ckpt, source: str | None = None, limit: int | None = None, synth_val: int = 0):
    """The `val` dataset of `source` (default: the data the checkpoint was trained on).

    A synthetic validation split is a stream, so the gate can read more of it than training
    did: `synth_val` images (the run's own val images first, then the ones after them).
    """
    from mtqa.data import DatasetError, build_datasets

    data: dict[str, Any] = ckpt.config.get("data") or {}
    source = source or data.get("source")
    if not source:
        raise BuildError("checkpoint config names no data source; pass --val-data")
    seed = (data.get("resolved") or {}).get("seed", 0)
    sizes = list(data.get("synth_sizes") or (2048, 256, 256))
    if source == "synth":
        sizes[1] = max(int(sizes[1]), synth_val)
    try:
        bundle = build_datasets(
            source,
            ckpt.image_size,
            seed=int(seed),
            augment=False,
            synth_sizes=tuple(sizes),
            classes=list(ckpt.classes),
            grade_rule=ckpt.config.get("grade_rule"),
            limit=limit or data.get("limit"),
        )
    except DatasetError as exc:
        raise BuildError(f"validation data {source!r} unusable: {exc}") from exc
    val = bundle.val
    val.mean, val.std = tuple(ckpt.mean), tuple(ckpt.std)
    return val
