"""Export of the trained tiny checkpoint: one ONNX file, dynamic batch only, parity with torch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mtqa_builder.errors import ExportError
from mtqa_builder.export import OUTPUT_NAMES, check_io, check_parity, export_onnx
from mtqa_builder.versions import ONNX_OPSET


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    from mtqa.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_run)
    path = export_onnx(ckpt.model, ckpt.image_size, tmp_path_factory.mktemp("export") / "m.onnx")
    return ckpt, path


def test_export_is_one_checked_file_with_folded_bn(exported):
    ckpt, path = exported
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx"]  # no external data
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= ONNX_OPSET
    assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)


def test_only_batch_axis_is_dynamic_and_any_batch_runs(exported):
    ckpt, path = exported
    s = ckpt.image_size
    check_io(onnx.load(str(path)), s)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        out = sess.run(None, {"images": np.zeros((n, 3, s, s), np.float32)})
        assert [o.shape[0] for o in out] == [n, n, n]
        assert out[1].shape == (n, len(ckpt.classes), s, s)


def test_parity_with_pytorch_on_trained_weights(exported):
    ckpt, path = exported
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 3, ckpt.image_size, ckpt.image_size)).astype(np.float32)
    diffs = check_parity(ckpt.model, path, images)
    assert set(diffs) == set(OUTPUT_NAMES)
    assert max(diffs.values()) < 1e-3


def test_parity_failure_is_reported(exported):
    import torch

    ckpt, path = exported
    images = np.zeros((2, 3, ckpt.image_size, ckpt.image_size), np.float32)
    head = [m for m in ckpt.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.bias += 1.0  # the PyTorch model no longer matches the exported file
        with pytest.raises(ExportError, match="disagrees"):
            check_parity(ckpt.model, path, images)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)


def test_model_without_the_output_dict_is_refused(tmp_path):
    import torch

    class Bare(torch.nn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    with pytest.raises(ExportError, match="must return a dict"):
        export_onnx(Bare(), 16, tmp_path / "bare.onnx")
