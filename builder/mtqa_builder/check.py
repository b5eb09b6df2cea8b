"""`mtqa repo check`: validate a Triton model repository without starting a server.

Every config.pbtxt is parsed with the ModelConfig protobuf schema; `mtqa_net` configs are compared
with each served ONNX file's inputs/outputs; every file listed in a version's manifest.json must
exist with its recorded SHA-256; the ensemble must reference published models, versions and
tensors. Problems are returned as readable lines, never raised one at a time.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf import text_format

from mtqa_builder import configs, contract
from mtqa_builder.contract import (
    CONFIG,
    ENSEMBLE,
    LABELS,
    MANIFEST,
    MODELS,
    NET,
    THRESHOLDS,
    numeric_versions,
)
from mtqa_builder.hashing import file_sha256

_ONNX_TO_TRITON = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
}


def _served_versions(cfg, found: list[int]) -> list[int]:
    policy = cfg.version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "specific":
        return list(policy.specific.versions)
    if which == "all":
        return found
    return found[-(policy.latest.num_versions or 1) :]


def _check_onnx(path: Path, cfg, where: str) -> list[str]:
    problems = []
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError and others for corrupt files
        return [f"{where}: cannot read {path.name}: {exc}"]
    pairs = [
        ("input", list(cfg.input), list(graph.input)),
        ("output", list(cfg.output), list(graph.output)),
    ]
    for kind, declared, actual in pairs:
        by_name = {vi.name: vi for vi in actual}
        if {t.name for t in declared} != set(by_name):
            problems.append(
                f"{where}: config {kind}s {sorted(t.name for t in declared)} != ONNX "
                f"{sorted(by_name)}"
            )
            continue
        for t in declared:
            tt = by_name[t.name].type.tensor_type
            dims = [d.dim_value if d.dim_value else -1 for d in tt.shape.dim]
            want = [-1, *t.dims] if cfg.max_batch_size > 0 else list(t.dims)
            dtype = configs.mc.DataType.Name(t.data_type)
            if _ONNX_TO_TRITON.get(tt.elem_type) != dtype:
                problems.append(f"{where}: {t.name} is {dtype} in config, ONNX type {tt.elem_type}")
            if dims != want:
                problems.append(f"{where}: {t.name} dims {want[1:]} in config, ONNX {dims[1:]}")
    return problems


def _check_version(model_dir: Path, version: int, cfg) -> list[str]:
    vdir = model_dir / str(version)
    where = f"{model_dir.name}/{version}"
    if not vdir.is_dir():
        return [f"{where}: listed in version_policy but the directory is missing"]
    if not (vdir / MANIFEST).is_file():
        return [f"{where}: {MANIFEST} missing"]
    try:
        manifest = contract.read_manifest(model_dir.parent, model_dir.name, version)
    except contract.ContractError as exc:
        return [f"{where}: {exc}"]
    problems = []
    for name, digest in manifest.get("files", {}).items():
        path = vdir / name
        if not path.is_file():
            problems.append(f"{where}: {name} listed in the manifest is missing")
        elif file_sha256(path) != digest:
            problems.append(f"{where}: {name} checksum differs from the manifest (tampered?)")
    for required in (LABELS, THRESHOLDS):
        if not (vdir / required).is_file():
            problems.append(f"{where}: {required} missing")
    if cfg.backend == "python" and not (vdir / "model.py").is_file():
        problems.append(f"{where}: python backend model.py missing")
    onnx_file = vdir / "model.onnx"
    if cfg.name == NET and onnx_file.is_file():
        if manifest.get("onnx_sha256") not in (None, file_sha256(onnx_file)):
            problems.append(f"{where}: model.onnx does not match onnx_sha256 in the manifest")
        problems += _check_onnx(onnx_file, cfg, where)
    if cfg.backend == configs.OPENVINO_BACKEND:
        name = cfg.default_model_filename or "model.xml"
        if not (vdir / name).is_file():
            problems.append(f"{where}: {name} (the openvino backend's model file) missing")
    if cfg.platform == "tensorrt_plan":
        names = list(cfg.cc_model_filenames.values()) or [
            cfg.default_model_filename or "model.plan"
        ]
        problems += [f"{where}: engine {n} missing" for n in names if not (vdir / n).is_file()]
    return problems


def _check_openvino(cfg) -> list[str]:
    """What Triton's `openvino` backend would refuse at load time, or serve wrongly."""
    where = f"{cfg.name}: openvino backend"
    problems = []
    if cfg.default_model_filename not in ("", "model.xml", configs.OPENVINO_MODEL_FILE):
        problems.append(
            f"{where}: default_model_filename {cfg.default_model_filename!r} is none "
            "of model.xml, model.onnx"
        )
    kinds = {g.kind for g in cfg.instance_group}
    if kinds - {configs.mc.ModelInstanceGroup.KIND_CPU}:
        problems.append(f"{where}: instance groups must be KIND_CPU (the backend runs on CPU)")
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    for key, value in params.items():
        if key not in configs.OPENVINO_PARAMETERS:
            problems.append(f"{where}: parameter {key} is not one the backend reads")
            continue
        allowed = configs.OPENVINO_PARAMETERS[key]
        number = value.isdigit()
        if allowed is not None and value.upper() not in allowed:
            problems.append(f"{where}: {key}={value!r}, expected one of {list(allowed)}")
        elif key == "NUM_STREAMS" and not (number or value.upper() in ("AUTO", "NUMA")):
            problems.append(f"{where}: NUM_STREAMS={value!r}, expected a number, AUTO or NUMA")
        elif key.endswith("_THREADS") and not number:
            problems.append(f"{where}: {key}={value!r}, expected a non-negative number")
    padding = params.get("ENABLE_BATCH_PADDING", "NO").upper() == "YES"
    if cfg.max_batch_size > 0 and not padding:
        problems.append(
            f"{where}: without ENABLE_BATCH_PADDING=YES it refuses every batch "
            f"smaller than max_batch_size {cfg.max_batch_size}"
        )
    return problems


def _check_ensemble(cfg, loaded: dict) -> list[str]:
    problems = []
    produced = {i.name for i in cfg.input}
    for step in cfg.ensemble_scheduling.step:
        target = loaded.get(step.model_name)
        where = f"{cfg.name}: step {step.model_name}"
        if target is None:
            problems.append(f"{where}: model not in the repository")
            continue
        tcfg, served = target
        if step.model_version != -1 and step.model_version not in served:
            problems.append(f"{where}: version {step.model_version} is not served {served}")
        inputs = {i.name for i in tcfg.input}
        outputs = {o.name for o in tcfg.output}
        for key, value in step.input_map.items():
            if key not in inputs:
                problems.append(f"{where}: no input named {key}")
            if value not in produced:
                problems.append(f"{where}: tensor {value} is not produced before this step")
        for key, value in step.output_map.items():
            if key not in outputs:
                problems.append(f"{where}: no output named {key}")
            produced.add(value)
    missing = [o.name for o in cfg.output if o.name not in produced]
    if missing:
        problems.append(f"{cfg.name}: outputs {missing} are produced by no step")
    return problems


def check_repository(repo: Path) -> list[str]:
    """All problems found in `repo` (empty list: the repository is consistent)."""
    repo = Path(repo)
    if not repo.is_dir():
        return [f"{repo}: not a directory"]
    problems: list[str] = []
    loaded: dict[str, tuple] = {}
    for model in MODELS:
        path = repo / model / CONFIG
        if not path.is_file():
            problems.append(f"{model}: {CONFIG} missing")
            continue
        try:
            cfg = configs.parse(path.read_text())
        except text_format.ParseError as exc:
            problems.append(f"{model}: {CONFIG} does not parse: {exc}")
            continue
        if cfg.name != model:
            problems.append(f"{model}: config name is {cfg.name!r}")
        if cfg.max_batch_size <= 0:
            problems.append(f"{model}: max_batch_size must be > 0")
        served = _served_versions(cfg, numeric_versions(repo / model))
        if not served:
            problems.append(f"{model}: no version to serve")
        loaded[model] = (cfg, served)
        if cfg.backend == configs.OPENVINO_BACKEND:
            problems += _check_openvino(cfg)
        for version in served:
            problems += _check_version(repo / model, version, cfg)
    if ENSEMBLE in loaded:
        problems += _check_ensemble(loaded[ENSEMBLE][0], loaded)
    return problems
