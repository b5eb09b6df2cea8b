"""The SDK's overlay pictures: scaled up to >= 512 px, labels on filled boxes, class colours."""

from __future__ import annotations

import numpy as np

from mtqa_client.overlay import MIN_SIZE, PALETTE, render_overlay
from mtqa_client.results import DefectScore, Grade, InspectionResult, Region, Timings, _PackedMask

SIDE = 128


def _result() -> InspectionResult:
    mask = np.zeros((SIDE, SIDE), dtype=np.uint8)
    mask[40:60, 30:90] = 1
    packed = _PackedMask(np.packbits(mask.ravel(), bitorder="big"), SIDE, (SIDE, SIDE))
    empty = _PackedMask(np.packbits(np.zeros(SIDE * SIDE, np.uint8)), SIDE, (SIDE, SIDE))
    return InspectionResult(
        source="memory",
        image_size=(SIDE, SIDE),
        defects=(DefectScore("scratch", 0, 0.9, True), DefectScore("crack", 1, 0.1, False)),
        regions=(Region(0, "scratch", 0.9, (30.0, 40.0, 90.0, 60.0), packed),),
        grade=Grade("minor", 1, {"ok": 0.1, "minor": 0.9}),
        model_name="mtqa_inspect",
        model_version="1",
        timings=Timings(round_trip_ms=1.0, batch_size=1),
        _masks=(packed, empty),
    )


def test_small_image_is_scaled_up_with_a_filled_label() -> None:
    image = np.full((SIDE, SIDE, 3), 90, dtype=np.uint8)
    out = np.asarray(render_overlay(image, _result()))
    scale = MIN_SIZE // SIDE
    assert out.shape == (SIDE * scale, SIDE * scale, 3)
    colour = np.array(PALETTE[0])
    # the mask is tinted towards the class colour, background pixels are left alone
    inside = out[50 * scale, 60 * scale].astype(int)
    assert np.abs(inside - colour).sum() < np.abs(np.full(3, 90) - colour).sum()
    assert (out[5 * scale, 5 * scale] == 90).all()
    # the label's box, filled with the class colour, sits just above the region's box
    label_band = out[40 * scale - 10 : 40 * scale - 2, 30 * scale + 4 : 30 * scale + 40]
    assert (label_band == colour).all(axis=-1).mean() > 0.3


def test_large_image_keeps_its_size() -> None:
    image = np.full((SIDE, SIDE, 3), 90, dtype=np.uint8)
    out = render_overlay(image, _result(), min_size=SIDE)
    assert out.size == (SIDE, SIDE)
