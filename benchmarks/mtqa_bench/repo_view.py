"""Bench views of a built repository: the same version folders (symlinked), configs rewritten
through the builder's protobuf writer, with dynamic batching on or off and one ensemble per
precision variant (`mtqa_inspect_<precision>`), so each sweep point is addressable by name.

The source repository is never modified; a view is a folder of symlinks and config.pbtxt files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtqa_bench.errors import BenchError
from mtqa_builder import configs, contract
from mtqa_builder.contract import CONFIG, ENSEMBLE, NET, PRE


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
    path = model_dir / CONFIG
    if not path.is_file():
        raise BenchError(f"{path} is missing; is {model_dir.parent} a repository from mtqa build?")
    return configs.parse(path.read_text())


def inspect_repository(repo: Path) -> RepoInfo:
    """Read variants (from `variants.json`), preprocessing and checkpoint of a repository."""
    repo = Path(repo)
    try:
        if not contract.read_variants(repo):
            raise BenchError(f"{repo / NET} lists no variants; build it with `mtqa build`")
        variants = contract.precision_versions(repo)  # the newest build of a precision wins
        if not variants:
            raise BenchError(f"no variant listed in {repo / NET} is on disk")
        pre = contract.read_preprocessing(repo, contract.latest_version(repo, PRE))
        manifest = contract.read_manifest(repo, NET, next(iter(variants.values())))
    except contract.ContractError as exc:
        raise BenchError(str(exc)) from None
    run_dir = manifest.get("checkpoint", {}).get("run_dir")
    config = _config(repo / NET)
    params = config.parameters

    def param(name: str, default: str) -> int:
        return int(params[name].string_value if name in params else default)

    return RepoInfo(
        variants=variants,
        image_size=pre.image_size,
        mean=list(pre.mean),
        std=list(pre.std),
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
    repo, dest = Path(repo).resolve(), Path(dest)
    if dest.exists():
        raise BenchError(f"{dest} already exists; a view is written into a fresh folder")
    models = [p for p in sorted(repo.iterdir()) if (p / CONFIG).is_file()]
    for model_dir in models:
        cfg = _config(model_dir)
        out = dest / model_dir.name
        out.mkdir(parents=True)
        for entry in model_dir.iterdir():
            if entry.name != CONFIG:
                (out / entry.name).symlink_to(entry)
        if not batching:
            cfg.ClearField("dynamic_batching")  # every request executes alone
        (out / CONFIG).write_text(configs.to_text(cfg))
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
        (out / CONFIG).write_text(configs.to_text(cfg))
    return dest
