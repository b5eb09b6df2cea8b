"""Architectures: output contract, single-task variants, soft-sharing penalty, config errors."""

from __future__ import annotations

import pytest
import torch

from mtqa.config import ConfigError, ModelConfig, RunConfig, apply_overrides, named_config
from mtqa.models import OUTPUT_KEYS, build_model


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: small tensors gain nothing from two (see test_weighting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = {"widths": [8, 16, 16], "blocks": [1, 1, 0], "decoder_width": 8, "head_hidden": 16}


def small_cfg(**kw) -> ModelConfig:
    return ModelConfig(**{**SMALL, **kw})


@pytest.mark.parametrize("arch,stitch", [("hard", False), ("soft", False), ("soft", True)])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_output_shapes(arch: str, stitch: bool, batch: int) -> None:
    model = build_model(small_cfg(arch=arch, cross_stitch=stitch), num_classes=3, num_grades=4)
    out = model.eval()(torch.randn(batch, 3, 40, 40))
    assert tuple(out) == OUTPUT_KEYS
    assert out["presence_logits"].shape == (batch, 3)
    assert out["seg_logits"].shape == (batch, 3, 40, 40)
    assert out["grade_logits"].shape == (batch, 4)


@pytest.mark.parametrize("arch", ["hard", "soft"])
def test_single_task_keeps_contract_and_drops_other_heads(arch: str) -> None:
    model = build_model(small_cfg(arch=arch, tasks=["segmentation"]), 2, 4)
    out = model(torch.randn(2, 3, 32, 32))
    assert tuple(out) == OUTPUT_KEYS
    assert set(model.heads) == {"segmentation"}
    assert torch.count_nonzero(out["presence_logits"]) == 0
    assert torch.count_nonzero(out["grade_logits"]) == 0
    assert out["seg_logits"].shape == (2, 2, 32, 32) and out["seg_logits"].abs().sum() > 0


def test_presence_only_model_has_no_decoder() -> None:
    model = build_model(small_cfg(tasks=["presence"]), 4, 4)
    assert not hasattr(model, "decoder")
    out = model(torch.randn(1, 3, 32, 32))
    assert torch.count_nonzero(out["seg_logits"]) == 0


def test_soft_penalty_zero_for_identical_towers_positive_otherwise() -> None:
    model = build_model(small_cfg(arch="soft"), 3, 4)
    first = model.towers["presence"].state_dict()
    for tower in model.towers.values():
        tower.load_state_dict(first)
    assert model.sharing_penalty().item() == 0.0
    with torch.no_grad():
        next(model.towers["grade"].parameters()).add_(0.1)
    penalty = model.sharing_penalty()
    assert penalty.item() > 0
    penalty.backward()  # differentiable: it trains the towers toward each other
    assert next(model.towers["grade"].parameters()).grad.abs().sum() > 0


def test_hard_model_has_no_sharing_penalty() -> None:
    model = build_model(small_cfg(), 3, 4)
    assert model.sharing_penalty().item() == 0.0
    assert model.shared_parameters()  # the encoder


def test_odd_input_size_works() -> None:
    """NEU-Seg is 200 px: stride-2 levels round up and the decoder resizes to each skip."""
    model = build_model(small_cfg(), 3, 4).eval()
    assert model(torch.randn(1, 3, 50, 50))["seg_logits"].shape == (1, 3, 50, 50)


def test_presets_and_overrides() -> None:
    for name in ("tiny", "small", "neu"):
        assert build_model(named_config(name).model, 3, 4) is not None
    cfg = apply_overrides(
        named_config("tiny"), ["model.arch=soft", "train.lr=1", "model.tasks=[grade]"]
    )
    assert cfg.model.arch == "soft" and cfg.train.lr == 1.0 and cfg.model.tasks == ["grade"]
    assert apply_overrides(cfg, ["train.lr=3e-3"]).train.lr == 0.003  # YAML reads it as a str
    assert RunConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.arch=deep", "model.arch"),
        ("model.nope=1", "unknown key"),
        ("train.epochs=many", "train.epochs"),
        ("model.tasks=[colour]", "model.tasks"),
        ("weighting", "section.key=value"),
        ("model.decoder_fuse=stack", "model.decoder_fuse"),
        ("loss.peak_weight=-1", "loss.peak_weight"),
    ],
)
def test_bad_overrides_are_clear_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(named_config("tiny"), [override])


def test_unknown_config_name() -> None:
    with pytest.raises(ConfigError, match="unknown config"):
        named_config("huge")


# Ops TensorRT and ONNX Runtime both handle well (shape plumbing of Resize included).
EXPORT_OPS = {
    "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "Identity", "MaxPool", "Mul", "Relu", "Resize", "Shape",
    "Sigmoid", "Slice", "Unsqueeze",
}  # fmt: skip


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"tasks": ["segmentation"]},
        {"arch": "soft", "cross_stitch": True},
        {"decoder_fuse": "add", "refine_width": 4},
    ],
)
def test_exports_to_onnx_with_plain_ops_and_dynamic_batch(tmp_path, kw) -> None:
    import warnings

    import numpy as np
    import onnx
    import onnxruntime as ort

    model = build_model(small_cfg(**kw), 3, 4).eval()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (torch.randn(2, 3, 32, 32),),
            str(path),
            input_names=["images"],
            output_names=list(OUTPUT_KEYS),
            dynamic_axes={"images": {0: "n"}},
            dynamo=False,
            opset_version=18,
        )
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops <= EXPORT_OPS, ops - EXPORT_OPS
    x = torch.randn(5, 3, 32, 32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": x.numpy()}
    )
    with torch.no_grad():
        want = model(x)
    for g, w in zip(got, want.values(), strict=True):
        assert np.abs(g - w.numpy()).max() < 1e-4


def test_refine_level_starts_as_a_no_op_correction() -> None:
    """The full-resolution correction is zero-initialised: the first logits are the upsampled
    half-resolution ones, whatever the refine features."""
    model = build_model(small_cfg(refine_width=4), 2, 4).eval()
    head = model.heads["segmentation"]
    assert torch.count_nonzero(head.fine.weight) == 0
    x = torch.randn(2, 3, 32, 32)
    coarse, fine = model.decoder(model.encoder(x), x)
    assert fine.shape[-2:] == (32, 32) and coarse.shape[-2:] == (16, 16)
    expected = torch.nn.functional.interpolate(
        head.conv(coarse), size=(32, 32), mode="bilinear", align_corners=False
    )
    assert torch.allclose(model(x)["seg_logits"], expected, atol=1e-6)


def test_pool_decoder_feeds_the_heads_and_needs_hard_sharing() -> None:
    model = build_model(small_cfg(pool_decoder=True), 3, 4)
    assert model.heads["presence"].mlp[0].in_features == 2 * 16 + 2 * 8 + 2 * 3
    assert model(torch.randn(2, 3, 32, 32))["presence_logits"].shape == (2, 3)
    with pytest.raises(ConfigError, match="pool_decoder"):
        apply_overrides(named_config("tiny"), ["model.pool_decoder=true", "model.arch=soft"])


def test_add_fuse_decoder_has_no_concat_and_keeps_concat_names() -> None:
    """`add` levels sum a 3x3 conv of the skip and a resized 1x1 conv of the coarse map: no
    Concat is left in the decoder. `concat` levels keep the parameter names (fuse.I.0.weight)
    that checkpoints trained before the option existed carry."""
    from unittest import mock

    x = torch.randn(2, 3, 32, 32)
    added = build_model(small_cfg(decoder_fuse="add", refine_width=4), 3, 4).eval()
    feats = added.encoder(x)
    with mock.patch.object(torch, "cat", wraps=torch.cat) as cat:
        coarse, fine = added.decoder(feats, x)
    assert cat.call_count == 0
    assert coarse.shape == (2, 8, 16, 16) and fine.shape == (2, 4, 32, 32)
    assert fine.min() >= 0  # ReLU after the sum
    concat = build_model(small_cfg(refine_width=4), 3, 4).eval()
    with mock.patch.object(torch, "cat", wraps=torch.cat) as cat:
        concat.decoder(concat.encoder(x), x)
    assert cat.call_count == len(concat.decoder.fuse) + 1 == 4  # each level, then refine
    names = set(concat.state_dict())
    assert {"decoder.fuse.0.0.weight", "decoder.fuse.0.1.running_mean"} <= names
    assert "decoder.refine.0.weight" in names
