"""Input drift: the preprocess model scores each decoded image against the build's fingerprint.

The fingerprint is taken by the builder from its validation images (drift_reference.json in the
mtqa_preprocess version). A fresh Triton serves the built repository; after fresh synthetic
images from the training distribution the drift gauge stays near its chance level, after the same
images made brighter it rises well above the alert threshold of docker/prometheus/alerts.yml.
"""

from __future__ import annotations

import importlib.util
import json
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


def test_shift_reads_a_moved_mean_in_reference_deviations() -> None:
    drift = _drift()
    rng = np.random.default_rng(0)
    images = rng.normal(0.0, 1.0, (400, 3, 16, 16)).astype(np.float32)
    images += rng.normal(0.0, 0.5, (400, 3, 1, 1)).astype(np.float32)  # per-image colour
    reference = drift.fingerprint(drift.image_stats(images[:200]))
    assert reference["features"] == list(drift.FEATURES) and reference["images"] == 200
    same = drift.image_stats(images[200:])
    brighter = drift.image_stats(images[200:] + 0.5)
    assert drift.shift(same, reference) < 0.3
    assert drift.shift(brighter, reference) > 0.8  # +0.5 on a channel-mean spread of ~0.5
    assert drift.outside(brighter, reference).mean() > drift.outside(same, reference).mean()
    window = drift.DriftWindow(reference, size=50)
    window.add(same)
    assert window.add(brighter[:50]) == pytest.approx(drift.shift(brighter[:50], reference))
    with pytest.raises(ValueError, match=">= 2 images"):
        drift.fingerprint(same[:1])


@pytest.fixture(scope="module")
def drift_server(built_repo: Path) -> Iterator[TritonServer]:
    """A fresh server: no earlier test's images in the drift windows."""
    server = TritonServer(built_repo, startup_timeout=180)
    server.start()
    yield server
    server.stop()


def _scored(server: TritonServer, count: int, timeout_s: float = 15) -> None:
    """Wait for the preprocess model's next flush (1 s) to report `count` images scored."""
    deadline = time.monotonic() + timeout_s
    while _series(server, "mtqa_input_images_scored_total") < count:
        assert time.monotonic() < deadline, "drift counters did not reach Triton"
        time.sleep(0.2)


def _series(server: TritonServer, name: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{")]
    assert len(values) == 1, (name, values)
    return values[0]


@pytest.mark.server
def test_drift_score_rises_on_brighter_images_only(drift_server: TritonServer) -> None:
    from mtqa.data.synth import SynthConfig, SynthGenerator

    pre = drift_server.repo / "mtqa_preprocess"
    version = max((p for p in pre.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    reference = json.loads((version / "drift_reference.json").read_text())
    assert reference["images"] >= 64
    gen = SynthGenerator(SynthConfig(size=128, max_defects=3), seed=5)  # not the val stream
    originals = [gen.generate(0, i).image for i in range(128)]
    brighter = [np.clip(o.astype(np.int16) + 40, 0, 255).astype(np.uint8) for o in originals]
    scores = {}
    with InspectionClient(drift_server.grpc_url) as client:
        for name, images in (("original", originals), ("brighter", brighter)):
            for start in range(0, len(images), 16):
                client.inspect(images[start : start + 16])
            _scored(drift_server, 128 if name == "original" else 256)
            scores[name] = _series(drift_server, "mtqa_input_drift_score")
            scores[name + "_outside"] = _series(drift_server, "mtqa_input_outside_reference_total")
    assert _series(drift_server, "mtqa_input_images_scored_total") == 256
    assert scores["original"] < ALERT_THRESHOLD / 2, scores
    assert scores["brighter"] > ALERT_THRESHOLD and scores["brighter"] > 3 * scores["original"]
    assert scores["brighter_outside"] - scores["original_outside"] > scores["original_outside"]
