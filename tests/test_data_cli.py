"""`mtqa data synth` writes a loadable dataset; `mtqa data info` reports it; errors exit 2."""

from __future__ import annotations

import json

from mtqa.data import build_datasets
from mtqa_cli.main import main


def test_synth_cli_writes_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--n",
            "10",
            "--size",
            "24",
            "--seed",
            "5",
            "--val-fraction",
            "0.2",
            "--test-fraction",
            "0.2",
        ]
    )
    assert rc == 0
    assert json.loads((out / "classes.json").read_text())["classes"] == [
        "scratch",
        "crack",
        "stain",
        "deformation",
    ]
    assert len(list((out / "images" / "train").glob("*.png"))) == 6
    assert len(list((out / "masks" / "test").glob("*.png"))) == 2
    bundle = build_datasets(str(out), 24, augment=False)
    assert bundle.source["sizes"] == {"train": 6, "val": 2, "test": 2}
    assert bundle.train[0]["image"].shape == (3, 24, 24)
    capsys.readouterr()
    assert main(["data", "info", str(out), "--image-size", "24", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == bundle.classes
    assert set(report["splits"]) == {"train", "val", "test"}
    assert len(report["splits"]["train"]["presence_rate"]) == 4


def test_synth_cli_refuses_to_overwrite_and_info_reports_errors(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "synth", "--out", str(out), "--n", "3", "--size", "16"]) == 0
    assert main(["data", "synth", "--out", str(out), "--n", "3", "--size", "16"]) == 3
    assert "already holds a dataset" in capsys.readouterr().err
    assert main(["data", "info", str(tmp_path / "missing")]) == 3  # an input error
    assert "does not exist" in capsys.readouterr().err


def test_info_table_for_synth(capsys):
    assert main(["data", "info", "synth", "--image-size", "32", "--max-items", "8"]) == 0
    text = capsys.readouterr().out
    assert "classes: scratch, crack, stain, deformation" in text and "presence" in text
