"""OpenVINO variants (`ov-fp32`, `ov-bf16`, `ov-int8`): gated against FP32 like the ORT ones,
published as versions of mtqa_net that a real local Triton serves, and skipped with a reason
where OpenVINO or the CPU's BF16/INT8 support is missing.

The served numbers are compared with OpenVINO run in-process on the version's own files; the
skip checks import the real module with `openvino` made unimportable or report a CPU without BF16.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa_builder import contract
from mtqa_builder import openvino_variants as ovv
from mtqa_builder import precision as prec
from mtqa_builder.contract import NET
from mtqa_builder.errors import BuildError
from mtqa_builder.export import OUTPUT_NAMES
from mtqa_builder.pipeline import BuildOptions, _buildable
from mtqa_builder.triton_models import ov_plan

OV_NAMES = tuple(ovv.OV_VARIANTS)
TOLERANCE = 1.0  # gate points, the builder's default
# Same file, same runtime, other batch composition: f32 is exact to float rounding; bf16 rounds
# activations to 8 mantissa bits, so a chunk of 1 and one of 4 differ in the last bits.
SERVED_TOL = {"f32": 1e-4, "bf16": 0.05}


def _needs_openvino() -> None:
    reason = ovv.skip_reason("ov-fp32")
    if reason:
        pytest.skip(reason)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def ov_build(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`tiny_run` built with fp32 and every OpenVINO variant this host runs (serving the last)."""
    _needs_openvino()
    from fixtures.builder import build_tiny

    runnable = [n for n in OV_NAMES if ovv.skip_reason(n) is None]
    repo = tmp_path_factory.mktemp("ov_built") / "model_repository"
    result = build_tiny(tiny_run, repo, precisions=("fp32", *OV_NAMES), serve=runnable[-1])
    return {"repo": repo, "result": result, "runnable": runnable}


def _need_variant(ov_build: dict, name: str) -> None:
    if name not in ov_build["runnable"]:
        pytest.skip(ovv.skip_reason(name) or f"{name} not built")


def test_names_agree_across_modules() -> None:
    assert set(prec.OPENVINO_PRECISIONS) == set(ovv.OV_VARIANTS)
    assert contract.RUNTIME == ov_plan.RUNTIME_FILE


@pytest.mark.parametrize("name", OV_NAMES)
def test_openvino_variant_passes_the_gate_against_fp32(ov_build: dict, name: str) -> None:
    _need_variant(ov_build, name)
    gate = ov_build["result"]["gate"][name]
    assert gate["passed"], gate
    for head, h in gate["heads"].items():  # every metric within the tolerance of FP32
        assert h.get("skipped") or h["drop_points"] <= TOLERANCE, (head, h)
    repo = ov_build["repo"]
    version = contract.precision_versions(repo)[name]
    manifest = contract.read_manifest(repo, NET, version)
    assert manifest["runtime"] == ovv.runtime_record(name)
    vdir = contract.version_dir(repo, NET, version)
    assert ov_plan.read_runtime(vdir) == ovv.runtime_record(name)
    assert {"model.onnx", "ov_plan.py", contract.RUNTIME} <= set(manifest["files"])


@pytest.mark.parametrize(("name", "max_abs"), [("ov-fp32", 1e-3), ("ov-bf16", 0.25)])
def test_openvino_outputs_match_the_fp32_onnx(ov_build: dict, name: str, max_abs: float) -> None:
    """Logits on the same FP32 file: OpenVINO f32 equals ORT to rounding; bf16 stays close."""
    import onnxruntime as ort

    _need_variant(ov_build, name)
    repo = ov_build["repo"]
    onnx_path = contract.version_dir(repo, NET, contract.precision_versions(repo)["fp32"])
    onnx_path = onnx_path / "model.onnx"
    size = contract.read_preprocessing(repo).image_size
    x = np.random.default_rng(3).normal(size=(6, 3, size, size)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = session.run(list(OUTPUT_NAMES), {"images": x})
    got = ovv.predict_fn(onnx_path, name)(x)
    for out, expected in zip(OUTPUT_NAMES, ref, strict=True):
        assert np.abs(got[out] - expected).max() <= max_abs, out


@pytest.mark.server
def test_triton_serves_the_openvino_versions_as_built(ov_build: dict, sample_images) -> None:
    """Each OpenVINO version through the SDK equals OpenVINO in-process on its own files, and the
    ensemble (serving the last OpenVINO variant) answers with those numbers."""
    from fixtures.client import served_reference
    from fixtures.serving import assert_cleaned_up

    from mtqa_client import InspectionClient
    from mtqa_serving import TritonServer

    repo = ov_build["repo"]
    served = served_reference(repo)
    data = [_png(img) for img in sample_images]
    x = np.stack([served.tensor(d) for d in data])
    versions = contract.precision_versions(repo)
    server = TritonServer(repo, startup_timeout=180)
    server.start()
    pid = server.pid
    try:
        with InspectionClient(server.grpc_url, timeout_s=120, connect_timeout_s=120) as client:
            for name in ov_build["runnable"]:
                vdir = contract.version_dir(repo, NET, versions[name])
                tol = SERVED_TOL[ov_plan.read_runtime(vdir)["inference_precision"]]
                ref = ovv.predict_fn(vdir / "model.onnx", name)(x)
                out = client.infer_tensor(x, model_version=versions[name])
                assert out.model_version == versions[name]
                for key in OUTPUT_NAMES:
                    assert np.abs(getattr(out, key) - ref[key]).max() <= tol, (name, key)
            results = client.inspect(data)
        ref = ovv.predict_fn(served.onnx_path, ov_build["runnable"][-1])(x)
        prob = 1.0 / (1.0 + np.exp(-ref["presence_logits"]))
        got = np.array([[d.probability for d in r.defects] for r in results])
        assert np.abs(got - prob).max() <= 0.02
    finally:
        server.stop()
        assert_cleaned_up(server, pid)


def _opts(tmp_path: Path, serve: str | None = None, target: str = "local") -> BuildOptions:
    return BuildOptions(checkpoint=tmp_path, repo=tmp_path / "repo", serve=serve, target=target)


def test_builder_skips_openvino_variants_without_openvino(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    logged: list[str] = []
    names, skipped = _buildable(["fp32", "ov-bf16", "ov-int8"], _opts(tmp_path), logged.append)
    assert names == ["fp32"] and set(skipped) == {"ov-bf16", "ov-int8"}
    assert all("OpenVINO is not installed" in r for r in skipped.values())
    assert len(logged) == 2 and logged[0].startswith("skipping ov-bf16")
    with pytest.raises(BuildError, match="--serve ov-bf16 cannot be built here"):
        _buildable(["fp32", "ov-bf16"], _opts(tmp_path, serve="ov-bf16"), logged.append)
    with pytest.raises(BuildError, match="nothing to build"):
        _buildable(["ov-fp32"], _opts(tmp_path), logged.append)


def test_builder_skips_bf16_on_a_cpu_without_it(monkeypatch, tmp_path: Path) -> None:
    _needs_openvino()
    monkeypatch.setattr(ovv, "capabilities", lambda: ["FP32", "INT8"])  # e.g. a plain AVX2 CPU
    names, skipped = _buildable(["ov-fp32", "ov-bf16", "ov-int8"], _opts(tmp_path), print)
    assert names == ["ov-fp32", "ov-int8"]
    assert "lacks BF16" in skipped["ov-bf16"]


def test_openvino_variants_are_refused_on_gpu_targets(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="run only on"):
        _buildable(["fp32", "ov-int8"], _opts(tmp_path, target="ngc-onnx"), print)


def test_ngc_openvino_builds_ov_bf16_alone(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="ngc-openvino builds --precision ov-bf16 alone"):
        _buildable(["fp32", "ov-bf16"], _opts(tmp_path, target="ngc-openvino"), print)


@pytest.fixture(scope="module")
def ngc_openvino_repo(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_run` built for Triton's native openvino backend (ov-bf16, 256 gate images)."""
    reason = ovv.skip_reason("ov-bf16")
    if reason:
        pytest.skip(reason)
    from fixtures.builder import build_tiny

    repo = tmp_path_factory.mktemp("ngc_ov") / "model_repository"
    build_tiny(tiny_run, repo, precisions=("ov-bf16",), target="ngc-openvino", synth_val=256)
    return repo


def test_ngc_openvino_config_passes_the_static_checks(ngc_openvino_repo: Path) -> None:
    from mtqa_builder import configs
    from mtqa_builder.check import check_repository

    assert check_repository(ngc_openvino_repo) == []
    cfg = configs.read_model_config(ngc_openvino_repo, NET)
    assert cfg.backend == "openvino" and cfg.default_model_filename == "model.onnx"
    assert [g.kind for g in cfg.instance_group] == [configs.mc.ModelInstanceGroup.KIND_CPU]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["HINT_BF16"] == "YES" and params["ENABLE_BATCH_PADDING"] == "YES"
    assert params["NUM_STREAMS"] == str(cfg.instance_group[0].count)
    version = contract.precision_versions(ngc_openvino_repo)["ov-bf16"]
    vdir = contract.version_dir(ngc_openvino_repo, NET, version)
    assert (vdir / "model.onnx").is_file() and not (vdir / "model.py").exists()
    ensemble = configs.read_model_config(ngc_openvino_repo, contract.ENSEMBLE)
    assert ensemble.max_batch_size == cfg.max_batch_size  # the padding stays bounded


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda c: c.parameters["HINT_BF16"].__setattr__("string_value", "NO"), "HINT_BF16='NO'"),
        (lambda c: c.parameters["CPU_THREADS"].__setattr__("string_value", "2"), "CPU_THREADS"),
        (lambda c: c.parameters.__delitem__("ENABLE_BATCH_PADDING"), "ENABLE_BATCH_PADDING=YES"),
        (lambda c: c.instance_group[0].__setattr__("kind", 1), "KIND_CPU"),  # KIND_GPU
        (lambda c: c.__setattr__("default_model_filename", "net.onnx"), "net.onnx"),
    ],
    ids=["bf16-no", "unknown-key", "no-padding", "gpu-kind", "model-file"],
)
def test_ngc_openvino_static_checks_catch_what_the_backend_refuses(
    ngc_openvino_repo: Path, tmp_path: Path, edit, problem: str
) -> None:
    import shutil

    from mtqa_builder import configs
    from mtqa_builder.check import check_repository

    repo = shutil.copytree(ngc_openvino_repo, tmp_path / "repo")
    cfg = configs.read_model_config(repo, NET)
    edit(cfg)
    (repo / NET / contract.CONFIG).write_text(configs.to_text(cfg))
    problems = check_repository(repo)
    assert any(problem in p for p in problems), problems


def test_precision_speed_times_ort_and_openvino_side_by_side(
    built_repo: Path, tmp_path: Path, capsys
) -> None:
    """`--openvino` adds OpenVINO runs of the repository's fp32 and int8 files; the header
    names the CPU flags and OpenVINO's capabilities."""
    import json

    from mtqa_bench.precision_speed import main as bench

    _needs_openvino()
    out = tmp_path / "speed.json"
    args = ["--repo", str(built_repo), "--batch", "2", "--iters", "1", "--openvino"]
    assert bench([*args, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    runnable = [n for n in OV_NAMES if ovv.skip_reason(n) is None]
    assert [r["precision"] for r in rows] == ["fp32", "int8", *runnable]
    assert {r["runtime"] for r in rows[2:]} == {"openvino"}
    assert all(r["images_per_s"] > 0 for r in rows)
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("CPU ") and "OpenVINO" in header
    assert all(f in header for f in ovv.cpu_flags())
