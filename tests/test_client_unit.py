"""Fast tests of the client SDK's pure parts: inputs, error mapping, retry rules, endpoints,
contract checks and result parsing. The network paths are tested against a real Triton in
tests/test_client_server.py."""

from __future__ import annotations

import io
import math
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tritonclient.utils import InferenceServerException

from mtqa_client import errors
from mtqa_client.endpoints import EndpointPool
from mtqa_client.images import encode_images
from mtqa_client.protocol import batch_size_for, chunks
from mtqa_client.results import Timings, parse_inspect
from mtqa_client.retry import RetryPolicy, is_retryable
from mtqa_client.spec import build_spec


def test_sdk_never_imports_torch() -> None:
    code = (
        "import sys, mtqa_client, mtqa_client.overlay;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "print(mtqa_client.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_encode_accepts_arrays_bytes_paths_and_lists(tmp_path) -> None:
    gray = np.arange(12 * 7, dtype=np.uint8).reshape(12, 7)
    path = tmp_path / "x.png"
    path.write_bytes(_png(gray))
    rgb = np.dstack([gray] * 3)
    encoded = encode_images([gray, rgb, gray[:, :, None], _png(gray), str(path), path])
    assert [e.size for e in encoded] == [(12, 7)] * 6
    # arrays are sent lossless: decoding the PNG gives the caller's pixels back
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded[0].data))), gray)
    assert len(encode_images(gray)) == 1


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([], "empty list"),
        (np.zeros((4, 4), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "HxW or HxWx3"),
        (np.zeros((0, 4), np.uint8), "empty"),
        (b"", "empty image data"),
        (b"\x89PNG not really", "not a decodable image"),
        ("/no/such/file.png", "no such image file"),
        (3.5, "unsupported image type"),
    ],
)
def test_encode_rejects_bad_input(bad, match) -> None:
    with pytest.raises(errors.InvalidInputError, match=match):
        encode_images(bad)


def test_truncated_jpeg_is_caught_by_full_decode() -> None:
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="JPEG")
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]
    with pytest.raises(errors.InvalidInputError, match="truncated"):
        encode_images(cut)
    # without validation only the header is read; the server gets to judge the bytes
    assert encode_images(cut, validate=False)[0].size == (64, 64)


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", "ServerUnavailableError"),
        ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", "ServerOverloadedError"),
        ("StatusCode.RESOURCE_EXHAUSTED", "too many requests", "ServerOverloadedError"),
        (
            "StatusCode.RESOURCE_EXHAUSTED",
            "Sent message larger than max (3000 vs. 2048)",
            "InvalidInputError",
        ),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", "InferenceTimeoutError"),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'x'", "ModelNotReadyError"),
        ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input", "InvalidInputError"),
        ("StatusCode.INTERNAL", "cannot preprocess image: bad bytes", "InvalidInputError"),
        (
            "StatusCode.UNAVAILABLE",
            "This protocol is restricted, expecting header 'triton-grpc-protocol-k'",
            "PermissionDeniedError",
        ),
        ("StatusCode.UNAUTHENTICATED", "bad token", "AuthenticationError"),
        ("StatusCode.INTERNAL", "segfault in backend", "InspectionError"),
    ],
)
def test_server_errors_map_to_typed_errors(status, message, kind) -> None:
    err = errors.from_server_error(
        InferenceServerException(msg=message, status=status), model="m", endpoint="h:1"
    )
    assert type(err).__name__ == kind
    assert message in str(err) and "endpoint=h:1" in str(err)
    assert isinstance(err, errors.InspectionError)


def test_retry_rules_and_backoff() -> None:
    assert is_retryable(errors.ServerUnavailableError("x"), idempotent_read=False)
    assert is_retryable(errors.ServerOverloadedError("x"), idempotent_read=False)
    assert is_retryable(errors.InferenceTimeoutError("x"), idempotent_read=True)
    assert not is_retryable(errors.InferenceTimeoutError("x"), idempotent_read=False)
    assert not is_retryable(errors.InvalidInputError("x"), idempotent_read=True)
    # NOT_FOUND for a model verified at connect means the replica is (re)loading it
    assert is_retryable(errors.ModelNotReadyError("x"), idempotent_read=False, model_verified=True)
    assert not is_retryable(errors.ModelNotReadyError("x"), idempotent_read=True)
    policy, rng = RetryPolicy(retries=5, base_delay_s=0.1, max_delay_s=1.0), random.Random(0)
    delays = [[policy.delay(i, rng) for _ in range(50)] for i in range(6)]
    for i, ds in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**i)
        assert all(ceiling / 2 <= d <= ceiling for d in ds)
        assert len(set(ds)) > 1  # jittered
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def test_endpoint_pool_rotates_and_benches_failures() -> None:
    pool = EndpointPool([("a:1", "A"), ("b:1", "B"), ("c:1", "C")], bench_s=60)
    firsts = [pool.order()[0][0] for _ in range(6)]
    assert firsts == ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]
    pool.bench("b:1")
    for _ in range(3):
        assert pool.order()[-1][0] == "b:1"  # benched replicas are tried last
    pool.restore("b:1")
    assert {pool.order()[0][0] for _ in range(3)} == {"a:1", "b:1", "c:1"}


def test_chunking_helpers() -> None:
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert batch_size_for(100, 8, 4) == 8
    assert batch_size_for(10, 8, 4) == 3
    assert batch_size_for(2, 8, 8) == 1


S, K, G = 16, 2, 4


def _meta(**override) -> tuple[dict, dict]:
    outputs = {
        "presence_prob": ("FP32", [-1, K]),
        "presence_decision": ("BOOL", [-1, K]),
        "grade_prob": ("FP32", [-1, G]),
        "grade_index": ("INT32", [-1, 1]),
        "masks_packed": ("UINT8", [-1, K, math.ceil(S * S / 8)]),
        "regions": ("FP32", [-1, -1, 6]),
    }
    outputs.update(override)
    meta = {
        "name": "mtqa_inspect",
        "versions": ["1"],
        "platform": "ensemble",
        "inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": ["-1", "1"]}],
        "outputs": [
            {"name": n, "datatype": d, "shape": [str(v) for v in shape]}
            for n, (d, shape) in outputs.items()
        ],
    }
    params = {
        "classes": {"string_value": '["scratch", "stain"]'},
        "thresholds": {"string_value": '{"presence": {"scratch": 0.4, "stain": 0.6}}'},
    }
    return meta, {"config": {"name": "mtqa_inspect", "max_batch_size": 8, "parameters": params}}


def test_spec_reads_labels_and_checks_the_contract() -> None:
    meta, config = _meta()
    spec = build_spec(meta, config, kind="inspect")
    assert spec.classes == ("scratch", "stain") and spec.image_size == S
    assert spec.thresholds == {"scratch": 0.4, "stain": 0.6} and spec.max_batch_size == 8
    with pytest.raises(errors.ModelContractError, match="'grade_index' is FP32"):
        build_spec(*_meta(grade_index=("FP32", [-1, 1])), kind="inspect")
    meta, config = _meta(presence_prob=("FP32", [-1, 3]))
    with pytest.raises(errors.ModelContractError, match="2 class names but outputs 3"):
        build_spec(meta, config, kind="inspect")
    with pytest.raises(errors.ModelContractError, match="no input 'images'"):
        build_spec(*_meta(), kind="net")


def test_spec_learns_the_network_model_from_the_ensemble_config() -> None:
    meta, config = _meta()
    assert build_spec(meta, config, kind="inspect").net_model is None  # names none
    config["config"]["parameters"]["net_model"] = {"string_value": "my_net"}
    assert build_spec(meta, config, kind="inspect").net_model == "my_net"
    # Without the parameter (older repositories): the step that produces the logits.
    del config["config"]["parameters"]["net_model"]
    logits = {n: n for n in ("presence_logits", "seg_logits", "grade_logits")}
    config["config"]["ensemble_scheduling"] = {
        "step": [
            {"model_name": "pre", "output_map": {"images": "images"}},
            {"model_name": "other_net", "input_map": {"images": "images"}, "output_map": logits},
            {"model_name": "post", "input_map": logits, "output_map": {"regions": "regions"}},
        ]
    }
    assert build_spec(meta, config, kind="inspect").net_model == "other_net"


def test_parse_results_unpacks_and_resizes_masks_lazily() -> None:
    spec = build_spec(*_meta(), kind="inspect")
    mask = np.zeros((K, S, S), bool)
    mask[1, 4:8, 2:6] = True  # one "stain" blob at model resolution
    packed = np.packbits(mask.reshape(K, -1), axis=1, bitorder="big")[None]
    # original image 32 x 64: model pixels scale by 2 (rows) and 4 (columns)
    regions = np.array([[[1, 0.9, 8, 8, 24, 16], [-1, -1, -1, -1, -1, -1]]], np.float32)
    outputs = {
        "presence_prob": np.array([[0.1, 0.8]], np.float32),
        "presence_decision": np.array([[False, True]]),
        "grade_prob": np.array([[0.1, 0.2, 0.6, 0.1]], np.float32),
        "grade_index": np.array([[2]], np.int32),
        "masks_packed": packed,
        "regions": regions,
    }
    [image] = encode_images([np.zeros((32, 64), np.uint8)])
    [result] = parse_inspect(outputs, [image], spec, "3", Timings(1.0, 1))
    assert result.defective and result.defect("stain").decision
    assert result.defect("stain").threshold == 0.6 and result.grade.name == "major"
    assert result.model_version == "3" and len(result.regions) == 1  # padding row dropped
    assert result._masks[1]._mask is None  # still packed
    big = result.mask("stain")
    assert big.shape == (32, 64) and big.sum() == mask[1].sum() * 8
    region = result.regions[0]
    assert region.class_name == "stain" and region.box == (8.0, 8.0, 24.0, 16.0)
    assert np.array_equal(region.mask, big)  # the only blob lies inside its box
    assert result.to_dict()["regions"][0]["class"] == "stain"
    with pytest.raises(KeyError, match="known"):
        result.defect("dent")


def test_max_pixels_is_checked_from_the_header_even_without_validation() -> None:
    data = _png(np.zeros((200, 300), np.uint8))
    for validate in (True, False):
        with pytest.raises(errors.InvalidInputError, match="item 0: image too large: 300x200"):
            encode_images(data, validate=validate, max_pixels=50_000)
    with pytest.raises(errors.InvalidInputError, match="too large"):
        encode_images(np.zeros((200, 300), np.uint8), max_pixels=50_000)
    assert encode_images(data, max_pixels=60_000)[0].size == (200, 300)


def test_errors_name_the_item_and_file_not_an_object(tmp_path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(b"junk")
    with pytest.raises(errors.InvalidInputError) as info:
        encode_images([_png(np.zeros((4, 4), np.uint8)), str(path)])
    text = str(info.value)
    assert text.startswith(f"item 1 ({path})") and "object at 0x" not in text


def test_parse_turns_server_item_errors_into_item_errors() -> None:
    from mtqa_client import ItemError

    spec = build_spec(*_meta(), kind="inspect")
    n = 2
    outputs = {
        "presence_prob": np.zeros((n, K), np.float32),
        "presence_decision": np.zeros((n, K), bool),
        "grade_prob": np.zeros((n, 4), np.float32),
        "grade_index": np.array([[0], [-1]], np.int32),
        "masks_packed": np.zeros((n, K, S * S // 8), np.uint8),
        "regions": np.full((n, 1, 6), -1, np.float32),
        "item_error": np.array([[b""], [b"DecodeError: not a recognised image format"]], object),
    }
    images = encode_images([np.zeros((8, 8), np.uint8)] * 2)
    good, bad = parse_inspect(outputs, images, spec, "1", Timings(1.0, n))
    assert good.ok and not bad.ok and isinstance(bad, ItemError) and bad.index == 1
    assert isinstance(bad.error, errors.InvalidInputError)
    assert "item 1: the server refused the image: DecodeError" in str(bad.error)
    assert bad.to_dict()["error"]["type"] == "InvalidInputError"


def test_a_failed_request_raises_batch_error_with_every_answer() -> None:
    from mtqa_client import BatchError
    from mtqa_client.batch import Collector, finish

    images = encode_images([np.zeros((8, 8), np.uint8)] * 3)
    part = Collector(0, 3)
    sendable = part.encode(
        [0, "/no/such.png", 2],
        lambda item, i: images[i] if item != "/no/such.png" else encode_images(item)[0],
    )
    assert [e.index for e in sendable] == [0, 2]
    spec = build_spec(*_meta(), kind="inspect")
    outputs = {
        "presence_prob": np.zeros((1, K), np.float32),
        "presence_decision": np.zeros((1, K), bool),
        "grade_prob": np.zeros((1, 4), np.float32),
        "grade_index": np.zeros((1, 1), np.int32),
        "masks_packed": np.zeros((1, K, S * S // 8), np.uint8),
        "regions": np.full((1, 1, 6), -1, np.float32),
    }
    part.answered([images[0]], parse_inspect(outputs, [images[0]], spec, "1", Timings(1.0, 1)))
    down = errors.ServerUnavailableError("no endpoint answered")
    part.failed([images[2]], down)
    with pytest.raises(BatchError, match="1 of 3 images answered") as info:
        finish([part], True)
    results = info.value.results
    assert [r.ok for r in results] == [True, False, False]
    assert "no such image file" in str(results[1].error) and results[2].error is down
    assert info.value.failures == [down] and len(info.value.errors) == 2
