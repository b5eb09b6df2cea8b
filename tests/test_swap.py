"""`mtqa swap` on a real local Triton serving a copy of `built_repo` (v1 fp32 served, v2 int8).

Each test gets its own repository copy and server, because a swap changes both. Covered: a
successful swap (ensemble switched, old version retired, configs and history written), a corrupt
ONNX that fails to load (rolled back, old version serving, server still ready), a candidate that
loads but fails the golden check (rolled back), and requests rejected before the server is touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mtqa_builder.check import check_repository
from mtqa_builder.swap import read_history
from mtqa_builder.swap import repo as swap_repo
from mtqa_builder.swap.control import ModelControl
from mtqa_builder.swap.history import LOCK_FILE
from mtqa_cli.main import main
from mtqa_client import InspectionClient
from mtqa_serving import TritonServer

pytestmark = pytest.mark.server


@pytest.fixture
def served(built_repo: Path, tmp_path: Path) -> Iterator[tuple[Path, TritonServer]]:
    """A private copy of `built_repo` and a running server on it."""
    repo = Path(shutil.copytree(built_repo, tmp_path / "repo"))
    with TritonServer(repo, startup_timeout=180) as server:
        yield repo, server


def _swap(repo: Path, server: TritonServer, *args: str) -> int:
    key = ["--key-file", str(server.key_file)]  # what `mtqa serve` prints
    return main(["swap", "--repo", str(repo), "--url", server.grpc_url, *key, *args])


def _pinned(repo: Path) -> int:
    return swap_repo.pinned_step(swap_repo.read_config(repo, "mtqa_inspect"), "mtqa_net")


def _ready(server: TritonServer) -> list[int]:
    control = ModelControl(server.grpc_url, key=server.control.key)
    try:
        return control.ready_versions("mtqa_net")
    finally:
        control.close()


def _inspect_ok(server: TritonServer, image: np.ndarray) -> None:
    with InspectionClient(server.grpc_url, connect_timeout_s=30) as client:
        result = client.inspect(image)
    assert len(result.defects) == len(client.spec.classes)


def test_swap_to_int8_switches_and_retires(served, sample_images, tmp_path, capsys) -> None:
    repo, server = served
    golden_dir = tmp_path / "golden"
    size = str(swap_repo.read_config(repo, "mtqa_net").input[0].dims[-1])
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(golden_dir),
                "--n",
                "40",
                "--size",
                size,
                "--val-fraction",
                "0.5",
            ]
        )
        == 0
    )
    assert _pinned(repo) == 1
    # 12 images of a barely trained tiny model: one INT8 flip moves a metric 8 points.
    args = (
        "--model-version",
        "int8",
        "--golden-data",
        str(golden_dir),
        "--golden-count",
        "12",
        "--tolerance",
        "25",
    )
    assert _swap(repo, server, *args) == 0, capsys.readouterr()
    assert _pinned(repo) == 2
    assert swap_repo.served_versions(swap_repo.read_config(repo, "mtqa_net")) == [2]
    assert _ready(server) == [2]
    _inspect_ok(server, sample_images[0])
    (record,) = read_history(repo / "mtqa_net")
    assert record["outcome"] == "swapped"
    assert (record["from"]["version"], record["to"]["version"]) == (1, 2)
    assert record["to"]["precision"] == "int8"
    golden = record["checks"]["golden"]
    assert golden["passed"] and golden["golden"]["images"] == 12
    assert golden["golden"]["source"] == str(golden_dir)
    assert golden["agreement"]["presence"] >= 0.75
    assert [s["step"] for s in record["steps"]] == [
        "preflight", "load", "golden_check", "switch", "retire", "persist"
    ]  # fmt: skip
    assert not (repo / "mtqa_net" / LOCK_FILE).exists()
    assert check_repository(repo) == []  # the builder's repository check accepts the result


def test_corrupt_onnx_rolls_back(served, sample_images, tmp_path, capsys) -> None:
    repo, server = served
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes((repo / "mtqa_net" / "1" / "model.onnx").read_bytes()[:4096])
    before = {m: (repo / m / "config.pbtxt").read_text() for m in ("mtqa_net", "mtqa_inspect")}
    assert _swap(repo, server, "--model-version", str(corrupt)) == 1  # the load failed
    out = capsys.readouterr().err
    assert "rolled back" in out and "v1 keeps serving" in out and "Protobuf parsing failed" in out
    assert (repo / "mtqa_net" / "3" / "model.onnx").is_file()  # published, never served
    assert {m: (repo / m / "config.pbtxt").read_text() for m in before} == before
    assert _ready(server) == [1, 2]
    assert server.is_ready(), "a failed preflight must not leave the server not-ready"
    _inspect_ok(server, sample_images[1])
    (record,) = read_history(repo / "mtqa_net")
    assert record["outcome"] == "rolled_back" and "ControlError" in record["error"]


def _scrambled(src: Path, dst: Path) -> Path:
    """A loadable ONNX whose weights are shuffled: same contract, different answers."""
    model = onnx.load(str(src))
    rng = np.random.default_rng(0)
    # Only Conv/Gemm weights and biases: other constants (Resize scales) must stay loadable.
    weights = {i for n in model.graph.node if n.op_type in ("Conv", "Gemm") for i in n.input[1:]}
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if init.name in weights and arr.dtype == np.float32 and arr.size > 1:
            init.CopyFrom(numpy_helper.from_array(rng.permutation(arr.ravel()).reshape(arr.shape)
                                                  * -3.0, init.name))  # fmt: skip
    onnx.save(model, str(dst))
    return dst


def test_golden_check_failure_rolls_back(served, tmp_path, capsys) -> None:
    repo, server = served
    bad = _scrambled(repo / "mtqa_net" / "1" / "model.onnx", tmp_path / "scrambled.onnx")
    assert _swap(repo, server, "--model-version", str(bad), "--precision", "fp32") == 5
    out = capsys.readouterr().err
    assert "golden check failed" in out and "v1 keeps serving" in out
    assert _pinned(repo) == 1
    assert _ready(server) == [1, 2]  # the candidate (v3) was unloaded again
    (record,) = read_history(repo / "mtqa_net")
    assert record["outcome"] == "rolled_back"
    assert record["checks"]["golden"]["failures"]
    assert record["checks"]["manifest"]["gate"].startswith("not gated offline")


def test_rejected_swaps_touch_nothing(served, capsys) -> None:
    repo, server = served
    # a version that cannot be had is an input error (3); a closed port, no server (4)
    assert _swap(repo, server, "--model-version", "9") == 3
    assert "no version 9" in capsys.readouterr().err
    assert _swap(repo, server, "--model-version", "bf16") == 3
    assert "not a version number" in capsys.readouterr().err
    assert _swap(repo, server, "--model-version", "1") == 3
    assert "already the serving version" in capsys.readouterr().err
    (repo / "mtqa_net" / "2" / "labels.txt").write_text("tampered\n")
    assert _swap(repo, server, "--model-version", "2") == 3
    assert "differs from its manifest" in capsys.readouterr().err
    (repo / "mtqa_net" / LOCK_FILE).write_text("pid 1")
    assert _swap(repo, server, "--model-version", "int8") == 1
    assert "another swap is running" in capsys.readouterr().err
    (repo / "mtqa_net" / LOCK_FILE).unlink()
    argv = ["swap", "--repo", str(repo), "--url", "127.0.0.1:1", "--model-version", "2"]
    assert main(argv) == 4
    assert "failed on 127.0.0.1:1" in capsys.readouterr().err
    assert [r["outcome"] for r in read_history(repo / "mtqa_net")] == ["rejected"] * 5
    assert _pinned(repo) == 1 and _ready(server) == [1, 2]
