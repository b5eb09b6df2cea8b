"""The repository contract: what a model repository built by `mtqa build` holds, by name.

The one place that names the four models, the files of a model and of a version, and the
parameters a built repository carries (image size, normalisation, resize mode, labels), and the
one reader and writer of its JSON records: `manifest.json` (every version), `variants.json`
(`mtqa_net`: version -> precision), `preprocess.json` / `postprocess.json` (the input geometry
the python models read). The builder, `mtqa swap`, `mtqa repo check`, the benchmarks and the tests
go through it; the client SDK learns the same facts from the served model config instead (the
ensemble's `parameters`, see `ensemble_parameters`). Layout: docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtqa_builder.errors import RepositoryError

# The models: the network, its python pre/post-processing, and the ensemble clients call.
NET = "mtqa_net"
PRE = "mtqa_preprocess"
POST = "mtqa_postprocess"
ENSEMBLE = "mtqa_inspect"
MODELS = (NET, PRE, POST, ENSEMBLE)

# Files of a model directory.
CONFIG = "config.pbtxt"
VARIANTS = "variants.json"  # mtqa_net only: version -> precision, gate, build
HISTORY = "swap_history.jsonl"  # mtqa_net only: one record per `mtqa swap` attempt
SWAP_LOCK = ".swap.lock"  # mtqa_net only: held while a swap runs

# Files of a version directory (`<model>/<N>/`, N a positive integer).
MANIFEST = "manifest.json"  # every file's SHA-256 and the build's provenance
LABELS = "labels.txt"
THRESHOLDS = "thresholds.json"
PREPROCESS = "preprocess.json"  # mtqa_preprocess: image_size, mean, std, resize
POSTPROCESS = "postprocess.json"  # mtqa_postprocess: image_size, resize
RUNTIME = "runtime.json"  # mtqa_net OpenVINO versions: runtime and inference precision
DRIFT_REFERENCE = "drift_reference.json"  # mtqa_preprocess: input statistics of the val images

# Manifest keys a version published from another (`mtqa swap --model-version FILE`) inherits.
INHERITED_MANIFEST_KEYS = ("model", "target", "checkpoint", "classes", "grades", "image_size")
# The ensemble config parameter naming the network model; clients read it to call the network
# directly (`InspectionClient.infer_tensor`) without knowing the repository's names.
NET_MODEL_PARAMETER = "net_model"


class ContractError(RepositoryError):
    """A repository file the contract names is missing, unreadable or lacks a required key."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's square input: served by mtqa_preprocess, undone for
    the masks by mtqa_postprocess, replayed by the golden check and the benchmarks."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "squash"  # mtqa.data.preprocess modes

    def preprocess_json(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
        }

    def postprocess_json(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "resize": self.resize}


def model_dir(repo: Path, model: str) -> Path:
    return Path(repo) / model


def version_dir(repo: Path, model: str, version: int | str) -> Path:
    return Path(repo) / model / str(version)


def numeric_versions(directory: Path) -> list[int]:
    """Existing version numbers of a model directory, ascending (non-numeric entries ignored)."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(repo: Path, model: str) -> int:
    """The number the next published version of `model` gets (versions are never reused)."""
    return (numeric_versions(model_dir(repo, model)) or [0])[-1] + 1


def latest_version(repo: Path, model: str) -> int:
    """The newest version of `model` (ContractError when there is none)."""
    versions = numeric_versions(model_dir(repo, model))
    if not versions:
        raise ContractError(f"{model_dir(repo, model)} has no version folders")
    return versions[-1]


def stamp() -> str:
    """UTC timestamp (seconds) for records."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def json_text(data: Any) -> str:
    """The repository's JSON form: indented, sorted keys, newline-terminated."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Write a JSON record atomically (a reader sees the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json_text(data))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON record; ContractError names the file when it is missing or not JSON."""
    if not path.is_file():
        raise ContractError(f"{path} is missing; is this a repository built by `mtqa build`?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path} is not JSON: {exc}") from None


# -- manifest.json ----------------------------------------------------------------------------


def write_manifest(vdir: Path, manifest: Mapping[str, Any]) -> None:
    write_json(vdir / MANIFEST, dict(manifest))


def read_manifest(repo: Path, model: str, version: int | str) -> dict[str, Any]:
    """The manifest of one version (ContractError when missing or unreadable)."""
    return read_json(version_dir(repo, model, version) / MANIFEST)


# -- variants.json ----------------------------------------------------------------------------


def read_variants(repo: Path) -> dict[str, dict[str, Any]]:
    """`mtqa_net/variants.json` (version -> precision, gate_passed, built, build_id); empty when
    the repository has none yet."""
    path = model_dir(repo, NET) / VARIANTS
    return read_json(path) if path.is_file() else {}


def record_variants(
    repo: Path,
    entries: Mapping[int, tuple[str | None, bool | None]],
    build_id: str | None,
    built: str | None = None,
) -> None:
    """Add `mtqa_net` versions (version -> (precision, gate_passed)) to variants.json, the table
    benchmarks and `mtqa swap --model-version PRECISION` address variants by. `gate_passed`
    None: published without the builder's gate (`mtqa swap --model-version FILE`)."""
    table = read_variants(repo)
    built = built or stamp()
    for version, (precision, gate_passed) in entries.items():
        table[str(version)] = {
            "precision": precision,
            "gate_passed": gate_passed,
            "built": built,
            "build_id": build_id,
        }
    write_json(model_dir(repo, NET) / VARIANTS, table)


def precision_versions(repo: Path) -> dict[str, str]:
    """precision -> its newest `mtqa_net` version still on disk."""
    out: dict[str, str] = {}
    for version, info in sorted(read_variants(repo).items(), key=lambda kv: int(kv[0])):
        if version_dir(repo, NET, version).is_dir():
            out[info["precision"]] = version
    return out


# -- preprocess.json / postprocess.json and the ensemble parameters -----------------------------


def write_preprocessing(pre_vdir: Path, post_vdir: Path, params: Preprocessing) -> None:
    """The geometry files mtqa_preprocess and mtqa_postprocess read at load time."""
    write_json(pre_vdir / PREPROCESS, params.preprocess_json())
    write_json(post_vdir / POSTPROCESS, params.postprocess_json())


def read_preprocessing(repo: Path, version: int | str | None = None) -> Preprocessing:
    """The preprocessing of an mtqa_preprocess version (default: the newest).

    The one reader of `image_size` from files: a record without it is an error, never a guess.
    """
    version = latest_version(repo, PRE) if version is None else version
    path = version_dir(repo, PRE, version) / PREPROCESS
    data = read_json(path)
    missing = [k for k in ("image_size", "mean", "std") if k not in data]
    if missing:
        raise ContractError(f"{path} lacks {missing}")
    try:
        return Preprocessing(
            image_size=int(data["image_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            resize=str(data.get("resize", "squash")),  # absent in repositories before letterbox
        )
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{path} holds unreadable values: {exc}") from None


def ensemble_parameters(
    classes: Sequence[str],
    grades: Sequence[str],
    thresholds: Mapping[str, Any],
    params: Preprocessing,
) -> dict[str, str]:
    """String parameters of the ensemble config: what a gRPC client reads from the model config
    alone (class and grade names, thresholds, geometry, the network model's name)."""
    return {
        "classes": json.dumps(list(classes)),
        "grades": json.dumps(list(grades)),
        "thresholds": json.dumps(thresholds),
        "image_size": str(params.image_size),
        "resize": params.resize,
        NET_MODEL_PARAMETER: NET,
    }
