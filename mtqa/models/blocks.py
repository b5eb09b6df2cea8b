"""Network building blocks: a ResNet-ish encoder, a light U-Net decoder and the task heads.

Only export-friendly ops are used (Conv, BatchNorm, ReLU, Add, Concat, Resize with
align_corners=False, GlobalAveragePool, GlobalMaxPool, Sigmoid, Gemm); every spatial size is
static for a given input size, so the only dynamic axis after export is the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Convolution (no bias: BatchNorm follows and folds into it at export), then BN."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv-BN, then ReLU."""
    return nn.Sequential(*conv_bn(c_in, c_out, stride=stride), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (ResNet basic block, constant width)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(width, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        # Zero-init the last BN so every block starts as identity: stabler early training.
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))))


class Encoder(nn.Module):
    """Stride-2 stem, then one stage per width: a stride-2 conv and `blocks` residual blocks.

    `stages` is public so architectures can run several encoders in lock-step (cross-stitch).
    `forward` returns the feature maps of the stem and every stage, shallow to deep.
    """

    def __init__(self, widths: list[int], blocks: list[int], in_channels: int = 3) -> None:
        super().__init__()
        self.widths = [int(w) for w in widths]
        self.stem = conv_bn_relu(in_channels, self.widths[0], stride=2)
        stages = []
        c_in = self.widths[0]
        for width, depth in zip(self.widths, blocks, strict=True):
            layers = [conv_bn_relu(c_in, width, stride=2)]
            layers += [BasicBlock(width) for _ in range(int(depth))]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.ModuleList(stages)

    @property
    def skip_channels(self) -> list[int]:
        """Channels of each returned feature map (stem first)."""
        return [self.widths[0], *self.widths]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def upsample_to(x: torch.Tensor, ref: torch.Tensor, mode: str) -> torch.Tensor:
    """Resize `x` to the spatial size of `ref` (static at export time).

    An exact integer ratio is passed as a scale factor: it exports as a Resize with constant
    scales, which ONNX Runtime runs in its NHWC int8 path (no layout transposes around it) and
    TensorRT takes as is; a target size exports as Shape/Concat arithmetic on the dynamic batch.
    """
    (h, w), (rh, rw) = x.shape[-2:], ref.shape[-2:]
    ratio = rh // h
    size = (
        {"scale_factor": float(ratio)}
        if ratio * h == rh and ratio * w == rw
        else {"size": (rh, rw)}
    )
    if mode == "nearest":
        return F.interpolate(x, mode="nearest", **size)
    return F.interpolate(x, mode="bilinear", align_corners=False, **size)


class ConcatFuse(nn.Sequential):
    """One U-Net level: resize the coarse map to the skip's size, concat, conv-BN-ReLU.

    A Sequential (conv, BN, ReLU) so its parameters keep the names checkpoints already use.
    """

    def __init__(self, c_low: int, c_skip: int, c_out: int, mode: str) -> None:
        super().__init__(*conv_bn_relu(c_low + c_skip, c_out))
        self.mode = mode

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([upsample_to(low, skip, self.mode), skip], dim=1))


class AddFuse(nn.Module):
    """Concat-free U-Net level: ReLU(conv3x3-BN(skip) + resize(conv1x1-BN(coarse))).

    A conv over a concat is a sum of convs over its parts; taking the coarse part as a 1x1 conv
    *before* the resize moves its cost to the low resolution and drops the Concat, which is a
    slow, poorly parallel kernel in ONNX Runtime's int8 path. Each BN folds into its own conv.
    """

    def __init__(self, c_low: int, c_skip: int, c_out: int, mode: str) -> None:
        super().__init__()
        self.skip = conv_bn(c_skip, c_out, kernel=3)
        self.low = conv_bn(c_low, c_out, kernel=1)
        self.mode = mode

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return F.relu(self.skip(skip) + upsample_to(self.low(low), skip, self.mode))


FUSES: dict[str, type[nn.Module]] = {"concat": ConcatFuse, "add": AddFuse}


class UNetDecoder(nn.Module):
    """Light U-Net decoder: from the deepest map up, each level fuses the resized coarser map
    with the skip (`fuse`: `concat` or `add`, see `ConcatFuse` / `AddFuse`) into `width`
    channels; the last level sits at the stem's resolution (half the input). With
    `refine_width` > 0 a final level at full resolution fuses the input image itself, so
    one-pixel-wide scratches and cracks are not lost to a 2x upsampling of logits.
    `forward` returns `(half-resolution features, full-resolution features or None)`.
    """

    def __init__(
        self,
        skip_channels: list[int],
        width: int,
        mode: str,
        refine_width: int = 0,
        fuse: str = "concat",
    ) -> None:
        super().__init__()
        level = FUSES[fuse]
        self.reduce = conv_bn_relu(skip_channels[-1], width)
        self.fuse = nn.ModuleList(level(width, c, width, mode) for c in skip_channels[-2::-1])
        self.refine = level(width, 3, refine_width, mode) if refine_width > 0 else None
        self.out_channels = width
        self.refine_channels = refine_width

    def forward(
        self, feats: list[torch.Tensor], image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.reduce(feats[-1])
        for skip, fuse in zip(feats[-2::-1], self.fuse, strict=True):
            x = fuse(x, skip)
        fine = self.refine(x, image) if self.refine is not None else None
        return x, fine


class SegHead(nn.Module):
    """K logits at input resolution: a 1x1 conv on the half-resolution decoder map, resized, plus
    (with a refine level) a 1x1 conv on the full-resolution features that corrects it pixel by
    pixel. The correction starts at zero, so the refine level can only add detail (thin lines)
    to what the coarse head learns."""

    def __init__(self, c_in: int, num_classes: int, mode: str, refine_channels: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, num_classes, 1)
        self.fine = nn.Conv2d(refine_channels, num_classes, 1) if refine_channels > 0 else None
        if self.fine is not None:
            nn.init.zeros_(self.fine.weight)
            nn.init.zeros_(self.fine.bias)
        self.mode = mode

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor | None], image: torch.Tensor
    ) -> torch.Tensor:
        coarse, fine = feats
        logits = self.conv(coarse)
        if logits.shape[-2:] != image.shape[-2:]:
            logits = upsample_to(logits, image, self.mode)
        if self.fine is not None and fine is not None:
            logits = logits + self.fine(fine)
        return logits


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """`[N,C,H,W] -> [N,2C]`: global average and global max pooling side by side (max keeps
    small defects that averaging over the whole image would dilute)."""
    avg = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return torch.cat([avg, torch.flatten(F.adaptive_max_pool2d(x, 1), 1)], dim=1)


def seg_evidence(seg_logits: torch.Tensor) -> torch.Tensor:
    """`[N,K,S,S] -> [N,2K]`: per-class mean probability (defect area) and peak logit, detached
    so the pooled heads read the segmentation without pulling on it."""
    seg_logits = seg_logits.detach()
    area = torch.flatten(F.adaptive_avg_pool2d(torch.sigmoid(seg_logits), 1), 1)
    return torch.cat([area, torch.flatten(F.adaptive_max_pool2d(seg_logits, 1), 1)], dim=1)


class MLPHead(nn.Module):
    """Gemm-ReLU-Gemm on a pooled feature vector, to `num_out` logits."""

    def __init__(self, c_in: int, hidden: int, num_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(c_in, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
