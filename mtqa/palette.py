"""One colour per defect class, the same in every picture the project draws.

The SDK (`mtqa_client.overlay.PALETTE`) may import nothing of ours, so it holds a copy of this
constant; tests/test_palette.py keeps the two equal.
"""

from __future__ import annotations

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
)


def class_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of defect class `index` (0-based, background excluded)."""
    return PALETTE[index % len(PALETTE)]


def class_hex(index: int) -> str:
    """The same colour as `#rrggbb`, for matplotlib and HTML."""
    return "#{:02x}{:02x}{:02x}".format(*class_colour(index))
