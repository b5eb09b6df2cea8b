"""Bench views of a built repository: the same version folders (symlinked), configs rewritten
through the builder's protobuf writer, with dynamic batching on or off and one ensemble per
precision variant (`mtqa_inspect_<precision>`), so each sweep point is addressable by name.

The source repository is never modified; a view is a folder of symlinks and config.pbtxt files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mtqa_bench.errors import BenchError

NET, ENSEMBLE = "mtqa_net", "mtqa_inspect"


@dataclass(frozen=True)
class RepoInfo:
    """What the bench needs to know about a built repository."""

    variants: dict[str, str]  # precision -> mtqa_net version
    image_size: int
    mean: list[float]
    std: list[float]
    checkpoint: Path | None
    intra_op_threads: int
    instances: int
    lane_sessions: int = 1
    chunk_images: int = 0


def _config(model_dir: Path):
    from mtqa_builder import configs

    path = model_dir / "config.pbtxt"
    if not path.is_file():
        raise BenchError(f"{path} is missing; is {model_dir.parent} a repository from mtqa build?")
    return configs.parse(path.read_text())


def _latest(model_dir: Path) -> Path:
    versions = sorted(
        (p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    if not versions:
        raise BenchError(f"{model_dir} has no version folders")
    return versions[-1]


def inspect_repository(repo: Path) -> RepoInfo:
    """Read variants (from `mtqa_net/variants.json`), preprocessing and checkpoint of a repo."""
    repo = Path(repo)
    table_path = repo / NET / "variants.json"
    if not table_path.is_file():
        raise BenchError(f"{table_path} is missing; build the repository with `mtqa build`")
    table = json.loads(table_path.read_text())
    variants: dict[str, str] = {}
    for version, info in sorted(table.items(), key=lambda kv: int(kv[0])):
        if (repo / NET / version).is_dir():
            variants[info["precision"]] = version  # the newest build of a precision wins
    pre = json.loads((_latest(repo / "mtqa_preprocess") / "preprocess.json").read_text())
    manifest = json.loads(
        (repo / NET / next(iter(variants.values())) / "manifest.json").read_text()
    )
    run_dir = manifest.get("checkpoint", {}).get("run_dir")
    config = _config(repo / NET)
    params = config.parameters

    def param(name: str, default: str) -> int:
        return int(params[name].string_value if name in params else default)

    return RepoInfo(
        variants=variants,
        image_size=int(pre["image_size"]),
        mean=[float(v) for v in pre["mean"]],
        std=[float(v) for v in pre["std"]],
        checkpoint=Path(run_dir) if run_dir and Path(run_dir).is_dir() else None,
        intra_op_threads=param("intra_op_threads", "1"),
        instances=sum(group.count for group in config.instance_group) or 1,
        lane_sessions=param("lane_sessions", "1"),
        chunk_images=param("chunk_images", "0"),
    )


def ensemble_name(precision: str) -> str:
    return f"{ENSEMBLE}_{precision}"


def write_view(repo: Path, dest: Path, batching: bool, variants: dict[str, str]) -> Path:
    """Write a view of `repo` into `dest` (must not exist) with batching on/off."""
    from mtqa_builder import configs

    repo, dest = Path(repo).resolve(), Path(dest)
    if dest.exists():
        raise BenchError(f"{dest} already exists; a view is written into a fresh folder")
    models = [p for p in sorted(repo.iterdir()) if (p / "config.pbtxt").is_file()]
    for model_dir in models:
        cfg = _config(model_dir)
        out = dest / model_dir.name
        out.mkdir(parents=True)
        for entry in model_dir.iterdir():
            if entry.name != "config.pbtxt":
                (out / entry.name).symlink_to(entry)
        if not batching:
            cfg.ClearField("dynamic_batching")  # every request executes alone
        (out / "config.pbtxt").write_text(configs.to_text(cfg))
    ensemble = _config(repo / ENSEMBLE)
    for precision, version in variants.items():
        cfg = type(ensemble)()
        cfg.CopyFrom(ensemble)
        cfg.name = ensemble_name(precision)
        for step in cfg.ensemble_scheduling.step:
            if step.model_name == NET:
                step.model_version = int(version)
        out = dest / cfg.name
        out.mkdir()
        for vdir in (p for p in (repo / ENSEMBLE).iterdir() if p.name.isdigit()):
            (out / vdir.name).symlink_to(vdir)
        (out / "config.pbtxt").write_text(configs.to_text(cfg))
    return dest
