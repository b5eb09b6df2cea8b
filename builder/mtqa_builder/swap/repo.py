"""What `mtqa swap` reads and writes in the model repository (never an existing version).

Resolves `--model-version` (a version number, a precision from `variants.json`, or an engine file
to publish as a new version), verifies a version against its manifest, and reads/writes
`config.pbtxt` with the builder's protobuf reader and writer (`mtqa_builder.configs`). Names,
manifests and variants.json go through `mtqa_builder.contract`; its errors become TargetError here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from mtqa_builder import configs, contract
from mtqa_builder.contract import CONFIG, ENSEMBLE, MANIFEST, NET, PRE, numeric_versions
from mtqa_builder.hashing import file_sha256
from mtqa_builder.swap.errors import TargetError
from mtqa_builder.swap.history import now

ENGINE_SUFFIXES = {".onnx": "model.onnx", ".plan": "model.plan"}
# Which engine file each repository target serves (mtqa_builder.configs.TARGETS).
TARGET_SUFFIX = {"local": ".onnx", "ngc-onnx": ".onnx", "ngc-trt": ".plan", "ngc-openvino": ".onnx"}


@dataclass(frozen=True)
class Target:
    """The version to swap to, its manifest, and whether this swap published it."""

    version: int
    manifest: dict[str, Any]
    published: bool


def read_config(repo: Path, model: str) -> configs.mc.ModelConfig:
    """Parse `repo/model/config.pbtxt` with the ModelConfig schema."""
    try:
        return configs.read_model_config(repo, model)
    except contract.ContractError as exc:
        raise TargetError(str(exc)) from None


def write_config(repo: Path, cfg: configs.mc.ModelConfig) -> None:
    """Replace `repo/<cfg.name>/config.pbtxt` atomically with the builder's text writer."""
    path = repo / cfg.name / CONFIG
    tmp = path.with_name(f".{path.name}.swap.tmp")
    tmp.write_text(configs.to_text(cfg))
    os.replace(tmp, path)


def served_versions(cfg: configs.mc.ModelConfig) -> list[int]:
    """The versions a `specific` version policy lists (mtqa build always writes one)."""
    if cfg.version_policy.WhichOneof("policy_choice") != "specific":
        raise TargetError(
            f"{cfg.name}: version_policy must list specific versions for a swap, got "
            f"{text_format.MessageToString(cfg.version_policy, as_one_line=True) or 'default'}"
        )
    return sorted(int(v) for v in cfg.version_policy.specific.versions)


def with_versions(cfg: configs.mc.ModelConfig, versions: list[int]) -> configs.mc.ModelConfig:
    """A copy of `cfg` whose version policy lists exactly `versions`."""
    out = configs.mc.ModelConfig()
    out.CopyFrom(cfg)
    out.version_policy.Clear()
    out.version_policy.specific.versions.extend(sorted(set(versions)))
    return out


def pinned_step(ensemble: configs.mc.ModelConfig, model: str) -> int:
    """The version of `model` the ensemble pins."""
    for step in ensemble.ensemble_scheduling.step:
        if step.model_name == model:
            return int(step.model_version)
    raise TargetError(f"{ENSEMBLE} has no step for {model}")


def with_pinned(ensemble: configs.mc.ModelConfig, model: str, version: int):
    """A copy of the ensemble config whose `model` step pins `version`."""
    out = configs.mc.ModelConfig()
    out.CopyFrom(ensemble)
    for step in out.ensemble_scheduling.step:
        if step.model_name == model:
            step.model_version = version
    return out


def load_manifest(repo: Path, model: str, version: int) -> dict[str, Any]:
    """The manifest of one version (TargetError when missing or unreadable)."""
    path = contract.version_dir(repo, model, version) / MANIFEST
    if not path.is_file():
        raise TargetError(f"{model} version {version} has no {MANIFEST} ({path})")
    try:
        return contract.read_manifest(repo, model, version)
    except contract.ContractError as exc:
        raise TargetError(str(exc)) from None


def verify_version(repo: Path, version: int) -> dict[str, Any]:
    """Check a `mtqa_net` version against its manifest; returns the manifest.

    Every listed file must exist with its recorded SHA-256 (what was gated is what is served), and
    a builder gate recorded in the manifest must have passed.
    """
    vdir = repo / NET / str(version)
    if not vdir.is_dir():
        raise TargetError(
            f"{NET} has no version {version}; published: {numeric_versions(repo / NET)}"
        )
    manifest = load_manifest(repo, NET, version)
    files = manifest.get("files") or {}
    if not files:
        raise TargetError(f"{NET}/{version}/{MANIFEST} lists no files")
    for name, digest in sorted(files.items()):
        path = vdir / name
        if not path.is_file():
            raise TargetError(f"{NET}/{version}: {name} listed in the manifest is missing")
        if file_sha256(path) != digest:
            raise TargetError(f"{NET}/{version}: {name} differs from its manifest SHA-256")
    missing = [k for k in ("classes", "grades") if not manifest.get(k)]
    if missing:
        raise TargetError(f"{NET}/{version}/{MANIFEST} lacks {missing}")
    gate = manifest.get("gate")
    if isinstance(gate, dict) and gate.get("passed") is False:
        raise TargetError(f"{NET}/{version} failed the builder's accuracy gate; not swapping")
    return manifest


def variants(repo: Path) -> dict[str, dict[str, Any]]:
    """`mtqa_net/variants.json` (version -> precision, ...), empty when absent."""
    try:
        return contract.read_variants(repo)
    except contract.ContractError as exc:
        raise TargetError(str(exc)) from None


def resolve(repo: Path, to: str, current: int, precision: str | None) -> Target:
    """Turn `--model-version` into a target version, publishing an engine file first when one
    is named."""
    if to.isdigit():
        version = int(to)
        return Target(version, verify_version(repo, version), published=False)
    path = Path(to)
    if path.suffix in ENGINE_SUFFIXES and path.exists():
        version = publish_engine(repo, path, current, precision)
        return Target(version, verify_version(repo, version), published=True)
    table = variants(repo)
    # Only builder-gated variants answer to a precision name; swap-published files need a number.
    matches = sorted(
        int(v)
        for v, info in table.items()
        if info.get("precision") == to and info.get("gate_passed") is True
    )
    if matches:
        version = matches[-1]
        return Target(version, verify_version(repo, version), published=False)
    known = sorted({info.get("precision") for info in table.values()} - {None})
    raise TargetError(
        f"--model-version {to!r} is not a version number, a published precision {known} or an "
        f"existing {'/'.join(ENGINE_SUFFIXES)} file"
    )


def publish_engine(repo: Path, engine: Path, template: int, precision: str | None) -> int:
    """Publish `engine` as the next `mtqa_net` version, beside the files of version `template`.

    labels.txt, thresholds.json and model.py (local target) come from the template version; the
    manifest records the source file and that no builder gate ran on it (the golden check is
    its gate). The directory is assembled in staging and renamed into place, never overwritten.
    """
    net_dir = repo / NET
    source_dir = net_dir / str(template)
    base = load_manifest(repo, NET, template)
    want = TARGET_SUFFIX.get(base.get("target", "local"))
    if engine.suffix != want:
        raise TargetError(
            f"{engine.name}: a {base.get('target')!r} repository serves {want} files, "
            f"not {engine.suffix}"
        )
    if read_config(repo, NET).cc_model_filenames:
        raise TargetError(
            "this mtqa_net serves one engine per compute capability (cc_model_filenames); "
            "publish those with `mtqa build --engines`, then swap to the version number"
        )
    version = contract.next_version(repo, NET)
    staging = Path(tempfile.mkdtemp(prefix=".mtqa-swap-", dir=repo.parent))
    try:
        vdir = staging / str(version)
        vdir.mkdir()
        keep = [n for n in base.get("files", {}) if Path(n).suffix not in ENGINE_SUFFIXES]
        for name in keep:
            shutil.copyfile(source_dir / name, vdir / name)
        model_file = ENGINE_SUFFIXES[engine.suffix]
        shutil.copyfile(engine, vdir / model_file)
        files = {n: file_sha256(vdir / n) for n in sorted([*keep, model_file])}
        manifest = {key: base[key] for key in contract.INHERITED_MANIFEST_KEYS if key in base}
        manifest.update(
            version=version,
            files=files,
            precision=precision or base.get("precision"),
            gate=None,
            published_by="mtqa swap",
            published=now(),
            source_file=str(engine.resolve()),
        )
        if model_file == "model.onnx":
            manifest["onnx_sha256"] = files[model_file]
        contract.write_manifest(vdir, manifest)
        final = net_dir / str(version)
        if final.exists():
            raise TargetError(f"{final} appeared while publishing; nothing replaced")
        shutil.move(str(vdir), str(final))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # not gated by the builder (gate_passed None): `--model-version PRECISION` never picks it,
    # benchmarks do
    contract.record_variants(
        repo, {version: (manifest["precision"], None)}, "mtqa-swap", built=now()
    )
    return version


def preprocessing(repo: Path, ensemble: configs.mc.ModelConfig) -> contract.Preprocessing:
    """Image size, normalisation and resize mode of the preprocess version the ensemble pins."""
    try:
        return contract.read_preprocessing(repo, pinned_step(ensemble, PRE))
    except contract.ContractError as exc:
        raise TargetError(f"{exc}: cannot normalise the golden set like serving does") from None
