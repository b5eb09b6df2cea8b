"""FP16 / INT8 variants on ORT, the accuracy gate, calibration refusal and mixed precision."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mtqa_builder import precision as prec
from mtqa_builder.errors import CalibrationError, GateError
from mtqa_builder.gate import evaluate_onnx, judge


@pytest.fixture(scope="module")
def setup(tiny_run, tmp_path_factory):
    """Checkpoint, its FP32 ONNX, 16 calibration images, the gate's val images and FP32 metrics.

    As many val images as `mtqa build` gates a synthetic checkpoint on (1024): the barely trained
    tiny model has many borderline decisions, and on 96 images one flipped grade is 1.04 points;
    on its own 384 val images the session-6 preset's INT8 dropped 1.0-1.3 points, on 1024 it
    passes, so a smaller set measures which images are borderline, not quantization.
    """
    from mtqa.checkpoint import load_checkpoint
    from mtqa_builder.calibration import load_calibration
    from mtqa_builder.export import export_onnx
    from mtqa_builder.pipeline import BuildOptions
    from mtqa_builder.validation import validation_set

    ckpt = load_checkpoint(tiny_run)
    work = tmp_path_factory.mktemp("precision")
    fp32 = export_onnx(ckpt.model, ckpt.image_size, work / "fp32.onnx")
    calib = load_calibration("synth", ckpt.image_size, ckpt.mean, ckpt.std, count=16)
    val = validation_set(ckpt, synth_val=BuildOptions.synth_val)
    ref = evaluate_onnx(fp32, val, ckpt.classes, ckpt.grades, ckpt.thresholds)
    return ckpt, work, fp32, calib, val, ref


def _evaluate(setup, path):
    ckpt, _, _, _, val, _ = setup
    return evaluate_onnx(path, val, ckpt.classes, ckpt.grades, ckpt.thresholds)


def _io_types(path):
    graph = onnx.load(str(path)).graph
    return {vi.type.tensor_type.elem_type for vi in [*graph.input, *graph.output]}


def test_fp16_keeps_fp32_io_and_passes_the_gate(setup):
    _, work, fp32, _, _, ref = setup
    path = prec.to_fp16(fp32, work / "fp16.onnx")
    assert _io_types(path) == {onnx.TensorProto.FLOAT}
    weights = [t for t in onnx.load(str(path)).graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    result = judge(ref, _evaluate(setup, path))
    assert result.passed, result.failures()


@pytest.mark.parametrize("flavour", ["ort", "tensorrt"])
def test_int8_qdq_passes_the_gate(setup, flavour):
    _, work, fp32, calib, _, ref = setup
    path = prec.to_int8(fp32, work / f"int8_{flavour}.onnx", calib.images, flavour)
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert _io_types(path) == {onnx.TensorProto.FLOAT}
    if flavour == "tensorrt":  # symmetric: every zero point is an int8 zero
        inits = {t.name: t for t in graph.initializer}
        zps = [inits[n.input[2]] for n in graph.node if n.op_type.endswith("QuantizeLinear")]
        assert zps and all(z.data_type == onnx.TensorProto.INT8 for z in zps)
        assert all(not numpy_helper.to_array(z).any() for z in zps)
    result = judge(ref, _evaluate(setup, path))
    assert result.passed, result.failures()


def test_ort_int8_keeps_the_pooled_head_path_in_float(setup):
    """The heads' input concatenates segmentation areas (~1e-3) with peak logits (~10): one int8
    scale for that Concat rounded the areas to zero, so the `ort` flavour leaves it in float."""
    _, work, fp32, calib, _, _ = setup
    graph = onnx.load(str(fp32)).graph
    kept = prec.pooled_head_nodes(fp32)
    ops = {n.name: n.op_type for n in graph.node}
    assert {ops[k] for k in kept} >= {"ReduceMean", "ReduceMax", "Concat", "Gemm", "Sigmoid"}
    assert not any(ops[k] == "Conv" for k in kept)  # the convolutional trunk stays quantized
    q = onnx.load(str(prec.to_int8(fp32, work / "int8_head.onnx", calib.images, "ort")))
    producer = {o: n for n in q.graph.node for o in n.output}
    entries = {"ReduceMean", "ReduceMax", "Sigmoid"}  # read the quantized maps, in float
    inside = [n for n in q.graph.node if n.name in kept and n.op_type not in entries]
    assert {n.name for n in inside} == {k for k in kept if ops[k] not in entries}
    for node in inside:
        fed = {producer[i].op_type for i in node.input if i in producer}
        assert "DequantizeLinear" not in fed, node.name
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


def test_int8_without_calibration_images_is_refused(setup, tmp_path):
    _, _, fp32, _, _, _ = setup
    with pytest.raises(CalibrationError):
        prec.to_int8(fp32, tmp_path / "x.onnx", np.zeros((0, 3, 8, 8), np.float32), "ort")
    from mtqa_builder.calibration import load_calibration

    with pytest.raises(CalibrationError, match="--calib"):
        load_calibration("", 64, [0.5] * 3, [0.25] * 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        load_calibration(str(empty), 64, [0.5] * 3, [0.25] * 3)


def test_calibration_hash_identifies_the_set(setup):
    ckpt, _, _, calib, _, _ = setup
    from mtqa_builder.calibration import load_calibration

    again = load_calibration("synth", ckpt.image_size, ckpt.mean, ckpt.std, count=16)
    other = load_calibration("synth", ckpt.image_size, ckpt.mean, ckpt.std, count=8)
    assert again.sha256 == calib.sha256 != other.sha256
    assert calib.describe() == {"source": "synth", "count": 16, "sha256": calib.sha256}


def test_gate_fails_a_damaged_variant(setup):
    _, work, fp32, _, _, ref = setup
    model = onnx.load(str(fp32))
    heads = set(prec.sensitive_nodes(fp32)[1:])  # output side of every head
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.name in heads and node.op_type in ("Conv", "Gemm"):
            for name in node.input[1:]:  # weights and bias: flip their sign
                if name in inits:
                    flipped = -numpy_helper.to_array(inits[name])
                    inits[name].CopyFrom(numpy_helper.from_array(flipped, name))
    damaged = work / "damaged.onnx"
    onnx.save(model, str(damaged))
    result = judge(ref, _evaluate(setup, damaged))
    assert not result.passed
    assert result.failures()


def test_judge_counts_points_per_head():
    ref = {"presence_macro_f1": 0.80, "miou": 0.70, "grade_accuracy": 0.90}
    ok = judge(ref, {"presence_macro_f1": 0.795, "miou": 0.70, "grade_accuracy": 0.91})
    assert ok.passed and ok.heads["presence"]["drop_points"] == pytest.approx(0.5)
    bad = judge(ref, {"presence_macro_f1": 0.80, "miou": 0.68, "grade_accuracy": None})
    assert not bad.passed and bad.heads["segmentation"]["failed"]
    assert bad.heads["grade"]["skipped"]
    assert judge(ref, {**ref, "miou": 0.68}, tolerance={"segmentation": 3.0}).passed


def test_mixed_precision_keeps_sensitive_nodes_in_fp32(setup):
    _, work, fp32, calib, _, _ = setup
    keep = prec.sensitive_nodes(fp32)
    graph = onnx.load(str(fp32)).graph
    first_compute = next(n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul"))
    assert keep[0] == first_compute.name and len(keep) >= 4  # first conv + >= 3 heads
    q = onnx.load(str(prec.to_int8(fp32, work / "mixed.onnx", calib.images, "ort", keep)))
    producers = {o: n for n in q.graph.node for o in n.output}
    assert {n.name for n in q.graph.node} >= set(keep)  # names survive pre-processing
    ops = {n.name: n.op_type for n in graph.node}
    assert {ops[k] for k in keep} >= {"Conv", "Gemm", "Resize", "Add"}  # the mask head's tail too
    for node in q.graph.node:
        if node.name in keep and node.op_type in ("Conv", "Gemm"):  # weights straight from FP32
            assert node.input[1] not in producers
    h = onnx.load(str(prec.to_fp16(fp32, work / "mixed16.onnx", keep)))
    kept = {t.name: t for t in h.graph.initializer}
    assert {n.name for n in h.graph.node} >= set(keep)
    for node in h.graph.node:
        if node.name in keep and node.op_type in ("Conv", "Gemm"):
            assert kept[node.input[1]].data_type == onnx.TensorProto.FLOAT


def test_failing_gate_publishes_nothing(tiny_run, tmp_path):
    from fixtures.builder import build_tiny

    repo = tmp_path / "repo"
    # A negative tolerance fails every variant, also after the mixed-precision retry.
    with pytest.raises(GateError, match="nothing was published"):
        build_tiny(tiny_run, repo, precisions=("fp32", "int8"), tolerance=-100.0)
    assert not repo.exists() or not any(repo.rglob("manifest.json"))
    assert not list(tmp_path.glob(".mtqa-staging-*"))


def test_calibration_from_a_plain_image_folder(tmp_path):
    from PIL import Image

    from mtqa_builder.calibration import load_calibration

    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    calib = load_calibration(str(tmp_path), 32, [0.5] * 3, [0.25] * 3, count=8)
    assert calib.images.shape == (3, 3, 32, 32) and calib.images.dtype == np.float32
