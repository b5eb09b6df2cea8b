"""`mtqa predict` (ONNX Runtime in process) answers as `mtqa inspect` through the served ensemble.

The same images go to a real Triton serving a built repository and to `OfflinePredictor` /
`mtqa predict` on that repository's files: decisions, grades, boxes and masks must be equal,
probabilities within 1e-4, the `--json` documents equal in structure and the overlay PNGs equal,
for the squash build (`built_repo`, fp32 + int8) and the letterboxed one (`letterbox_repo`). A
file that is not an image gets the same per-item error from both while the others are answered.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa_client import InspectionClient

pytestmark = pytest.mark.server

TOL = 1e-4
BUILDS = {
    "squash": ("triton_server", "built_repo"),
    "letterbox": ("letterbox_server", "letterbox_repo"),
}


@pytest.fixture(scope="module")
def image_paths(sample_images, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The six sample images (RGB and grey, square and not; one as JPEG) and a text file."""
    folder = tmp_path_factory.mktemp("predict_images")
    paths = []
    for i, image in enumerate(sample_images):
        path = folder / (f"part{i}.jpg" if i == 1 else f"part{i}.png")
        Image.fromarray(image).save(path)
        paths.append(path)
    notes = folder / "notes.png"
    notes.write_text("not an image")
    paths.insert(2, notes)
    return paths


@pytest.fixture(scope="module", params=sorted(BUILDS))
def build(request: pytest.FixtureRequest) -> tuple:
    """(server, repository) of one build: the squash one, then the letterboxed one."""
    server_name, repo_name = BUILDS[request.param]
    return request.getfixturevalue(server_name), request.getfixturevalue(repo_name)


def _same_structure(a: object, b: object, where: str = "") -> None:
    """Equal keys and list lengths all the way down; values are compared by the callers."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, where
    if where.endswith(".server"):  # the server's own timings: none offline
        return
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _same_structure(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_structure(x, y, f"{where}[{i}]")


def test_predict_equals_inspect_through_the_server(build, image_paths) -> None:
    from mtqa_builder.offline import OfflinePredictor

    server, repo = build
    with InspectionClient(server.grpc_url, timeout_s=120, connect_timeout_s=120) as client:
        served = client.inspect_many(list(map(str, image_paths)))
    with OfflinePredictor(repo, threads=1) as predictor:
        local = predictor.predict(list(map(str, image_paths)))
    expected = [p.name != "notes.png" for p in image_paths]
    assert [r.ok for r in local] == [r.ok for r in served] == expected
    assert sum(len(r.regions) for r in served if r.ok) > 0  # boxes and masks are compared
    for mine, theirs in zip(local, served, strict=True):
        if not theirs.ok:
            assert type(mine.error) is type(theirs.error)
            assert mine.error.message == theirs.error.message
            continue
        assert (mine.model_name, mine.model_version) == (theirs.model_name, theirs.model_version)
        assert mine.image_size == theirs.image_size
        assert [d.decision for d in mine.defects] == [d.decision for d in theirs.defects]
        assert [d.threshold for d in mine.defects] == [d.threshold for d in theirs.defects]
        np.testing.assert_allclose(
            [d.probability for d in mine.defects], [d.probability for d in theirs.defects], atol=TOL
        )
        assert mine.grade.name == theirs.grade.name
        np.testing.assert_allclose(
            list(mine.grade.probabilities.values()),
            list(theirs.grade.probabilities.values()),
            atol=TOL,
        )
        assert [(r.class_name, r.box) for r in mine.regions] == [
            (r.class_name, r.box) for r in theirs.regions
        ]
        np.testing.assert_allclose(
            [r.score for r in mine.regions], [r.score for r in theirs.regions], atol=TOL
        )
        for d in mine.defects:
            assert np.array_equal(mine.mask(d.name), theirs.mask(d.name)), (mine.source, d.name)


def test_predict_cli_prints_inspect_json_and_overlays(build, image_paths, tmp_path, capsys) -> None:
    from mtqa_cli.main import main

    server, repo = build
    args = [*map(str, image_paths), "--json"]
    # one file is not an image: an input error (exit 3) for both, the others answered
    assert main(["predict", *args, "--repo", str(repo), "--overlays", str(tmp_path / "p")]) == 3
    predicted = capsys.readouterr()
    assert (
        main(["inspect", *args, "--url", server.grpc_url, "--overlays", str(tmp_path / "i")]) == 3
    )
    inspected = capsys.readouterr()
    mine, theirs = json.loads(predicted.out), json.loads(inspected.out)
    _same_structure(mine, theirs)
    for a, b in zip(mine, theirs, strict=True):  # timings differ; the rest equal (probs to TOL)
        if "error" in b:
            assert a == b
            continue
        assert [d["decision"] for d in a["defects"]] == [d["decision"] for d in b["defects"]]
        assert a["grade"]["name"] == b["grade"]["name"] and a["model"] == b["model"]
        assert [r["box"] for r in a["regions"]] == [r["box"] for r in b["regions"]]
    # the bad file: one stderr line each, named by the command that ran
    assert predicted.err.count("mtqa predict: error:") == 1 and "notes.png" in predicted.err
    said = [line for line in inspected.err.splitlines() if line.startswith("mtqa ")]
    assert [line.replace("mtqa inspect", "mtqa predict") for line in said] == (
        predicted.err.splitlines()
    )
    written = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "i").iterdir()) and len(written) == 6
    for name in written:
        a = np.asarray(Image.open(tmp_path / "p" / name))
        b = np.asarray(Image.open(tmp_path / "i" / name))
        assert np.array_equal(a, b), name


def test_predict_picks_a_variant_and_fails_in_one_line(built_repo, image_paths, capsys) -> None:
    from mtqa_cli.main import main

    good = str(image_paths[0])
    assert main(["predict", good, "--repo", str(built_repo), "--precision", "int8"]) == 0
    assert "mtqa inspection" in capsys.readouterr().out
    for argv, words in (
        (["--repo", str(built_repo), "--precision", "fp16"], "no fp16 variant"),
        (["--repo", str(built_repo.parent / "absent")], "no model repository"),
    ):
        assert main(["predict", good, *argv]) == 3  # an input error
        err = capsys.readouterr().err
        assert err.startswith("mtqa predict: error: OfflineError") and words in err
        assert err.count("\n") == 1
