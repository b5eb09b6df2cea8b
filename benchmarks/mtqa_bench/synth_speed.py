"""Throughput of the synthetic generator: images/s for raw generation and for full dataset items.

Run: ``.venv/bin/python -m mtqa_bench.synth_speed [--size 128] [--n 1000] [--workers 2]``.
Raw = ``SynthGenerator.generate`` (uint8 image + masks); items = ``build_datasets("synth")``
train items (normalised tensors, targets, grade, augmentation), optionally through a DataLoader
with worker processes as training would use it.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from mtqa.data import SynthConfig, SynthGenerator, build_datasets


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} images/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    gen = SynthGenerator(SynthConfig(size=args.size), seed=0)
    gen.generate(0, 0, 0)
    start = time.perf_counter()
    for i in range(args.n):
        gen.generate(0, 0, i)
    print(f"raw generate   {args.size}px, 1 process : {rate(args.n, time.perf_counter() - start)}")

    bundle = build_datasets("synth", args.size, synth_sizes=(args.n, 8, 8))
    start = time.perf_counter()
    for i in range(args.n):
        bundle.train[i]
    print(f"dataset items  {args.size}px, 1 process : {rate(args.n, time.perf_counter() - start)}")

    if args.workers:
        loader = DataLoader(bundle.train, batch_size=32, num_workers=args.workers)
        next(iter(loader))  # start-up excluded
        start = time.perf_counter()
        seen = sum(len(batch["id"]) for batch in loader)
        elapsed = time.perf_counter() - start
        print(f"DataLoader     {args.size}px, {args.workers} workers: {rate(seen, elapsed)}")


if __name__ == "__main__":
    main()
