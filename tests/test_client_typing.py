"""The SDK ships `py.typed`: a user's code type-checks strictly against it, without torch."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).parent / "examples" / "sdk_typed.py"


def test_the_client_distribution_needs_no_torch_and_is_typed():
    import tomllib  # Python >= 3.11, as the test environment

    meta = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"]).lower()
    assert "torch" not in deps and "mtqa" not in deps.replace("mtqa-client", "")
    assert (ROOT / "client" / "mtqa_client" / "py.typed").is_file()


def _mypy(path: Path) -> tuple[int, str]:
    api = pytest.importorskip("mypy.api", reason="mypy is in the dev extra")
    # errors inside the SDK's own modules are its tests' business; the user's file must be clean
    out, err, status = api.run(
        ["--strict", "--follow-imports=silent", "--no-incremental", str(path)]
    )
    return status, out + err


def test_an_sdk_example_passes_mypy_strict(monkeypatch, tmp_path):
    monkeypatch.setenv("MYPYPATH", str(ROOT / "client"))  # the source, as an installed wheel has
    status, report = _mypy(EXAMPLE)
    assert status == 0, report
    # the checker catches a user's mistake: one image gives one result, not a list
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from mtqa_client import InspectionClient\n\n\n"
        "def f() -> int:\n"
        "    with InspectionClient('localhost:8001') as client:\n"
        "        return len(client.inspect('part.png'))\n"
    )
    status, report = _mypy(wrong)
    assert status == 1 and "InspectionResult" in report, report
