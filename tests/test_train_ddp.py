"""Data-parallel training: `torchrun --nproc_per_node 2` with gloo on CPU; ranks must agree.

Run as a script, this file is the worker torchrun starts in each process.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

OVERRIDES = [
    "model.widths=[8,16]",
    "model.blocks=[1,0]",
    "model.decoder_width=8",
    "model.refine_width=0",
    "train.batch_size=4",
    "train.epochs=1",
    "train.num_workers=0",
    "train.threads=1",
    "data.image_size=48",
    "data.synth_sizes=[24,8,8]",
]


def worker(out: Path, weighting: str) -> None:
    """Train in this process's rank, then gather every rank's weights and compare on rank 0."""
    import torch
    import torch.distributed as dist

    from mtqa.config import apply_overrides, named_config
    from mtqa.train.distributed import close_distributed, init_distributed
    from mtqa.train.loop import Trainer

    env = init_distributed("cpu")
    cfg = apply_overrides(named_config("tiny"), [*OVERRIDES, f"weighting.name={weighting}"])
    trainer = Trainer(cfg, "synth", out, env, progress=False)

    def weights(t: Trainer) -> torch.Tensor:
        params = [*t.model.parameters(), *t.weighting.parameters()]
        return torch.cat([p.detach().flatten() for p in params])

    initial = weights(trainer)
    trainer.run(resume=False)
    flat = weights(trainer)
    gathered = [torch.zeros_like(flat) for _ in range(env.world_size)]
    dist.all_gather(gathered, flat)
    if env.is_main:
        report = {
            "world_size": env.world_size,
            "steps_per_epoch": trainer.steps_per_epoch,
            "max_rank_difference": max(float((g - flat).abs().max()) for g in gathered),
            "moved": float((flat - initial).abs().max()),
        }
        (out / "ddp.json").write_text(json.dumps(report))
    # DDP's reducer holds the process group: free it first, or gloo may abort at exit (as train()).
    del trainer
    gc.collect()
    close_distributed(env)


@pytest.mark.parametrize("weighting", ["uncertainty", "pcgrad"])
def test_two_gloo_processes_agree(tmp_path: Path, weighting: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        __file__,
        str(tmp_path),
        weighting,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[:4000]
    report = json.loads((tmp_path / "ddp.json").read_text())
    assert report["world_size"] == 2
    assert report["steps_per_epoch"] == 24 // (4 * 2)  # DistributedSampler halves the split
    assert report["max_rank_difference"] == 0.0
    assert report["moved"] > 0  # the weights did train
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "metrics.csv").is_file()


if __name__ == "__main__":
    worker(Path(sys.argv[1]), sys.argv[2])
