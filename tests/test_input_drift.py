"""Input drift: the preprocess model scores each decoded image against the build's fingerprint.

The fingerprint is taken by the builder from its validation images (drift_reference.json in the
mtqa_preprocess version). A fresh Triton serves the built repository; after fresh synthetic
images from the training distribution the drift gauge stays near its chance level; after the
same images made brighter, resized as by another camera, or with more contrast at the same mean
brightness it rises well above the alert threshold of docker/prometheus/alerts.yml, and so does
the share of images outside the reference's range; the group scores name what moved (brightness,
size, contrast or grey-level bins).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mtqa_client import InspectionClient
from mtqa_serving import TritonServer

DRIFT_PY = Path(__file__).resolve().parents[1] / "builder/mtqa_builder/triton_models/drift.py"
ALERT_THRESHOLD = 0.5  # MtqaInputDrift in docker/prometheus/alerts.yml


def _drift():
    spec = importlib.util.spec_from_file_location("_drift_under_test", DRIFT_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _synthetic(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 1.0, (n, 3, 16, 16)).astype(np.float32)
    return images + rng.normal(0.0, 0.5, (n, 3, 1, 1)).astype(np.float32)  # per-image colour


def test_shift_reads_a_moved_mean_in_reference_deviations() -> None:
    drift = _drift()
    images, sizes = _synthetic(400, 0), np.full((400, 2), 16)
    data = drift.fingerprint(images[:200], sizes[:200])
    assert data["features"] == list(drift.FEATURES) and data["images"] == 200
    reference = drift.Reference.from_dict(json.loads(json.dumps(data)))
    same = drift.image_stats(images[200:], sizes[200:], reference.edges)
    brighter = drift.image_stats(images[200:] + 0.5, sizes[200:], reference.edges)
    assert reference.shift(same) < 0.3
    assert reference.shift(brighter) > 0.8  # +0.5 on a channel-mean spread of ~0.5
    assert reference.outside(brighter).mean() > reference.outside(same).mean()
    window = drift.DriftWindow(reference, size=50)
    window.add(same)
    assert window.add(brighter[:50]) == pytest.approx(reference.shift(brighter[:50]))
    with pytest.raises(ValueError, match=">= 2 images"):
        drift.fingerprint(images[:1], sizes[:1])


def test_each_statistic_scores_on_the_same_scale() -> None:
    """Octile bins hold 1/8 of the reference's pixels; a size change reads in RESOLUTION steps
    where the reference's sizes do not vary; the same images at the same size read low."""
    drift = _drift()
    images, sizes = _synthetic(400, 1), np.full((400, 2), 16)
    reference = drift.Reference.from_dict(drift.fingerprint(images[:200], sizes[:200]))
    stats = drift.image_stats(images[:200], sizes[:200], reference.edges)
    hist = stats[:, 4 : 4 + drift.BINS].mean(axis=0)
    assert hist == pytest.approx(np.full(drift.BINS, 1 / drift.BINS), abs=0.01)
    wider = drift.image_stats(images[200:], np.tile([16, 20], (200, 1)), reference.edges)
    shifts = dict(zip(reference.features, reference.shifts(wider), strict=True))
    assert shifts["log_width"] == pytest.approx(np.log(20 / 16) / 0.05)
    assert shifts["log_height"] == pytest.approx(0.0)
    assert reference.outside(wider).all()
    same = drift.image_stats(images[200:], sizes[200:], reference.edges)
    assert reference.shift(same) < 0.3 and reference.outside(same).mean() < 0.2
    # Twice the contrast at the same mean: the colour means stay, contrast and bins move.
    mean = images[200:].mean(axis=(1, 2, 3), keepdims=True)
    sharper = drift.image_stats(2 * (images[200:] - mean) + mean, sizes[200:], reference.edges)
    shifts = dict(zip(reference.features, reference.shifts(sharper), strict=True))
    assert max(shifts[f] for f in ("mean_r", "mean_g", "mean_b")) < 0.3
    assert shifts["contrast"] > 3 and shifts["hist_0"] > 1 and shifts["hist_7"] > 1


def test_each_group_scores_the_largest_of_its_statistics() -> None:
    """The group scores split the drift score by what moved: their largest is the score. A
    brighter set moves the bins too (a tone change), never the sizes; a resized one the sizes."""
    drift = _drift()
    images, sizes = _synthetic(400, 3), np.full((400, 2), 16)
    reference = drift.Reference.from_dict(drift.fingerprint(images[:200], sizes[:200]))
    assert [name for name, _ in reference.groups] == list(drift.GROUPS)
    seen = {}
    for kind, moved in (
        ("brightness", drift.image_stats(images[200:] + 0.5, sizes[200:], reference.edges)),
        ("size", drift.image_stats(images[200:], np.tile([16, 20], (200, 1)), reference.edges)),
    ):
        shifts = reference.shifts(moved)
        seen[kind] = groups = reference.group_shifts(shifts)
        by_feature = dict(zip(reference.features, shifts, strict=True))
        assert groups == {
            name: max(by_feature[f] for f in members) for name, members in drift.GROUPS.items()
        }
        assert max(groups.values()) == shifts.max()
        window = drift.DriftWindow(reference, size=200)
        assert window.by_group == dict.fromkeys(drift.GROUPS, 0.0)
        assert window.add(moved) == pytest.approx(max(window.by_group.values()))
        assert window.by_group == pytest.approx(groups)
    brighter, resized = seen["brightness"], seen["size"]
    assert brighter["brightness"] > 0.8 and brighter["contrast"] < 0.3 and brighter["size"] < 1e-9
    assert max(resized, key=resized.get) == "size" and resized["brightness"] < 0.3


def test_a_reference_written_before_the_bins_scores_what_it_holds() -> None:
    """A drift_reference.json of four statistics (no bins, no sizes, no edges) still serves."""
    drift = _drift()
    images, sizes = _synthetic(400, 2), np.full((400, 2), 16)
    full = drift.fingerprint(images[:200], sizes[:200])
    old = {key: full[key][:4] for key in ("features", "mean", "std", "low", "high")}
    reference = drift.Reference.from_dict({**old, "images": 200})
    assert reference.features == ["mean_r", "mean_g", "mean_b", "contrast"]
    assert [name for name, _ in reference.groups] == ["brightness", "contrast"]
    resized = drift.image_stats(images[200:], np.full((200, 2), 64), reference.edges)
    assert reference.shift(resized) < 0.3  # sizes are not in it: not scored
    assert reference.shift(drift.image_stats(images[200:] + 0.5, sizes[200:])) > 0.8
    window = drift.DriftWindow(reference)
    assert window.add(resized) == pytest.approx(reference.shift(resized[-drift.WINDOW :]))


def test_the_build_fingerprints_the_sizes_a_server_receives(synth_dataset_dir: Path) -> None:
    """File images are sized from their headers (raw() may draft-reduce), synthetic ones from the
    generator; the build's reference holds them before the resize to the model input."""
    from mtqa.data.bundle import build_datasets
    from mtqa_builder.pipeline import drift_reference

    files = build_datasets(str(synth_dataset_dir), 24, augment=False)  # 32 px files
    assert [files.val.orig_size(i) for i in range(len(files.val))] == [(32, 32)] * len(files.val)
    reference = drift_reference(files.val)
    at = {name: i for i, name in enumerate(reference["features"])}
    assert reference["mean"][at["log_width"]] == pytest.approx(np.log(32))
    assert reference["std"][at["log_aspect"]] == 0.0
    synth = build_datasets("synth", 24, augment=False, synth_sizes=(4, 4, 4)).val
    assert synth.orig_size(1) == synth.raw(1)[1].shape[:2]


@pytest.fixture(scope="module")
def drift_server(
    built_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    """A fresh server (no earlier test's images in the drift windows) that scores every request
    (`drift_interval_ms: "0"`; served repositories score at most one every 250 ms an instance),
    on one preprocess instance: instances keep their own windows but export the same series, so
    with two each would hold half of a set and half of the one before."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repo = shutil.copytree(built_repo, tmp_path_factory.mktemp("drift") / "model_repository")
    path = repo / "mtqa_preprocess" / "config.pbtxt"
    config = text_format.Parse(path.read_text(), mc.ModelConfig())
    config.parameters["drift_interval_ms"].string_value = "0"
    config.instance_group[0].count = 1
    path.write_text(text_format.MessageToString(config))
    server = TritonServer(repo, startup_timeout=180)
    server.start()
    yield server
    server.stop()


def _scored(server: TritonServer, count: int, timeout_s: float = 15) -> None:
    """Wait for the preprocess model's next flush (1 s) to report `count` images scored."""
    deadline = time.monotonic() + timeout_s
    while _series(server, "mtqa_input_images_scored_total") < count:
        assert time.monotonic() < deadline, "drift counters did not reach Triton"
        time.sleep(0.2)


def _series(server: TritonServer, name: str, **labels: str) -> float:
    """The one sample of `name` (with `labels`) on Triton's metrics port."""
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    values = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(w in line for w in wanted)
    ]
    assert len(values) == 1, (name, labels, values)
    return values[0]


def _contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """`image` with its spread around its own mean times `factor` (the mean kept)."""
    mean = image.mean()
    return np.clip((image.astype(np.float32) - mean) * factor + mean, 0, 255).astype(np.uint8)


@pytest.mark.server
def test_drift_score_rises_on_shifted_images_only(drift_server: TritonServer) -> None:
    from PIL import Image

    from mtqa.data.synth import SynthConfig, SynthGenerator

    pre = drift_server.repo / "mtqa_preprocess"
    version = max((p for p in pre.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    reference = json.loads((version / "drift_reference.json").read_text())
    assert reference["images"] >= 64 and "log_width" in reference["features"]
    gen = SynthGenerator(SynthConfig(size=128, max_defects=3), seed=5)  # not the val stream
    originals = [gen.generate(0, i).image for i in range(128)]
    sets = {
        "original": originals,
        "brighter": [np.clip(o.astype(np.int16) + 40, 0, 255).astype(np.uint8) for o in originals],
        # another camera: the same scenes at 200 x 150 px (the model input is resized anyway)
        "camera": [np.asarray(Image.fromarray(o).resize((200, 150))) for o in originals],
        "contrast": [_contrast(o, 1.6) for o in originals],
    }
    brightness = [np.mean([i.mean() for i in images]) for images in sets.values()]
    assert abs(brightness[3] - brightness[0]) < 2  # the same mean brightness, grey levels
    scores, groups, outside, total = {}, {}, {}, 0.0
    with InspectionClient(drift_server.grpc_url) as client:
        for number, (name, images) in enumerate(sets.items(), start=1):
            for start in range(0, len(images), 16):
                client.inspect(images[start : start + 16])
            _scored(drift_server, 128 * number)  # each set fills the 128-image window
            scores[name] = _series(drift_server, "mtqa_input_drift_score")
            groups[name] = {
                group: _series(drift_server, "mtqa_input_drift_group_score", group=group)
                for group in ("brightness", "contrast", "histogram", "size")
            }
            counted = _series(drift_server, "mtqa_input_outside_reference_total")
            outside[name], total = (counted - total) / 128, counted
    assert _series(drift_server, "mtqa_input_images_scored_total") == 128 * len(sets)
    # each instance's window is its own series (two instances must not overwrite one gauge)
    assert _series(drift_server, "mtqa_input_drift_score", model_instance="mtqa_preprocess_0_0")
    assert scores["original"] < ALERT_THRESHOLD / 2, scores
    assert outside["original"] < 0.2, outside
    for name in ("brighter", "camera", "contrast"):
        assert scores[name] > ALERT_THRESHOLD and scores[name] > 3 * scores["original"], scores
        assert outside[name] > 2 * outside["original"] and outside[name] > 0.3, outside
    # The group scores say what drifted; their largest is the score (the same flush).
    for name, by_group in groups.items():
        assert max(by_group.values()) == pytest.approx(scores[name]), groups
    assert max(groups["original"].values()) < ALERT_THRESHOLD / 2, groups
    # Lighting: brightness (and the bins, which any tone change moves), never size or contrast.
    brighter, camera, contrast = groups["brighter"], groups["camera"], groups["contrast"]
    assert brighter["brightness"] > ALERT_THRESHOLD, groups
    assert max(brighter["contrast"], brighter["size"]) < ALERT_THRESHOLD / 2, groups
    # Camera swap: size, at the same brightness.
    assert max(camera, key=camera.get) == "size", groups
    assert camera["brightness"] < ALERT_THRESHOLD / 2, groups
    # Tone curve: contrast or the bins, at the same brightness and size.
    assert max(contrast, key=contrast.get) in ("contrast", "histogram"), groups
    assert max(contrast["brightness"], contrast["size"]) < ALERT_THRESHOLD, groups
