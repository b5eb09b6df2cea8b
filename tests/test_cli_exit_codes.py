"""Exit codes and names of the `mtqa` command: five user mistakes through the real console script,
the typed errors' codes, one name per idea across subcommands, and the old names still parsed."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

from mtqa_cli import exits, helptext
from mtqa_cli.main import build_parser, main

MTQA = shutil.which("mtqa", path=str(Path(sys.executable).parent)) or "mtqa"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder files cannot be created in: permission bits, or /sys where root ignores them."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked
    from mtqa_cli.preconditions import unwritable

    if unwritable(Path("/sys")) is None:
        pytest.skip("no folder this root user cannot write in")
    return Path("/sys")


def _mistakes(tmp_path: Path) -> list[tuple[str, list[str], int, str]]:
    """(mistake, argv, expected code, words of the stderr line)."""
    run = tmp_path / "run"  # a folder: what is checked first is the mistake under test
    run.mkdir()
    image = tmp_path / "part.png"
    Image.new("L", (32, 32), 128).save(image)
    port = _closed_port()
    read_only = _read_only_folder(tmp_path)
    return [
        (
            "missing run dir",
            ["evaluate", "--run", str(tmp_path / "no_run"), "--out", str(tmp_path / "e")],
            exits.INPUT,
            "no such run directory",
        ),
        (
            "wrong data path",
            ["train", "--data", str(tmp_path / "no_data"), "--out", str(tmp_path / "r")],
            exits.INPUT,
            "no such data",
        ),
        (
            "unknown precision",
            ["build", "--run", str(run), "--precision", "fp32,fp8", "--repo", str(tmp_path / "m")],
            exits.INPUT,
            "unknown precision fp8; choose from fp32",
        ),
        (
            "closed port",
            ["inspect", str(image), "--url", f"127.0.0.1:{port}"],
            exits.UNAVAILABLE,
            "connection refused",
        ),
        (
            "read-only output",
            ["build", "--run", str(run), "--repo", str(read_only / "repo")],
            exits.INPUT,
            "cannot write in",
        ),
    ]


def test_five_mistakes_fail_in_a_second_with_one_line_and_a_documented_code(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    documented = {
        int(line.split()[0]) for line in helptext.EXIT_CODES.splitlines()[2:] if line[:3].strip()
    }
    for mistake, argv, code, words in _mistakes(tmp_path):
        start = time.monotonic()
        done = subprocess.run(
            [MTQA, *argv], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )
        elapsed = time.monotonic() - start
        assert done.returncode == code, (mistake, done.stderr)
        assert code in documented and code != exits.USAGE
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"mtqa {argv[0]}: error: "), (mistake, lines)
        assert words in lines[0], (mistake, lines[0])
        assert done.stdout == "", mistake
        assert elapsed < 2.0, f"{mistake}: {elapsed:.2f} s"
    assert not (tmp_path / "m").exists() and not (tmp_path / "r").exists()  # nothing started


def test_every_code_is_listed_in_mtqa_help():
    text = build_parser().format_help()
    for name in ("OK", "FAILED", "USAGE", "INPUT", "UNAVAILABLE", "CHECK_FAILED", "INTERRUPTED"):
        code = getattr(exits, name)
        assert any(line.split()[:1] == [str(code)] for line in text.splitlines()), name


def test_typed_errors_map_to_their_codes():
    from mtqa_builder.errors import GateError, TensorRTUnavailableError
    from mtqa_builder.swap import GoldenCheckError, ServerUnreachableError, SwapFailedError
    from mtqa_client import BatchError, InvalidInputError, ServerUnavailableError
    from mtqa_serving import SecurityConfigError

    assert exits.code_for(ServerUnavailableError("refused")) == exits.UNAVAILABLE
    assert exits.code_for(ServerUnreachableError("refused")) == exits.UNAVAILABLE
    assert exits.code_for(InvalidInputError("not an image")) == exits.INPUT
    assert exits.code_for(SecurityConfigError("no key file")) == exits.INPUT
    assert exits.code_for(FileNotFoundError("x")) == exits.INPUT
    assert exits.code_for(GateError("int8 lost 3 points")) == exits.CHECK_FAILED
    assert exits.code_for(TensorRTUnavailableError("no TensorRT")) == exits.FAILED
    assert exits.code_for(RuntimeError("a bug")) == exits.FAILED
    try:  # a rolled-back swap keeps the code of what made it fail
        try:
            raise GoldenCheckError("golden check failed")
        except GoldenCheckError as cause:
            raise SwapFailedError("rolled back", {}) from cause
    except SwapFailedError as exc:
        assert exits.code_for(exc) == exits.CHECK_FAILED
    batch = BatchError([], [ServerUnavailableError("down"), InvalidInputError("bad")])
    assert exits.code_for(batch) == exits.UNAVAILABLE  # the first failure's


def test_every_error_the_code_table_names_exists():
    """CODES names classes by "module.Class" (so `mtqa --help` imports no layer); a renamed or
    moved error would silently fall back to 1 — each name must import as an exception class."""
    import importlib

    for dotted in exits.CODES:
        module, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        assert isinstance(cls, type) and issubclass(cls, BaseException), dotted
        assert f"{cls.__module__}.{cls.__qualname__}" == dotted, dotted


# Old spelling -> the name every command now uses for the idea (mtqa_cli.renamed).
RENAMED = {
    "--checkpoint": "--run",
    "--val-data": "--gate-data",
    "--val-limit": "--gate-limit",
    "--calib": "--calib-data",
    "--golden": "--golden-data",
    "--to": "--model-version",
    "--val-frac": "--val-fraction",
    "--test-frac": "--test-fraction",
}


def _parsers():
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())


def test_every_subcommand_follows_one_name_per_idea():
    for parser in _parsers():
        text = parser.format_help()
        for old in RENAMED:
            assert f"{old} " not in text and f"{old}," not in text, (parser.prog, old)
        for action in parser._actions:
            shown = [s for s in action.option_strings if s not in getattr(action, "old_names", ())]
            assert not set(shown) & set(RENAMED), (parser.prog, shown)
            if "data" in action.dest and action.option_strings and action.dest != "data_command":
                # every image source names its values the same way (synth | neu_seg | PATH)
                help_text = action.help or ""
                assert "neu_seg | PATH" in help_text, (parser.prog, action.dest)


@pytest.mark.parametrize(
    "argv, dest, value",
    [
        (["build", "--checkpoint", "runs/x"], "run", Path("runs/x")),
        (["build", "--run", "r", "--calib", "synth"], "calib_data", "synth"),
        (["build", "--run", "r", "--val-data", "neu_seg"], "gate_data", "neu_seg"),
        (["build", "--run", "r", "--val-limit", "8"], "gate_limit", 8),
        (["evaluate", "--checkpoint", "runs/x", "--out", "o"], "run", Path("runs/x")),
        (["bench", "--url", "h:1", "--checkpoint", "runs/x", "--out", "o"], "run", Path("runs/x")),
        (["swap", "--to", "int8"], "model_version", "int8"),
        (["swap", "--model-version", "2", "--golden", "d"], "golden_data", "d"),
        (["data", "synth", "--out", "o", "--n", "3", "--val-frac", "0.2"], "val_fraction", 0.2),
    ],
)
def test_old_names_still_parse_with_a_deprecation_note(argv, dest, value, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    old = next(a for a in argv if a in RENAMED)
    err = capsys.readouterr().err
    assert f"warning: {old} is deprecated, use {RENAMED[old]}" in err
    assert len(err.strip().splitlines()) == 1


def test_a_required_option_is_required_under_either_name(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["swap"])
    assert exited.value.code == exits.USAGE
    assert "--model-version" in capsys.readouterr().err


def test_the_sdk_keeps_version_as_a_deprecated_keyword():
    from mtqa_client import InspectionClient, ServerUnavailableError
    from mtqa_client.renamed import renamed_keyword

    url = f"127.0.0.1:{_closed_port()}"
    with (
        pytest.warns(DeprecationWarning, match="version= is deprecated, use model_version="),
        pytest.raises(ServerUnavailableError),
    ):
        InspectionClient(url, version=2, connect_timeout_s=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keyword warns about nothing
        with pytest.raises(ServerUnavailableError):
            InspectionClient(url, model_version=2, connect_timeout_s=1)
    with pytest.raises(TypeError, match="pass model_version= only"):
        renamed_keyword("version", 2, "model_version", 3)


def test_main_returns_the_code_of_a_typed_error_a_command_let_through(tmp_path, capsys):
    key_file = tmp_path / "no_key"  # swap reads it before anything else: an input error
    argv = ["swap", "--repo", str(tmp_path), "--model-version", "2", "--key-file", str(key_file)]
    assert main(argv) == exits.INPUT
    assert capsys.readouterr().err.startswith("mtqa swap: error: ")
