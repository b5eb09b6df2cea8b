"""CPU time of the input-drift statistics per image, as mtqa_preprocess computes them.

    python -m mtqa_bench.drift_cost --sizes 128 256 512 --batch 4

Times `drift.image_stats` (numpy, the calling thread only) on random normalised inputs of each
size, in requests of `batch` images; prints microseconds per image (the best of `repeat` runs of
`number` calls, so a busy machine's pauses count as little as possible).
"""

from __future__ import annotations

import argparse
import json
import timeit

import numpy as np

from mtqa_builder.triton_models import drift


def us_per_image(size: int, batch: int, number: int = 200, repeat: int = 5) -> float:
    """Best-of-`repeat` microseconds per image of `image_stats` on [batch, 3, size, size]."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
    sizes = np.tile([size * 3 // 2, size * 2], (batch, 1))
    edges = drift.grey_edges(images)
    drift.image_stats(images, sizes, edges)
    times = timeit.repeat(
        lambda: drift.image_stats(images, sizes, edges), number=number, repeat=repeat
    )
    return 1e6 * min(times) / number / batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[128, 256, 512],
        help="model input sides in px (default: 128 256 512)",
    )
    parser.add_argument("--batch", type=int, default=4, help="images per request (default: 4)")
    args = parser.parse_args(argv)
    result = {str(s): round(us_per_image(s, args.batch), 1) for s in args.sizes}
    print(json.dumps({"us_per_image": result, "batch": args.batch}))


if __name__ == "__main__":
    main()
