"""`mtqa build` from the command line, and the built repository served by a real local Triton."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa_builder.check import check_repository
from mtqa_cli import exits
from mtqa_cli.main import main


def test_gate_reads_further_into_a_synthetic_val_stream(tiny_run):
    import torch

    from mtqa.checkpoint import load_checkpoint
    from mtqa_builder.validation import validation_set

    ckpt = load_checkpoint(tiny_run)
    own = validation_set(ckpt)
    more = validation_set(ckpt, synth_val=len(own) + 16)
    assert len(more) == len(own) + 16
    for i in (0, len(own) - 1):  # the run's own val images come first, unchanged
        assert torch.equal(more[i]["image"], own[i]["image"])
    assert not torch.equal(more[len(own)]["image"], own[0]["image"])
    assert len(validation_set(ckpt, synth_val=4)) == len(own)  # never fewer than the run's


def test_cli_build_fp32_fp16(tiny_run, tmp_path, capsys):
    repo = tmp_path / "repo"
    args = ["build", "--run", str(tiny_run), "--repo", str(repo), "--gate-limit", "8"]
    assert main([*args, "--precision", "fp32,fp16", "--serve", "fp16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["versions"]["mtqa_net"] == {"fp32": 1, "fp16": 2}
    assert result["serving"] == 2 and result["gate"]["fp16"]["passed"]
    assert check_repository(repo) == []
    # CPU defaults: single-thread instances, no batching delay, small preferred batches.
    cfg = _config(repo / "mtqa_net")
    assert cfg.instance_group[0].count == min(max(os.cpu_count() or 1, 2), 4)
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 0
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4]
    # A batch spreads over every core in chunks of 4 images at 128 px (ort_plan.py beside model.py).
    assert cfg.parameters["lane_sessions"].string_value == str(min(os.cpu_count() or 1, 4))
    assert cfg.parameters["chunk_images"].string_value == "4"
    assert (repo / "mtqa_net" / "1" / "ort_plan.py").is_file()
    pre = _config(repo / "mtqa_preprocess")
    assert pre.parameters["decode_threads"].string_value == str(min(os.cpu_count() or 1, 4))
    assert pre.parameters["max_pixels"].string_value == "40000000"
    # The shared decoder travels beside preprocess.py, verbatim.
    decode_src = Path(__file__).resolve().parents[1] / "mtqa" / "data" / "decode.py"
    assert (repo / "mtqa_preprocess" / "1" / "decode.py").read_bytes() == decode_src.read_bytes()


def test_default_chunk_keeps_the_pixels_of_an_ort_call_in_the_cache():
    from mtqa_builder.configs import Serving, Shapes, chunk_images_for, net_config

    assert [chunk_images_for(s) for s in (64, 128, 192, 256, 512)] == [16, 4, 2, 1, 1]
    chunk = net_config("local", Shapes(192, 3, 4), Serving(), [1]).parameters["chunk_images"]
    assert chunk.string_value == "2"
    chunk = net_config("local", Shapes(192, 3, 4), Serving(chunk_images=0), [1])
    assert chunk.parameters["chunk_images"].string_value == "0"  # 0 = a whole request, as asked


def test_serving_defaults_are_derived_once_for_the_api_and_the_cli():
    from mtqa_builder.configs import Serving
    from mtqa_builder.errors import ServingError
    from mtqa_builder.pipeline import BuildOptions

    local = Serving.for_target("local", cores=8)
    assert (local.instances, local.queue_delay_us, local.preferred_batch) == (4, 0, (4,))
    assert (local.intra_op_threads, local.lane_sessions, local.decode_threads) == (1, 4, 4)
    one_core = Serving.for_target("local", cores=1)
    assert one_core.instances == 2 and one_core.intra_op_threads == 1
    gpu = Serving.for_target("ngc-onnx", cores=8, instances=2, max_batch=None)
    assert (gpu.instances, gpu.queue_delay_us, gpu.preferred_batch) == (2, 2000, ())
    assert gpu.intra_op_threads == 2 and gpu.max_batch == 32  # None keeps the default
    assert Serving.for_target("local", cores=2, max_batch=2).preferred_batch == (2,)
    assert BuildOptions(Path("run"), Path("repo")).serving is None  # build() derives it
    with pytest.raises(ServingError, match="lane_sessions must be >= 1") as err:
        Serving.for_target("local", lane_sessions=0)
    assert err.value.field == "lane_sessions"
    with pytest.raises(ServingError, match="preferred_batch"):
        Serving(max_batch=4, preferred_batch=(8,))


def test_one_core_host_still_gets_two_instances(tiny_run, tmp_path, monkeypatch):
    # One instance with dynamic batching stalls ~500 ms in the bundled Triton: never the default.
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    repo = tmp_path / "repo"
    args = ["build", "--run", str(tiny_run), "--repo", str(repo), "--gate-limit", "4"]
    assert main(args) == 0
    cfg = _config(repo / "mtqa_net")
    assert cfg.instance_group[0].count == 2
    assert cfg.parameters["intra_op_threads"].string_value == "1"


def _config(model_dir):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def test_cli_build_ngc_onnx_target(tiny_run, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repo = tmp_path / "repo"
    args = ["build", "--run", str(tiny_run), "--repo", str(repo), "--gate-limit", "4"]
    assert main([*args, "--target", "ngc-onnx", "--instances", "2"]) == 0
    cfg = text_format.Parse((repo / "mtqa_net" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert cfg.platform == "onnxruntime_onnx" and not cfg.backend
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert cfg.instance_group[0].count == 2
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
    assert not cfg.dynamic_batching.preferred_batch_size
    assert sorted(p.name for p in (repo / "mtqa_net" / "1").glob("model.*")) == ["model.onnx"]
    assert check_repository(repo) == []


def test_cli_int8_without_calibration_is_refused(tiny_run, tmp_path, capsys):
    repo = tmp_path / "repo"
    code = main(["build", "--run", str(tiny_run), "--repo", str(repo), "--precision", "int8"])
    assert code == exits.INPUT
    assert "mtqa build: error: INT8 needs --calib-data" in capsys.readouterr().err
    assert not repo.exists()


def test_cli_reports_bad_arguments(tiny_run, tmp_path, capsys):
    base = ["build", "--run", str(tiny_run), "--repo", str(tmp_path / "r")]
    assert main([*base, "--precision", "fp8"]) == exits.INPUT
    assert "--precision fp8: unknown precision fp8; choose from fp32" in capsys.readouterr().err
    assert main(["build", "--run", str(tmp_path / "none"), "--repo", str(tmp_path)]) == 3
    assert "no such run directory" in capsys.readouterr().err
    assert main(["build", "--run", str(tmp_path), "--repo", str(tmp_path / "r")]) == 3
    assert "cannot load checkpoint" in capsys.readouterr().err  # a folder, but not a run
    for flag, value in (
        ("--lane-sessions", "0"),
        ("--decode-threads", "0"),
        ("--max-pixels", "0"),
        ("--chunk-images", "-1"),
    ):
        assert main([*base, flag, value]) == 2  # a usage error
        assert flag in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_ngc_trt_without_engines_fails_clearly(tiny_run, tmp_path, capsys):
    repo = tmp_path / "repo"
    args = ["build", "--run", str(tiny_run), "--repo", str(repo), "--gate-limit", "4"]
    assert main([*args, "--target", "ngc-trt"]) == exits.FAILED  # a missing install
    out = capsys.readouterr().err
    assert "TensorRT is not installed here" in out and "--engines DIR" in out
    assert not repo.exists()
    assert main([*args, "--target", "ngc-trt", "--engines", str(tmp_path / "plans")]) == 3
    assert "no TensorRT engines for fp32" in capsys.readouterr().err


def _encoded(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def _infer_bytes(client, data: bytes):
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput("image_bytes", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[data]], dtype=object))
    return client.infer("mtqa_inspect", [inp])


@pytest.mark.server
def test_served_ensemble_matches_the_local_pipeline(triton_server, built_repo):
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    from mtqa.data import SynthConfig, SynthGenerator, preprocess_image
    from mtqa_builder.triton_models.postprocess_core import postprocess, threshold_vector

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    manifest = json.loads((built_repo / "mtqa_net" / "1" / "manifest.json").read_text())
    pre = json.loads((built_repo / "mtqa_preprocess" / "1" / "preprocess.json").read_text())
    thresholds = json.loads((built_repo / "mtqa_postprocess" / "1" / "thresholds.json").read_text())
    classes = manifest["classes"]
    image = SynthGenerator(SynthConfig(size=90), seed=3).generate(9, 0, 0).image  # 90x90 RGB
    served = _infer_bytes(client, _encoded(image, "PNG"))
    # The same steps done locally: training's preprocessing, ORT on the fp32 ONNX, postprocess.
    x = preprocess_image(image, pre["image_size"], pre["mean"], pre["std"])[None]
    sess = ort.InferenceSession(str(built_repo / "mtqa_net" / "1" / "model.onnx"))
    logits = sess.run(["presence_logits", "seg_logits", "grade_logits"], {"images": x})
    local = postprocess(
        *logits,
        np.array([[90, 90]], np.int32),
        threshold_vector(thresholds, "presence", classes),
        threshold_vector(thresholds, "segmentation", classes),
    )
    np.testing.assert_allclose(served.as_numpy("presence_prob"), local["presence_prob"], atol=1e-5)
    np.testing.assert_allclose(served.as_numpy("grade_prob"), local["grade_prob"], atol=1e-5)
    assert served.as_numpy("grade_index").dtype == np.int32
    s, k = pre["image_size"], len(classes)
    packed = served.as_numpy("masks_packed")
    assert packed.shape == (1, k, -(-s * s // 8)) and packed.dtype == np.uint8
    regions = served.as_numpy("regions")
    assert regions.shape[0] == 1 and regions.shape[2] == 6
    assert (regions[0, :, 4] <= 90 + 1e-3).all()  # boxes in original pixels
    jpeg = _infer_bytes(client, _encoded(image, "JPEG"))
    assert jpeg.as_numpy("presence_prob").shape == (1, k)
    bad = _infer_bytes(client, b"definitely not an image")  # refused in its item_error only
    assert b"not a recognised image format" in bad.as_numpy("item_error").reshape(-1)[0]
    assert served.as_numpy("item_error").reshape(-1)[0] in (b"", "")
    again = _infer_bytes(client, _encoded(image, "PNG"))  # the instance survived the bad request
    np.testing.assert_array_equal(again.as_numpy("grade_index"), served.as_numpy("grade_index"))


@pytest.mark.server
def test_fp32_and_int8_versions_are_addressable_side_by_side(triton_server, built_repo):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    size = json.loads((built_repo / "mtqa_net" / "1" / "manifest.json").read_text())["image_size"]
    x = np.random.default_rng(0).normal(size=(3, 3, size, size)).astype(np.float32)
    outs = {}
    for version in ("1", "2"):
        inp = grpcclient.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        outs[version] = client.infer("mtqa_net", [inp], model_version=version)
    fp32, int8 = (outs[v].as_numpy("presence_logits") for v in ("1", "2"))
    assert fp32.shape == int8.shape == (3, fp32.shape[1])
    assert not np.array_equal(fp32, int8)  # really two different engines
    assert np.abs(fp32 - int8).max() < 1.0


def test_precision_speed_benchmark_reads_the_built_repo(built_repo, tmp_path, capsys, monkeypatch):
    from mtqa_bench.precision_speed import main as bench

    out = tmp_path / "speed.json"
    args = ["--repo", str(built_repo), "--batch", "2", "--iters", "1", "--json", str(out)]
    assert bench(args) == 0
    rows = json.loads(out.read_text())
    assert [r["precision"] for r in rows] == ["fp32", "int8"]
    assert all(r["images_per_s"] > 0 for r in rows)
    assert rows[1]["drop_points"]["segmentation"] is not None
    assert "int8" in capsys.readouterr().out
    # The served arrangement: two single-thread sessions per variant at once.
    two = ["--repo", str(built_repo), "--batch", "2", "--iters", "1", "--threads", "1"]
    assert bench([*two, "--sessions", "2"]) == 0
    assert "2 session(s) x 1 thread(s)" in capsys.readouterr().out
    assert bench([*two, "--sessions", "0"]) == 2
    # The plan the local server runs: the batch spread over two lanes, one image a call.
    assert bench([*two, "--lanes", "2", "--chunk", "1"]) == 0
    assert "2 lane(s), chunk 1" in capsys.readouterr().out
    assert bench([*two, "--chunk", "-1"]) == 2
    # Where the time goes, from ORT's profiler: real kernels of each variant, trace removed.
    monkeypatch.chdir(tmp_path)  # ORT writes its trace to the working directory
    assert bench([*two, "--profile", "--json", str(out)]) == 0
    fp32_ops, int8_ops = (r["op_ms"] for r in json.loads(out.read_text()))
    assert "Conv" in fp32_ops and "QLinearConv" in int8_ops
    assert all(ms > 0 for ms in fp32_ops.values())
    assert "ms of kernels per batch" in capsys.readouterr().out
    assert not list(tmp_path.glob("onnxruntime_profile_*.json"))


def test_ngc_trt_with_prebuilt_engines_for_two_gpu_architectures(tiny_run, tmp_path):
    """The CPU-host half of the TensorRT workflow: exports are byte-identical across builds, so
    plans compiled on GPU hosts from a `--work-dir` ONNX are accepted by a later build. The plan
    bytes here are placeholders: the repository writer only checks and places them (real
    compilation is `test_trt.py::test_compile_strongly_typed_engine`, GPU hosts only)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from mtqa_builder.hashing import file_sha256

    work = tmp_path / "work"
    base = ["build", "--run", str(tiny_run), "--gate-limit", "4", "--work-dir", str(work)]
    assert main([*base, "--repo", str(tmp_path / "first"), "--target", "ngc-onnx"]) == 0
    onnx_sha = file_sha256(work / "fp32.onnx")
    engines = tmp_path / "engines" / "fp32"
    engines.mkdir(parents=True)
    for cc in ("8.0", "9.0"):
        plan = engines / f"sm{cc.replace('.', '')}.plan"
        plan.write_bytes(f"placeholder plan for sm {cc}".encode())
        meta = {"compute_capability": cc, "onnx_sha256": onnx_sha, "plan_sha256": file_sha256(plan)}
        plan.with_suffix(".json").write_text(json.dumps(meta))
    repo = tmp_path / "repo"
    args = [*base, "--repo", str(repo), "--target", "ngc-trt", "--engines", str(engines.parent)]
    assert main(args) == 0
    cfg = text_format.Parse((repo / "mtqa_net" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert cfg.platform == "tensorrt_plan"
    assert dict(cfg.cc_model_filenames) == {"8.0": "model_sm80.plan", "9.0": "model_sm90.plan"}
    manifest = json.loads((repo / "mtqa_net" / "1" / "manifest.json").read_text())
    assert manifest["onnx_sha256"] == onnx_sha and set(manifest["engines"]) == {"8.0", "9.0"}
    assert check_repository(repo) == []
    (repo / "mtqa_net" / "1" / "model_sm80.plan").unlink()
    assert any("engine model_sm80.plan missing" in p for p in check_repository(repo))
