"""The `mtqa` command's surface: optional installs named when missing, help, errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from mtqa_cli import extras
from mtqa_cli.main import main


def test_a_command_whose_extra_is_missing_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(extras.EXTRA_MODULES, "bench", ("locust", "mtqa_no_such_module"))
    out = tmp_path / "report"
    assert main(["bench", "--url", "127.0.0.1:1", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "mtqa bench: error:" in captured.err and "mtqa_no_such_module" in captured.err
    assert "pip install 'mtqa[bench]'" in captured.err
    assert not out.exists()


def test_serve_without_a_tritonserver_names_the_serve_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(extras.EXTRA_MODULES, "serve", ("mtqa_no_such_bundle",))
    monkeypatch.delenv("MTQA_TRITONSERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no tritonserver on PATH either
    assert main(["serve", "--repo", str(tmp_path)]) == 1
    assert "pip install 'mtqa[serve]'" in capsys.readouterr().err


@pytest.mark.parametrize("extra", sorted(extras.EXTRA_MODULES))
def test_every_extra_is_declared_in_pyproject(extra):
    import tomllib  # Python >= 3.11, as the test environment

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert extra in project["project"]["optional-dependencies"]
