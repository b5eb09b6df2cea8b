"""Evaluation pictures and the SDK's overlays colour each defect class the same way."""

from __future__ import annotations

from mtqa import palette
from mtqa_client import overlay


def test_sdk_palette_is_the_core_palette() -> None:
    assert overlay.PALETTE == palette.PALETTE, (
        "mtqa_client.overlay.PALETTE must equal mtqa.palette.PALETTE (the SDK keeps a copy)"
    )


def test_colours_are_distinct_and_hex_matches_rgb() -> None:
    assert len(set(palette.PALETTE)) == len(palette.PALETTE)
    assert palette.class_hex(0) == "#e6194b"
    assert palette.class_colour(len(palette.PALETTE)) == palette.class_colour(0)
