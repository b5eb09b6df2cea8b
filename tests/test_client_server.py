"""The client SDK against a real local Triton serving the builder's repository (`triton_server`).

Numbers are checked against ONNX Runtime run in-process on the served ONNX with the repository's
own preprocess copy; errors are provoked for real and the server must keep serving afterwards.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time

import numpy as np
import pytest
from PIL import Image

from mtqa_client import (
    AsyncInspectionClient,
    InferenceTimeoutError,
    InspectionClient,
    InvalidInputError,
    ModelContractError,
    ModelNotReadyError,
    ServerUnavailableError,
)
from mtqa_client.overlay import MIN_SIZE

pytestmark = pytest.mark.server
TOL = 1e-4
LOGITS = ("presence_logits", "seg_logits", "grade_logits")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ort(path, x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(LOGITS, session.run(list(LOGITS), {"images": x}), strict=True))


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _assert_serving(client: InspectionClient, image: np.ndarray) -> None:
    result = client.inspect(image)
    assert result.image_size == image.shape[:2]


def test_inspect_matches_onnxruntime(inspection_client, served, sample_images) -> None:
    data = [_png(img) for img in sample_images]
    results = inspection_client.inspect(data)
    x = np.stack([served.tensor(d) for d in data])
    ref = _ort(served.onnx_path, x)
    prob, grade = _sigmoid(ref["presence_logits"]), _softmax(ref["grade_logits"])
    got = np.array([[d.probability for d in r.defects] for r in results])
    got_grade = np.array([list(r.grade.probabilities.values()) for r in results])
    assert np.abs(got - prob).max() <= TOL
    assert np.abs(got_grade - grade).max() <= TOL
    presence_thr = [served.thresholds["presence"].get(c, 0.5) for c in served.classes]
    seg_thr = [served.thresholds["segmentation"].get(c, 0.5) for c in served.classes]
    clear = np.abs(prob - np.array(presence_thr)) > TOL  # skip ties at the threshold
    decided = np.array([[d.decision for d in r.defects] for r in results])
    assert np.array_equal(decided[clear], (prob > presence_thr)[clear])
    seg = _sigmoid(ref["seg_logits"])
    for i, (img, r) in enumerate(zip(sample_images, results, strict=True)):
        assert r.image_size == img.shape[:2] and r.model_name == "mtqa_inspect"
        # ok exactly when no defect is decided, else the likeliest defect grade
        expected_grade = 1 + int(np.argmax(grade[i, 1:])) if decided[i].any() else 0
        assert r.grade.index == expected_grade
        h, w = img.shape[:2]
        for k, defect in enumerate(r.defects):
            small = (seg[i, k] > seg_thr[k]).astype(np.uint8) * 255
            expected = np.asarray(Image.fromarray(small).resize((w, h), Image.NEAREST)) > 127
            assert (r.mask(defect.name) == expected).mean() >= 0.999
        for region in r.regions:
            x0, y0, x1, y1 = region.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert 0 <= region.score <= 1
            assert region.class_name == r.defects[region.class_index].name
            # a region of a pixel or two may vanish when nearest-resizing to a smaller original
            assert region.mask.any() or (x1 - x0) * (y1 - y0) < 4
    assert results[0].timings.round_trip_ms > 0 and results[0].timings.batch_size == len(data)


@pytest.mark.parametrize("shared_memory", [False, True], ids=["grpc", "system-shm"])
def test_infer_tensor_matches_fp32_onnx(triton_server, served, sample_images, shared_memory):
    x = np.stack([served.tensor(_png(img)) for img in sample_images])
    # registering a shared-memory region is an admin call: it needs the server's control key
    key = triton_server.control.key if shared_memory else None
    with InspectionClient(triton_server.grpc_url, shared_memory=shared_memory, key=key) as client:
        out = client.infer_tensor(x, model_version=served.fp32_version)
        again = client.infer_tensor(x[:2], model_version=served.fp32_version)  # region reuse
    ref = _ort(served.fp32_onnx, x)
    assert out.model_version == served.fp32_version and out.timings.batch_size == len(x)
    for name in LOGITS:
        assert np.abs(getattr(out, name) - ref[name]).max() <= TOL
    assert np.abs(again.seg_logits - ref["seg_logits"][:2]).max() <= TOL
    assert np.abs(out.presence_prob - _sigmoid(ref["presence_logits"])).max() <= TOL


def test_labels_and_thresholds_come_from_the_served_config(inspection_client, served) -> None:
    spec = inspection_client.spec
    assert spec.image_size == served.image_size and spec.max_batch_size > 0
    assert len(spec.classes) == len(served.classes)
    assert list(spec.classes) == served.classes
    assert dict(spec.thresholds) == {
        c: pytest.approx(served.thresholds["presence"].get(c, 0.5)) for c in served.classes
    }


def test_async_client_keeps_many_requests_in_flight(triton_server, sample_images) -> None:
    images = sample_images * 4

    async def run():
        async with AsyncInspectionClient(triton_server.grpc_url, timeout_s=60) as client:
            before = await client.statistics("mtqa_net")
            results = await client.inspect_many(images, concurrency=8, batch_size=1)
            after = await client.statistics("mtqa_net")
            single = await client.inspect(images[1])
            return results, client.max_in_flight, before, after, single

    results, peak, before, after, single = asyncio.run(run())

    def counts(stats: dict) -> tuple[int, int]:
        rows = stats["model_stats"]
        return (
            sum(int(r.get("inference_count", 0)) for r in rows),
            sum(int(r.get("execution_count", 0)) for r in rows),
        )

    (inf0, exe0), (inf1, exe1) = counts(before), counts(after)
    assert len(results) == len(images) and peak > 1
    # 24 one-image requests reached the network in fewer executions: the dynamic batcher saw
    # several of them queued at once, i.e. they were concurrently in flight.
    assert inf1 - inf0 == len(images) and exe1 - exe0 < len(images)
    assert [r.image_size for r in results] == [img.shape[:2] for img in images]  # order kept
    p = [d.probability for d in single.defects]
    assert np.allclose([d.probability for d in results[1].defects], p, atol=TOL)


def test_inspect_many_sync_splits_and_keeps_order(inspection_client, sample_images) -> None:
    images = sample_images * 3
    results = inspection_client.inspect_many(images, concurrency=3)
    assert [r.image_size for r in results] == [img.shape[:2] for img in images]
    one = inspection_client.inspect(images[4])
    assert np.allclose(
        [d.probability for d in results[4].defects], [d.probability for d in one.defects], atol=TOL
    )


def _bad_cases(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image at all\n")
    return {
        "corrupt-bytes": lambda c: c.inspect(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20),
        "non-image-file": lambda c: c.inspect(str(notes)),
        "wrong-shape": lambda c: c.inspect(np.zeros((8, 8, 4), np.uint8)),
        "empty-list": lambda c: c.inspect([]),
        "wrong-tensor": lambda c: c.infer_tensor(np.zeros((1, 3, 7, 7), np.float32)),
    }


@pytest.mark.parametrize("validate", [True, False], ids=["client-checks", "server-checks"])
def test_bad_requests_raise_typed_errors_and_server_keeps_serving(
    triton_server, sample_images, tmp_path, validate
) -> None:
    with InspectionClient(triton_server.grpc_url, validate_images=validate) as client:
        for name, call in _bad_cases(tmp_path).items():
            with pytest.raises(InvalidInputError) as info:
                call(client)
            if not validate and name in ("corrupt-bytes", "non-image-file"):
                # the server judged these bytes and said why in the image's item_error
                assert "server refused the image" in str(info.value) and "decode" in str(info.value)
            _assert_serving(client, sample_images[0])


def test_connect_fails_clearly_on_wrong_model_version_or_contract(triton_server) -> None:
    url = triton_server.grpc_url
    key = triton_server.control.key  # the repository index is an admin call
    with pytest.raises(ModelNotReadyError, match="available models"):
        InspectionClient(url, model="no_such_model", connect_timeout_s=1, key=key)
    with pytest.raises(ModelNotReadyError, match="not ready within"):  # no key: no model list
        InspectionClient(url, model="no_such_model", connect_timeout_s=1)
    with pytest.raises(ModelNotReadyError, match="version 999"):
        InspectionClient(url, model_version=999, connect_timeout_s=1)
    with pytest.raises(ModelContractError, match="no input 'image_bytes'"):
        InspectionClient(url, model="mtqa_net", connect_timeout_s=5)
    with pytest.raises(ModelNotReadyError, match="available models"):
        asyncio.run(
            AsyncInspectionClient.connect(url, model="no_such_model", connect_timeout_s=1, key=key)
        )
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="no Triton server ready"):
        InspectionClient(_dead_url(), connect_timeout_s=1)
    assert time.monotonic() - start < 10


def test_deadline_and_message_limit(triton_server, inspection_client, sample_images) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    start = time.monotonic()
    with pytest.raises(InferenceTimeoutError):
        inspection_client.inspect(noise, timeout_s=0.001)
    assert time.monotonic() - start < 5  # inference deadlines are final, never retried
    with InspectionClient(triton_server.grpc_url, max_message_bytes=32 * 1024) as small:
        with pytest.raises(InvalidInputError, match="max_message_bytes"):
            small.inspect(noise)  # ~65 kB of PNG
        _assert_serving(small, sample_images[0])


def test_failover_skips_a_dead_endpoint(triton_server, sample_images) -> None:
    with InspectionClient(
        _dead_url(), endpoints=[triton_server.grpc_url], retries=1, timeout_s=30
    ) as client:
        for _ in range(4):  # round robin starts at the dead replica every other call
            _assert_serving(client, sample_images[2])


def test_cli_prints_a_table_json_and_writes_overlays(
    triton_server, sample_images, tmp_path, capsys
) -> None:
    from mtqa_cli.main import main

    paths = []
    for i in (0, 2):
        paths.append(tmp_path / f"part{i}.png")
        paths[-1].write_bytes(_png(sample_images[i]))
    url = triton_server.grpc_url
    out = tmp_path / "overlays"
    assert main(["inspect", *map(str, paths), "--url", url, "--overlays", str(out)]) == 0
    table = capsys.readouterr().out
    assert "mtqa inspection" in table and "part0.png" in table and "grade" in table
    for i, path in zip((0, 2), paths, strict=True):
        overlay = Image.open(out / f"{path.stem}_overlay.png")
        h, w = sample_images[i].shape[:2]
        scale = max(1, -(-MIN_SIZE // max(h, w)))  # small images are drawn scaled up, whole
        assert overlay.size == (w * scale, h * scale) and max(overlay.size) >= MIN_SIZE
    assert main(["inspect", str(paths[0]), "--url", url, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["image_size"] == list(sample_images[0].shape[:2]) and row["defects"]
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert main(["inspect", str(notes), "--url", url]) == 3  # an input error
    assert "InvalidInputError" in capsys.readouterr().err
