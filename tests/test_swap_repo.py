"""`mtqa swap`'s repository side without a server: resolving `--to`, publishing an engine file,
manifest verification, version-policy handling, the swap lock and the history file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtqa_builder.swap import SwapInProgressError, TargetError, history, read_history
from mtqa_builder.swap import repo as swap_repo


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built_repo, tmp_path / "repo"))


def test_resolve_version_and_precision(repo: Path) -> None:
    assert swap_repo.resolve(repo, "2", current=1, precision=None).version == 2
    target = swap_repo.resolve(repo, "int8", current=1, precision=None)
    assert (target.version, target.published) == (2, False)
    assert target.manifest["precision"] == "int8"
    with pytest.raises(TargetError, match="no version 7"):
        swap_repo.resolve(repo, "7", current=1, precision=None)
    with pytest.raises(TargetError, match="not a version number"):
        swap_repo.resolve(repo, "fp16", current=1, precision=None)


def test_publish_engine_adds_a_version_and_never_overwrites(repo: Path, tmp_path: Path) -> None:
    engine = tmp_path / "candidate.onnx"
    shutil.copyfile(repo / "mtqa_net" / "2" / "model.onnx", engine)
    target = swap_repo.resolve(repo, str(engine), current=1, precision="int8")
    assert (target.version, target.published) == (3, True)
    vdir = repo / "mtqa_net" / "3"
    assert sorted(p.name for p in vdir.iterdir()) == [
        "backend_utils.py", "labels.txt", "manifest.json", "model.onnx", "model.py",
        "ort_plan.py", "thresholds.json",
    ]  # fmt: skip
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["gate"] is None and manifest["published_by"] == "mtqa swap"
    assert manifest["onnx_sha256"] == manifest["files"]["model.onnx"]
    assert manifest["source_file"] == str(engine.resolve())
    assert swap_repo.variants(repo)["3"]["gate_passed"] is None
    # A precision name still means the builder's gated variant, not the swap-published file.
    assert swap_repo.resolve(repo, "int8", current=1, precision=None).version == 2
    again = swap_repo.resolve(repo, str(engine), current=1, precision=None)
    assert again.version == 4 and (repo / "mtqa_net" / "3" / "manifest.json").is_file()


def test_publish_refuses_an_engine_the_target_cannot_serve(repo: Path, tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not for a local repository")
    with pytest.raises(TargetError, match="serves .onnx files"):
        swap_repo.resolve(repo, str(plan), current=1, precision=None)
    assert swap_repo.numeric_versions(repo / "mtqa_net") == [1, 2]


def test_verify_version_catches_tampering_and_failed_gates(repo: Path) -> None:
    (repo / "mtqa_net" / "2" / "model.onnx").write_bytes(b"swapped behind our back")
    with pytest.raises(TargetError, match="model.onnx differs from its manifest"):
        swap_repo.verify_version(repo, 2)
    path = repo / "mtqa_net" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["gate"]["passed"] = False
    path.write_text(json.dumps(manifest))
    with pytest.raises(TargetError, match="failed the builder's accuracy gate"):
        swap_repo.verify_version(repo, 1)


def test_version_policy_helpers(repo: Path) -> None:
    cfg = swap_repo.read_config(repo, "mtqa_net")
    assert swap_repo.served_versions(cfg) == [1, 2]
    assert swap_repo.served_versions(swap_repo.with_versions(cfg, [2, 5, 2])) == [2, 5]
    assert swap_repo.served_versions(cfg) == [1, 2]  # the original is untouched
    ensemble = swap_repo.read_config(repo, "mtqa_inspect")
    assert swap_repo.pinned_step(swap_repo.with_pinned(ensemble, "mtqa_net", 2), "mtqa_net") == 2
    cfg.version_policy.Clear()
    cfg.version_policy.latest.num_versions = 1
    with pytest.raises(TargetError, match="must list specific versions"):
        swap_repo.served_versions(cfg)


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with (
        history.swap_lock(tmp_path),
        pytest.raises(SwapInProgressError, match="another swap is running"),
        history.swap_lock(tmp_path),
    ):
        pass
    assert not (tmp_path / history.LOCK_FILE).exists()


def test_history_appends_records(tmp_path: Path) -> None:
    assert read_history(tmp_path) == []
    history.append(tmp_path, {"outcome": "swapped", "to": {"version": 2}})
    history.append(tmp_path, {"outcome": "rolled_back"})
    assert [r["outcome"] for r in read_history(tmp_path)] == ["swapped", "rolled_back"]
