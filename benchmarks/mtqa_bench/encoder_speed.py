"""Training and ONNX Runtime inference speed of the hard-sharing network per encoder.

Run: ``.venv/bin/python -m mtqa_bench.encoder_speed [--size 256] [--steps 20] [--threads 2]``.

Each encoder sits in the `neu` preset's network (decoder width 64, same heads), so the figures
compare what a user would train: `resnet` is the preset's own encoder (widths 32-256, blocks
1-2-2-2), `efficientnet_lite0` the pretrained EfficientNet-Lite0. Training = forward, loss,
backward and an AdamW step as `mtqa.train` runs them (bf16 autocast on CPU, channels_last,
`build_optimizer`) on random batches; inference = the builder's FP32 ONNX export on ONNX Runtime's
CPU provider. Both run in this process with `--threads` intra-op threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mtqa.config import ModelConfig, named_config
from mtqa.losses import MultiTaskLoss
from mtqa.models import build_model
from mtqa.train.loop import autocast_factory
from mtqa.train.optim import build_optimizer
from mtqa_builder.export import export_onnx

CLASSES, GRADES = 3, 4
ENCODERS = {
    "resnet (neu preset)": {},
    "efficientnet_lite0": {"encoder": "efficientnet_lite0", "pretrained": True},
}


def params(module: torch.nn.Module) -> float:
    """Millions of parameters."""
    return sum(p.numel() for p in module.parameters()) / 1e6


def random_batch(n: int, size: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
    mask = (torch.rand(n, CLASSES, size, size, generator=rng) > 0.97).float()
    return {
        "image": torch.randn(n, 3, size, size, generator=rng),
        "mask": mask,
        "has_mask": torch.ones(n),
        "presence": mask.amax((2, 3)),
        "grade": torch.randint(0, GRADES, (n,), generator=rng),
    }


def train_rate(cfg: ModelConfig, size: int, batch: int, steps: int, warmup: int) -> float:
    """Training images/s over `steps` steps after `warmup` untimed ones."""
    preset = named_config("neu")
    model = build_model(cfg, CLASSES, GRADES).train().to(memory_format=torch.channels_last)
    loss_fn = MultiTaskLoss(preset.loss, cfg.tasks)
    optim = build_optimizer(model, torch.nn.Identity(), preset.train.lr, preset.train.weight_decay)
    autocast = autocast_factory(preset.train.amp, torch.device("cpu"))
    data = random_batch(batch, size, torch.Generator().manual_seed(0))
    x = data["image"].contiguous(memory_format=torch.channels_last)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        with autocast():
            losses = loss_fn(model(x), data)
        optim.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optim.step()
    return batch * steps / (time.perf_counter() - start)


def ort_rate(cfg: ModelConfig, size: int, batch: int, runs: int, threads: int) -> float:
    """ONNX Runtime FP32 inference images/s of the builder's export, batch `batch`."""
    model = build_model(cfg, CLASSES, GRADES).eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes
        path = export_onnx(model, size, Path(tmp) / "fp32.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)
    sess.run(None, {"images": images})  # warm-up
    start = time.perf_counter()
    for _ in range(runs):
        sess.run(None, {"images": images})
    return batch * runs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square input size")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument("--runs", type=int, default=10, help="timed ORT batches")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = named_config("neu").model
    print(
        f"{args.size}x{args.size}, batch {args.batch}, {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    print(f"{'encoder':22s} {'enc. M':>7s} {'net M':>6s} {'train img/s':>12s} {'ORT img/s':>10s}")
    for name, overrides in ENCODERS.items():
        cfg = dataclasses.replace(base, **overrides)
        model = build_model(cfg, CLASSES, GRADES)
        train = train_rate(cfg, args.size, args.batch, args.steps, args.warmup)
        infer = ort_rate(cfg, args.size, args.batch, args.runs, args.threads)
        print(
            f"{name:22s} {params(model.encoder):7.2f} {params(model):6.2f} "
            f"{train:12.1f} {infer:10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
