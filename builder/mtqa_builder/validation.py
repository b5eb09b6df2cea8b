"""The gate's validation split, rebuilt from the checkpoint's own data record.

Items are normalised with the checkpoint's mean/std (not statistics re-measured on a limited train
subset), so the ONNX variants see exactly the inputs serving would give them.
"""

from __future__ import annotations

from mtqa.calibrate import checkpoint_split
from mtqa.data import DatasetError
from mtqa_builder.errors import BuildError


def validation_set(ckpt, source: str | None = None, limit: int | None = None, synth_val: int = 0):
    """The `val` dataset of `source` (default: the data the checkpoint was trained on).

    A synthetic validation split is a stream, so the gate can read more of it than training
    did: `synth_val` images (the run's own val images first, then the ones after them).
    """
    source = source or (ckpt.config.get("data") or {}).get("source")
    if not source:
        raise BuildError("checkpoint config names no data source; pass --gate-data")
    try:
        val, _ = checkpoint_split(ckpt, "val", source, limit, synth_size=synth_val)
    except DatasetError as exc:
        raise BuildError(f"validation data {source!r} unusable: {exc}") from exc
    return val
