"""Writes a Triton model repository: new numbered versions, config.pbtxt files, manifests.

Names, files and records follow `mtqa_builder.contract`. Each precision variant of `mtqa_net`
becomes its own version (listed with its precision in `variants.json`); the ensemble pins the
serving one.
Nothing is ever overwritten: version directories are assembled (and byte-compiled) in a staging
directory and renamed into place, configs are replaced atomically, the ensemble's config last.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtqa_builder import configs, contract
from mtqa_builder.configs import Serving, Shapes
from mtqa_builder.contract import (
    CONFIG,
    ENSEMBLE,
    LABELS,
    NET,
    POST,
    PRE,
    THRESHOLDS,
    Preprocessing,
    next_version,
)
from mtqa_builder.errors import RepositoryError
from mtqa_builder.hashing import file_sha256

_MODELS_DIR = Path(__file__).resolve().parent / "triton_models"


@dataclass
class Variant:
    """One gated precision variant of the network, ready to publish."""

    precision: str
    onnx_path: Path
    gate: dict[str, Any]
    quantization: dict[str, Any] = field(default_factory=dict)
    # ngc-trt only: compute capability ("9.0") -> engine plan file, and its build manifests.
    engines: dict[str, Path] = field(default_factory=dict)
    engine_manifests: dict[str, dict] = field(default_factory=dict)
    # OpenVINO variants: contract.RUNTIME's record (runtime, inference precision); empty: ORT
    runtime: dict[str, str] = field(default_factory=dict)


@dataclass
class Source:
    """What the repository needs from the checkpoint."""

    run_dir: Path
    classes: list[str]
    grades: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    thresholds: dict[str, Any]
    weights_sha256: str
    resize: str = "squash"  # how images become the square input (mtqa.data.preprocess)
    drift_reference: dict[str, Any] | None = None  # triton_models/drift.py fingerprint

    @property
    def shapes(self) -> Shapes:
        return Shapes(self.image_size, len(self.classes), len(self.grades))

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.image_size, tuple(self.mean), tuple(self.std), self.resize)


def _preprocess_source(module: str = "preprocess") -> Path:
    """mtqa/data/<module>.py, copied verbatim into mtqa_preprocess (preprocess and decode)."""
    spec = importlib.util.find_spec(f"mtqa.data.{module}")
    if spec is None or spec.origin is None:
        raise RepositoryError(f"mtqa.data.{module} is missing; it is copied into mtqa_preprocess")
    return Path(spec.origin)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Publisher:
    """Stages version directories next to the repository and moves them in at the end."""

    def __init__(self, repo: Path, source: Source, target: str, build: dict[str, Any]) -> None:
        self.repo, self.source, self.target, self.build = repo, source, target, build
        self.staging = Path(tempfile.mkdtemp(prefix=".mtqa-staging-", dir=repo.parent))
        self.staged: list[tuple[Path, Path]] = []

    def version_dir(self, model: str, version: int) -> Path:
        vdir = self.staging / model / str(version)
        vdir.mkdir(parents=True)
        (vdir / LABELS).write_text("\n".join(self.source.classes) + "\n")
        contract.write_json(vdir / THRESHOLDS, self.source.thresholds)
        self.staged.append((vdir, self.repo / model / str(version)))
        return vdir

    def seal(self, vdir: Path, model: str, version: int, extra: dict[str, Any]) -> None:
        """Byte-compile python sources (a later __pycache__ would make Triton reload) and write
        the manifest with every file's SHA-256."""
        compileall.compile_dir(str(vdir), quiet=1)
        files = {
            str(p.relative_to(vdir)): file_sha256(p)
            for p in sorted(vdir.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }
        manifest = {
            "model": model,
            "version": version,
            "target": self.target,
            "files": files,
            "checkpoint": {
                "run_dir": str(self.source.run_dir),
                "weights_sha256": self.source.weights_sha256,
            },
            "classes": self.source.classes,
            "grades": self.source.grades,
            "image_size": self.source.image_size,
            **self.build,
            **extra,
        }
        contract.write_manifest(vdir, manifest)

    def commit(self) -> None:
        for staged, final in self.staged:
            if final.exists():  # never overwrite a published version
                raise RepositoryError(f"{final} appeared during the build; nothing replaced")
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), str(final))
        shutil.rmtree(self.staging, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _python_model(vdir: Path, source: str) -> None:
    """Place a python-backend model: `source` as model.py, with the helpers it loads by path."""
    shutil.copyfile(_MODELS_DIR / source, vdir / "model.py")
    shutil.copyfile(_MODELS_DIR / "backend_utils.py", vdir / "backend_utils.py")


def _net_files(vdir: Path, target: str, variant: Variant) -> dict[str, str]:
    """Place the network files of one variant; returns cc_model_filenames for ngc-trt."""
    if target == "ngc-trt":
        if not variant.engines:
            raise RepositoryError(f"no TensorRT engine for the {variant.precision} variant")
        if len(variant.engines) == 1:
            shutil.copyfile(next(iter(variant.engines.values())), vdir / "model.plan")
            return {}
        names = {}
        for cc, plan in sorted(variant.engines.items()):
            names[cc] = f"model_sm{cc.replace('.', '')}.plan"
            shutil.copyfile(plan, vdir / names[cc])
        return names
    shutil.copyfile(variant.onnx_path, vdir / "model.onnx")
    if target == "local":
        _python_model(vdir, "net_model.py")
        shutil.copyfile(_MODELS_DIR / "ort_plan.py", vdir / "ort_plan.py")
        if variant.runtime:  # net_model.py opens model.onnx on OpenVINO instead of ORT
            contract.write_json(vdir / contract.RUNTIME, variant.runtime)
            shutil.copyfile(_MODELS_DIR / "ov_plan.py", vdir / "ov_plan.py")
    elif target == "ngc-openvino":  # the backend reads model.onnx; runtime.json records how
        contract.write_json(vdir / contract.RUNTIME, variant.runtime)
    elif variant.runtime:
        raise RepositoryError(f"the {variant.precision} variant runs only on OpenVINO targets")
    return {}


def publish(
    repo: Path,
    target: str,
    source: Source,
    variants: list[Variant],
    serving: Serving,
    serve: str,
    build: dict[str, Any],
) -> dict[str, Any]:
    """Publish `variants` (already gated) and the pre/post/ensemble models as new versions.

    `serve` names the precision the ensemble uses; `build` is merged into every manifest
    (calibration hash, tool versions, ...). Returns {model: [versions]} and the serving version.
    """
    if target not in configs.TARGETS:
        raise RepositoryError(f"unknown target {target!r}; expected one of {configs.TARGETS}")
    precisions = [v.precision for v in variants]
    if serve not in precisions:
        raise RepositoryError(f"--serve {serve!r} is not among the built variants {precisions}")
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    shapes = source.shapes
    pub = _Publisher(repo, source, target, build)
    try:
        first_net = next_version(repo, NET)
        net_versions = {v.precision: first_net + i for i, v in enumerate(variants)}
        cc_names: dict[str, str] = {}
        for variant in variants:
            version = net_versions[variant.precision]
            vdir = pub.version_dir(NET, version)
            cc_names = _net_files(vdir, target, variant) or cc_names
            extra = {
                "precision": variant.precision,
                "onnx_sha256": file_sha256(variant.onnx_path),
                "gate": variant.gate,
                "quantization": variant.quantization,
                "runtime": variant.runtime or {"runtime": "onnxruntime"},
            }
            if variant.engine_manifests:
                extra["engines"] = variant.engine_manifests
            pub.seal(vdir, NET, version, extra)
        others = {model: next_version(repo, model) for model in (PRE, POST, ENSEMBLE)}
        vdirs = {model: pub.version_dir(model, version) for model, version in others.items()}
        _python_model(vdirs[PRE], "preprocess_model.py")
        for module in ("preprocess", "decode"):
            shutil.copyfile(_preprocess_source(module), vdirs[PRE] / f"{module}.py")
        if source.drift_reference is not None:  # mtqa_preprocess scores input drift against it
            shutil.copyfile(_MODELS_DIR / "drift.py", vdirs[PRE] / "drift.py")
            contract.write_json(vdirs[PRE] / contract.DRIFT_REFERENCE, source.drift_reference)
        _python_model(vdirs[POST], "postprocess_model.py")
        shutil.copyfile(_MODELS_DIR / "postprocess_core.py", vdirs[POST] / "postprocess_core.py")
        shutil.copyfile(_preprocess_source(), vdirs[POST] / "preprocess.py")
        contract.write_preprocessing(vdirs[PRE], vdirs[POST], source.preprocessing)
        for model, vdir in vdirs.items():
            extra = {"serves_precision": serve} if model == ENSEMBLE else {}
            pub.seal(vdir, model, others[model], extra)
        # Configs are built before anything moves in, so a bad config publishes nothing.
        texts = {
            NET: configs.net_config(
                target,
                shapes,
                serving,
                net_versions.values(),
                cc_names,
                hint_bf16=any(v.runtime.get("inference_precision") == "bf16" for v in variants),
            ),
            PRE: configs.preprocess_config(shapes, serving, [others[PRE]]),
            POST: configs.postprocess_config(shapes, serving, [others[POST]]),
            ENSEMBLE: configs.ensemble_config(
                shapes,
                serving,
                [others[ENSEMBLE]],
                {PRE: others[PRE], NET: net_versions[serve], POST: others[POST]},
                labels=contract.ensemble_parameters(
                    source.classes, source.grades, source.thresholds, source.preprocessing
                ),
            ),
        }
        pub.commit()
    except BaseException:
        pub.abort()
        raise
    for model, cfg in texts.items():  # ensemble last: it only points at published versions
        _atomic_text(repo / model / CONFIG, configs.to_text(cfg))
    gated = {
        net_versions[v.precision]: (v.precision, bool(v.gate.get("passed", True))) for v in variants
    }
    contract.record_variants(repo, gated, build.get("build_id"))
    return {"versions": {NET: net_versions, **others}, "serving": net_versions[serve]}
