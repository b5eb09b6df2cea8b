"""The `mtqa` command's surface: optional installs named when missing, help, errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtqa_cli import exits, extras
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


def _parsers():
    """(prog, parser) for every command and sub-action of `mtqa`."""
    import argparse

    from mtqa_cli.main import build_parser

    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        yield parser.prog, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())


def test_every_option_has_help_and_states_its_default_or_that_it_is_required():
    undocumented, silent = [], []
    for prog, parser in _parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.dest in ("help", "version") or action.nargs == "A...":
                continue
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip():
                undocumented.append(f"{prog} {name}")
            elif action.option_strings and action.nargs != 0:  # flags default to off
                text = formatter._get_help_string(action).lower()
                if "default" not in text and "required" not in text:
                    silent.append(f"{prog} {name}")
    assert undocumented == [], f"options without help: {undocumented}"
    assert silent == [], f"options that state neither a default nor 'required': {silent}"


def test_every_command_ends_its_help_with_an_example():
    for prog, parser in _parsers():
        if prog == "mtqa":
            assert "exit codes:" in parser.format_help()
            continue
        command = prog.split()[1]
        assert parser.epilog and parser.epilog.startswith("example:"), prog
        assert f"mtqa {command}" in parser.epilog, prog
        assert "example:" in parser.format_help(), prog


@pytest.mark.parametrize(
    "argv, words",
    [
        (["plan", "--data", "{tmp}/no_such_dataset"], "no such data"),
        (["data", "info", "{tmp}/no_such_dataset"], "does not exist"),
        (["evaluate", "--run", "{tmp}/no_run", "--out", "{tmp}/eval"], "no_run"),
        (["repo", "check", "{tmp}/no_repo"], "no_repo"),
    ],
)
def test_input_errors_exit_3_with_one_line_on_stderr(tmp_path, capsys, argv, words):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    captured = capsys.readouterr()
    assert code == exits.INPUT, captured
    assert words in captured.err
    assert captured.out == ""
    assert captured.err.startswith(f"mtqa {argv[0]}: error: ")
    assert len(captured.err.strip().splitlines()) == 1


def test_a_repository_with_problems_fails_its_check_with_5(tmp_path, capsys):
    (tmp_path / "mtqa_net").mkdir()  # a folder, but no repository `mtqa build` wrote
    assert main(["repo", "check", str(tmp_path)]) == exits.CHECK_FAILED
    captured = capsys.readouterr()
    assert captured.out.startswith("problem: ")  # the problems are the check's output
    assert captured.err.startswith(f"mtqa repo: error: {tmp_path}: ")
    assert "problem(s)" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_usage_errors_exit_2_on_stderr(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["inspect", "image.png", "--no-such-option"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    argv = ["swap", "--repo", str(tmp_path), "--model-version", "2", "--golden-count", "0"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("mtqa swap: error: --golden-count")


def test_inspect_against_a_closed_port_fails_at_once_naming_the_endpoint(tmp_path, capsys):
    import socket
    import time

    from PIL import Image

    image = tmp_path / "part.png"
    Image.new("L", (32, 32), 128).save(image)
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"127.0.0.1:{probe.getsockname()[1]}"
    start = time.monotonic()
    assert main(["inspect", str(image), "--url", url, "--json"]) == exits.UNAVAILABLE
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    assert elapsed < 2.0, f"a refused connection took {elapsed:.1f} s"
    assert captured.out == ""  # --json output stays JSON: nothing on stdout when nothing ran
    assert "ServerUnavailableError" in captured.err and "connection refused" in captured.err
    assert f"endpoint={url}" in captured.err and "status=UNAVAILABLE" in captured.err


def test_build_into_an_unwritable_folder_fails_before_any_export(tmp_path, capsys):
    import os
    import time

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = [("--repo", blocker / "repo", "is not a folder")]
    if os.geteuid() != 0:  # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        cases.append(("--repo", locked / "repo", "cannot write in"))
    cases.append(("--work-dir", blocker / "work", "is not a folder"))
    run = tmp_path / "run"  # a folder: the run is read only after the outputs are checked
    run.mkdir()
    for flag, folder, words in cases:
        argv = ["build", "--run", str(run), flag, str(folder)]
        if flag != "--repo":
            argv += ["--repo", str(tmp_path / "repo")]
        start = time.monotonic()
        assert main(argv) == exits.INPUT
        assert time.monotonic() - start < 2.0  # checked before the checkpoint is even read
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"mtqa build: error: {flag} {folder}: ")
        assert words in captured.err and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "repo").exists()
