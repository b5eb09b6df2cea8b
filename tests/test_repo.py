"""Generated repository: configs parse and match the ONNX, manifests, versions, repo check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from scipy import ndimage
from tritonclient.grpc import model_config_pb2 as mc

from mtqa_builder import contract
from mtqa_builder.check import check_repository
from mtqa_builder.contract import ENSEMBLE, NET, POST, PRE
from mtqa_builder.triton_models.postprocess_core import postprocess, regions


def _config(repo: Path, model: str) -> mc.ModelConfig:
    return text_format.Parse((repo / model / "config.pbtxt").read_text(), mc.ModelConfig())


def test_built_repo_is_consistent(built_repo):
    assert check_repository(built_repo) == []


def test_configs_parse_and_agree_with_the_onnx(built_repo):
    net = _config(built_repo, NET)
    assert net.backend == "python" and net.max_batch_size == 32
    assert list(net.version_policy.specific.versions) == [1, 2]
    assert net.dynamic_batching.default_queue_policy.max_queue_size > 0
    assert net.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert net.model_warmup[0].inputs["images"].zero_data
    graph = onnx.load(str(built_repo / NET / "2" / "model.onnx")).graph
    onnx_dims = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim][1:]
        for vi in [*graph.input, *graph.output]
    }
    assert {t.name: list(t.dims) for t in [*net.input, *net.output]} == onnx_dims
    ens = _config(built_repo, ENSEMBLE)
    assert ens.platform == "ensemble"
    steps = {s.model_name: s.model_version for s in ens.ensemble_scheduling.step}
    assert steps == {PRE: 1, NET: 1, POST: 1}
    names = {o.name for o in ens.output}
    assert names == {o.name for o in _config(built_repo, POST).output}
    assert "masks_packed" in names and "regions" in names


def test_manifests_record_precision_gate_and_calibration(built_repo):
    variants = json.loads((built_repo / NET / "variants.json").read_text())
    assert {v: variants[v]["precision"] for v in variants} == {"1": "fp32", "2": "int8"}
    manifest = json.loads((built_repo / NET / "2" / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["gate"]["passed"] is True
    assert set(manifest["gate"]["heads"]) == {"presence", "segmentation", "grade"}
    assert manifest["calibration"]["count"] == 16 and len(manifest["calibration"]["sha256"]) == 64
    assert manifest["quantization"]["flavour"] == "ort"
    pre = built_repo / PRE / "1"
    assert (pre / "preprocess.py").read_text() == Path(
        __import__("mtqa.data.preprocess", fromlist=["x"]).__file__
    ).read_text()
    for model in (NET, PRE, POST, ENSEMBLE):
        vdir = built_repo / model / "1"
        assert (vdir / "labels.txt").read_text().split() == manifest["classes"]
        assert (vdir / "thresholds.json").is_file()
    assert (built_repo / POST / "1" / "__pycache__").is_dir()  # compiled before publication


def test_ensemble_names_its_network_and_geometry_for_clients(built_repo):
    params = _config(built_repo, ENSEMBLE).parameters
    assert params["net_model"].string_value == NET
    size = contract.read_preprocessing(built_repo).image_size
    assert params["image_size"].string_value == str(size)


def test_contract_reader_refuses_a_record_without_image_size(built_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(built_repo, repo)
    path = repo / PRE / "1" / contract.PREPROCESS
    record = json.loads(path.read_text())
    del record["image_size"]
    path.write_text(json.dumps(record))
    with pytest.raises(contract.ContractError, match=r"lacks \['image_size'\]"):
        contract.read_preprocessing(repo, 1)
    path.unlink()
    with pytest.raises(contract.ContractError, match="preprocess.json is missing"):
        contract.read_preprocessing(repo)


def test_variants_table_keeps_earlier_entries(tmp_path):
    (tmp_path / NET).mkdir()
    contract.record_variants(tmp_path, {1: ("fp32", True), 2: ("int8", True)}, "b1")
    contract.record_variants(tmp_path, {3: ("int8", None)}, "mtqa-swap")
    table = contract.read_variants(tmp_path)
    assert {v: (e["precision"], e["gate_passed"]) for v, e in table.items()} == {
        "1": ("fp32", True),
        "2": ("int8", True),
        "3": ("int8", None),
    }
    (tmp_path / NET / "3").mkdir()  # only version 3 is on disk: the newest int8 wins anyway
    assert contract.precision_versions(tmp_path) == {"int8": "3"}


def test_repo_check_catches_tampering(built_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(built_repo, repo)
    onnx_file = repo / NET / "2" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-16] + bytes(16))
    (repo / POST / "1" / "postprocess_core.py").write_text("# replaced\n")
    cfg = repo / ENSEMBLE / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace('model_name: "mtqa_net"', 'model_name: "mtqa_nett"'))
    problems = "\n".join(check_repository(repo))
    assert "mtqa_net/2: model.onnx checksum differs" in problems
    assert "mtqa_postprocess/1: postprocess_core.py checksum differs" in problems
    assert "step mtqa_nett: model not in the repository" in problems
    (repo / PRE / "config.pbtxt").write_text("name: 'mtqa_preprocess'\nmax_batch_size: oops\n")
    assert any("does not parse" in p for p in check_repository(repo))


def test_repo_check_cli_exit_codes(built_repo, tmp_path, capsys):
    from mtqa_cli.main import main

    assert main(["repo", "check", str(built_repo)]) == 0
    repo = tmp_path / "repo"
    shutil.copytree(built_repo, repo)
    (repo / NET / "1" / "labels.txt").unlink()
    assert main(["repo", "check", str(repo)]) == 5  # the check failed
    out = capsys.readouterr().out
    assert "problem: mtqa_net/1: labels.txt listed in the manifest is missing" in out


def test_publishing_again_adds_versions_and_never_overwrites(built_repo, tmp_path):
    from mtqa.checkpoint import load_checkpoint
    from mtqa_builder.configs import Serving
    from mtqa_builder.repository import Source, Variant, publish

    repo = tmp_path / "repo"
    shutil.copytree(built_repo, repo)
    before = (repo / NET / "1" / "model.onnx").read_bytes()
    manifest = json.loads((repo / NET / "1" / "manifest.json").read_text())
    ckpt = load_checkpoint(manifest["checkpoint"]["run_dir"])
    source = Source(
        Path(ckpt.run_dir),
        ckpt.classes,
        ckpt.grades,
        ckpt.image_size,
        ckpt.mean,
        ckpt.std,
        ckpt.thresholds,
        manifest["checkpoint"]["weights_sha256"],
    )
    variant = Variant("int8", built_repo / NET / "2" / "model.onnx", {"passed": True})
    result = publish(repo, "local", source, [variant], Serving(), "int8", {"build_id": "t"})
    assert result["versions"][NET] == {"int8": 3} and result["versions"][PRE] == 2
    assert (repo / NET / "1" / "model.onnx").read_bytes() == before
    assert list(_config(repo, NET).version_policy.specific.versions) == [3]
    steps = {
        s.model_name: s.model_version for s in _config(repo, ENSEMBLE).ensemble_scheduling.step
    }
    assert steps == {PRE: 2, NET: 3, POST: 2}
    assert check_repository(repo) == []


@pytest.mark.parametrize("target,platform", [("ngc-onnx", "onnxruntime_onnx")])
def test_ngc_onnx_target_config(target, platform):
    from mtqa_builder.configs import Serving, Shapes, net_config

    cfg = net_config(target, Shapes(64, 3, 4), Serving(instances=2), [5])
    assert cfg.platform == platform and not cfg.backend
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert cfg.instance_group[0].count == 2


def test_postprocess_packs_masks_and_boxes_regions_in_original_pixels():
    k, s = 2, 8
    seg = np.full((1, k, s, s), -10.0, np.float32)
    seg[0, 1, 2:4, 4:8] = 10.0  # one region of class 1: rows 2-3, cols 4-7
    out = postprocess(
        np.array([[-3.0, 3.0]], np.float32),
        seg,
        np.array([[0.0, 2.0, 0.0]], np.float32),
        np.array([[80, 160]], np.int32),  # original h=80, w=160: x scale 20, y scale 10
        np.array([0.5, 0.5], np.float32),
        np.array([0.5, 0.5], np.float32),
    )
    assert out["presence_decision"].tolist() == [[False, True]]
    assert out["grade_index"].tolist() == [[1]] and out["grade_index"].dtype == np.int32
    assert out["masks_packed"].shape == (1, k, s * s // 8)
    mask = np.unpackbits(out["masks_packed"][0, 1], bitorder="big").reshape(s, s)
    assert mask.sum() == 8 and mask[2:4, 4:8].all()
    np.testing.assert_allclose(out["regions"][0], [[1, 1.0, 80, 20, 160, 40]], atol=1e-4)


def test_regions_only_for_classes_decided_present_and_none_for_invalid_items():
    k, s = 2, 8
    seg = np.full((2, k, s, s), -10.0, np.float32)
    seg[:, :, 0:2, 0:2] = 10.0  # both classes segment a blob in both images
    out = postprocess(
        np.array([[-3.0, 3.0], [3.0, 3.0]], np.float32),  # image 0: class 0 decided absent
        seg,
        np.zeros((2, 3), np.float32),
        np.full((2, 2), s, np.int32),
        np.array([0.5, 0.5], np.float32),
        np.array([0.5, 0.5], np.float32),
        valid=np.array([True, False]),  # image 1 could not be decoded
    )
    rows = out["regions"][0]
    assert sorted(int(c) for c in rows[:, 0] if c >= 0) == [1]  # no box for absent class 0
    assert np.unpackbits(out["masks_packed"][0, 0]).sum() == 4  # the mask itself is kept
    assert (out["regions"][1, :, 0] == -1).all() and not out["presence_decision"][1].any()
    assert out["grade_index"][1, 0] == -1 and out["masks_packed"][1].sum() == 0
    assert out["presence_prob"][1].sum() == 0 and out["grade_prob"][1].sum() == 0


def test_region_scores_are_the_mean_probability_of_each_region():
    rng = np.random.default_rng(0)
    prob = rng.random((3, 32, 32)).astype(np.float32)
    masks = prob > 0.8  # many small regions per class
    rows = regions(prob, masks, (32, 32))
    expected = []
    for k in range(3):
        labels, count = ndimage.label(masks[k])
        expected += list(ndimage.mean(prob[k], labels, index=np.arange(1, count + 1)))
    assert len(rows) == len(expected) > 20
    np.testing.assert_allclose(rows[:, 1], expected, rtol=1e-6)


def test_regions_pad_with_minus_one_across_a_batch():
    masks = np.zeros((2, 1, 4, 4), bool)
    masks[0, 0, 0, 0] = masks[0, 0, 3, 3] = True
    per = [regions(np.ones((1, 4, 4), np.float32), m, (4, 4)) for m in masks]
    assert [len(r) for r in per] == [2, 0]
    seg = np.where(masks, 5.0, -5.0).astype(np.float32)
    out = postprocess(
        np.zeros((2, 1), np.float32),
        seg,
        np.zeros((2, 2), np.float32),
        np.full((2, 2), 4, np.int32),
        np.array([0.5], np.float32),
        np.array([0.5], np.float32),
    )
    assert out["regions"].shape == (2, 2, 6)
    assert (out["regions"][1, :, 0] == -1).all()
