"""Letterbox inference: the same answers in PyTorch, ONNX Runtime, the served ensemble and the SDK.

A letterboxed image fills the top-left (h, w) of the model input (`fit_size`); the rest is
padding that normalises to ~0. Unit tests pin the geometry of each piece (preprocess, training
crops, postprocess, the SDK's mask mapping); the server tests send non-square images through one
real Triton serving `tiny_run` retagged "resize": "letterbox" and compare with in-process runs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtqa.data.preprocess import (
    fit_size,
    normalise,
    pad_fill,
    preprocess_image,
    resize_image,
    resize_mask,
)
from mtqa.data.synth import SynthConfig, SynthGenerator
from mtqa_builder.triton_models.postprocess_core import postprocess
from mtqa_client.results import Timings, _PackedMask, parse_inspect
from mtqa_client.spec import ModelSpec

SIZE = 128
ORIG = (100, 250)  # (h, w): letterboxed to (51, 128) at SIZE
TOL = 1e-4
MEAN, STD = (0.45, 0.5, 0.55), (0.2, 0.25, 0.3)
LOGITS = ("presence_logits", "seg_logits", "grade_logits")


# --- preprocessing and training crops -------------------------------------------------------


def test_fit_size_keeps_the_aspect_with_the_long_side_at_size() -> None:
    assert fit_size(*ORIG, SIZE, "letterbox") == (51, SIZE)
    assert fit_size(250, 100, SIZE, "letterbox") == (SIZE, 51)
    assert fit_size(SIZE, SIZE, SIZE, "letterbox") == (SIZE, SIZE)
    assert fit_size(1, 5000, SIZE, "letterbox") == (1, SIZE)  # never a zero-height image
    assert fit_size(*ORIG, SIZE, "squash") == (SIZE, SIZE)
    with pytest.raises(ValueError, match="resize mode"):
        fit_size(*ORIG, SIZE, "stretch")


def test_letterboxed_input_is_the_resized_image_then_padding_that_normalises_to_zero() -> None:
    image = np.random.default_rng(0).integers(0, 256, (*ORIG, 3), dtype=np.uint8)
    x = preprocess_image(image, SIZE, MEAN, STD, "letterbox")
    assert x.shape == (3, SIZE, SIZE) and x.dtype == np.float32
    content = np.asarray(Image.fromarray(image).resize((SIZE, 51), Image.BILINEAR))
    assert np.array_equal(x[:, :51], normalise(content, MEAN, STD))
    # the padding colour is the mean rounded to uint8: at most half a grey level from zero
    assert np.abs(x[:, 51:]).max() <= 0.5 / 255 / min(STD) + 1e-6
    mask = np.zeros(ORIG, np.uint8)
    mask[40:60, 100:150] = 2
    small = resize_mask(mask, SIZE, "letterbox")
    assert small.shape == (SIZE, SIZE) and set(np.unique(small)) == {0, 2}
    assert not small[51:].any()  # padding is background


def _wide_dataset(out: Path, n: int = 8) -> Path:
    """An indexed-mask dataset of 90x200 synthetic images (200 px ones, bottom cropped off)."""
    from mtqa.data.writer import write_synth_dataset

    write_synth_dataset(out, n, config=SynthConfig(size=200), seed=3, val_frac=0.25, test_frac=0.25)
    for path in [*(out / "images").rglob("*.png"), *(out / "masks").rglob("*.png")]:
        Image.fromarray(np.asarray(Image.open(path))[:90]).save(path)
    return out


def test_training_crops_of_a_letterboxed_dataset_are_windows_of_its_input(tmp_path) -> None:
    from mtqa.data import build_datasets
    from mtqa.data.datasets import CropDataset

    data = _wide_dataset(tmp_path / "wide")
    bundle = build_datasets(
        str(data), 64, augment=False, resize="letterbox", crop_size=32, defect_crop_share=0.5
    )
    crops, base = bundle.train, bundle.train.base
    assert isinstance(crops, CropDataset) and base.resize == "letterbox"
    assert bundle.val[0]["image"].shape == (3, 64, 64)
    content = fit_size(90, 200, 64, "letterbox")
    assert content == (29, 64)
    for i in range(len(crops)):
        item = crops[i]
        assert item["image"].shape == (3, 32, 32) and item["mask"].shape[1:] == (32, 32)
        source_id, origin = item["id"].rsplit("@", 1)
        y0, x0 = (int(v) for v in origin.split(","))
        j = next(j for j in range(len(base)) if base.records[j].id == source_id)
        _, image, mask, _ = base.raw(j)
        canvas = resize_image(image, 64, "letterbox", pad_fill(base.mean))
        window = (slice(y0, y0 + 32), slice(x0, x0 + 32))
        want = normalise(np.ascontiguousarray(canvas[window]), base.mean, base.std)
        assert np.array_equal(item["image"].numpy(), want)
        small = resize_mask(mask, 64, "letterbox")[window]
        for k in range(len(crops.classes)):
            assert np.array_equal(item["mask"][k].numpy() > 0, small == k + 1)
        # a crop may reach into the padding, whose targets are background
        pad_rows = max(0, y0 + 32 - content[0])
        if pad_rows:
            assert not item["mask"][:, 32 - pad_rows :].any()


# --- postprocess and the SDK's mask mapping -------------------------------------------------


def _logits(seg: np.ndarray, presence: float = 5.0) -> tuple[np.ndarray, ...]:
    """Batch-of-one logits with `seg` (bool [K,S,S]) as +-8 mask logits."""
    k = seg.shape[0]
    return (
        np.full((1, k), presence, np.float32),
        np.where(seg, 8.0, -8.0).astype(np.float32)[None],
        np.array([[0.0, 1.0, 0.0, 0.0]], np.float32),
    )


def _post(seg: np.ndarray, orig: tuple[int, int], content) -> dict[str, np.ndarray]:
    k = seg.shape[0]
    thr = np.full(k, 0.5, np.float32)
    content = None if content is None else np.array([content], np.int32)
    return postprocess(*_logits(seg), np.array([orig], np.int32), thr, thr, None, content)


def _unpack(packed: np.ndarray, k: int) -> np.ndarray:
    bits = np.unpackbits(packed.reshape(k, -1), axis=1, count=SIZE * SIZE, bitorder="big")
    return bits.reshape(k, SIZE, SIZE).astype(bool)


def test_postprocess_clears_the_padding_and_boxes_in_original_pixels() -> None:
    content = fit_size(*ORIG, SIZE, "letterbox")
    # a rectangle of the original image, as letterboxing puts it into model pixels
    original = np.zeros(ORIG, np.uint8)
    original[20:40, 60:125] = 1
    seg = np.zeros((2, SIZE, SIZE), bool)
    seg[0] = resize_mask(original, SIZE, "letterbox") == 1
    seg[1, 60:80, 10:30] = True  # only in the padding: what the net may draw there
    seg[0, 100:110, 100:120] = True
    out = _post(seg, ORIG, content)
    assert out["mask_size"].tolist() == [list(content)]
    masks = _unpack(out["masks_packed"][0], 2)
    assert np.array_equal(masks[0], seg[0] & (np.arange(SIZE) < content[0])[:, None])
    assert not masks[1].any() and not masks[:, content[0] :].any()
    rows = out["regions"][0]
    rows = rows[rows[:, 0] >= 0]
    assert len(rows) == 1 and rows[0, 0] == 0  # nothing found in the padding
    box = rows[0, 2:]
    # back in original pixels within one model pixel (250/128 wide, 100/51 high)
    np.testing.assert_allclose(box, [60, 20, 125, 40], atol=2.0)
    ys, xs = np.nonzero(seg[0] & masks[0])  # exactly: the model-pixel box times the scales
    sx, sy = ORIG[1] / content[1], ORIG[0] / content[0]
    want = [xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy]
    np.testing.assert_allclose(box, want, rtol=1e-6)
    assert box[2] <= ORIG[1] and box[3] <= ORIG[0]


def test_postprocess_without_content_squashes_as_before() -> None:
    seg = np.zeros((2, SIZE, SIZE), bool)
    seg[0, 64:128, 0:64] = True
    out = _post(seg, ORIG, None)
    assert out["mask_size"].tolist() == [[SIZE, SIZE]]
    assert np.array_equal(_unpack(out["masks_packed"][0], 2), seg)
    rows = out["regions"][0]
    np.testing.assert_allclose(rows[0, 2:], [0, 50, 125, 100], rtol=1e-6)


def _nearest(small: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """`small` resized to hw by nearest neighbour, as the SDK does it (Pillow)."""
    img = Image.fromarray(small.astype(np.uint8) * np.uint8(255))
    return np.asarray(img.resize((hw[1], hw[0]), Image.NEAREST)) > 127


def test_packed_mask_crops_to_the_content_before_resizing() -> None:
    content = fit_size(*ORIG, SIZE, "letterbox")
    small = np.zeros((SIZE, SIZE), bool)
    small[10:20, 30:60] = True
    small[content[0] :] = True  # padding rows set: an old server that did not clear them
    packed = np.packbits(small.reshape(-1), bitorder="big")
    mask = _PackedMask(packed, SIZE, ORIG, content).get()
    assert mask.shape == ORIG
    assert np.array_equal(mask, _nearest(small[: content[0], : content[1]], ORIG))
    assert not mask[45:].any()  # the padding never reaches the original image
    squashed = _PackedMask(packed, SIZE, ORIG).get()  # without content: the whole square
    assert squashed[70:].all()


def _spec(k: int = 2) -> ModelSpec:
    return ModelSpec(
        name="mtqa_inspect",
        versions=("1",),
        platform="ensemble",
        max_batch_size=8,
        inputs={},
        outputs={},
        classes=tuple(f"class_{i}" for i in range(k)),
        grades=("ok", "minor", "major", "reject"),
        image_size=SIZE,
    )


def _outputs(seg: np.ndarray, orig: tuple[int, int], content) -> dict[str, np.ndarray]:
    out = _post(seg, orig, content)
    out["orig_size"] = np.array([orig], np.int32)
    return out


def test_sdk_results_map_letterboxed_masks_and_boxes_to_the_original() -> None:
    from mtqa_client.images import encode_images

    content = fit_size(*ORIG, SIZE, "letterbox")
    seg = np.zeros((2, SIZE, SIZE), bool)
    seg[0, 10:30, 20:90] = True
    seg[1, 80:100, 0:SIZE] = True  # padding only
    [image] = encode_images([np.zeros(ORIG, np.uint8)])
    outputs = _outputs(seg, ORIG, content)
    [result] = parse_inspect(outputs, [image], _spec(), "1", Timings(1.0, 1))
    assert result.image_size == ORIG
    want = _nearest(seg[0, : content[0], : content[1]], ORIG)
    assert np.array_equal(result.mask("class_0"), want) and want.any()
    assert not result.mask("class_1").any()
    [region] = result.regions
    x0, y0, x1, y1 = region.box
    assert 0 <= x0 < x1 <= ORIG[1] and 0 <= y0 < y1 <= ORIG[0]
    assert np.array_equal(region.mask, want)


def test_sdk_parses_repositories_without_mask_size_as_squashed() -> None:
    from mtqa_client.images import encode_images

    seg = np.zeros((2, SIZE, SIZE), bool)
    seg[0, 64:, :] = True
    [image] = encode_images([np.zeros(ORIG, np.uint8)])
    outputs = _outputs(seg, ORIG, None)
    del outputs["mask_size"]
    [result] = parse_inspect(outputs, [image], _spec(), "1", Timings(1.0, 1))
    assert result._masks[0]._content == (SIZE, SIZE)
    assert np.array_equal(result.mask("class_0"), _nearest(seg[0], ORIG))
    assert result.mask("class_0")[50:].all() and not result.mask("class_0")[:50].any()


# --- end to end: PyTorch, ONNX Runtime, the served ensemble and the SDK ----------------------


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _defective_crops() -> list[np.ndarray]:
    """A 90x200 and a 200x90 synthetic image, each holding a clear defect."""
    gen = SynthGenerator(SynthConfig(size=200), seed=5)
    found = []
    for i in range(64):
        sample = gen.generate(0, 0, i)
        if (sample.index_mask[:90] > 0).sum() >= 400:
            found.append(sample.image[:90])
        if len(found) == 2:
            break
    wide, other = found
    return [wide, np.ascontiguousarray(np.transpose(other, (1, 0, 2)))]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def local_answers(letterbox_run, letterbox_repo) -> dict:
    """The images, their letterboxed inputs and PyTorch / ORT logits, and the local postprocess."""
    import onnxruntime as ort
    import torch
    from fixtures.client import served_reference

    from mtqa.checkpoint import load_checkpoint

    ckpt = load_checkpoint(letterbox_run)
    assert ckpt.resize == "letterbox"
    images = _defective_crops()
    x = np.stack(
        [preprocess_image(im, ckpt.image_size, ckpt.mean, ckpt.std, "letterbox") for im in images]
    )
    with torch.inference_mode():
        out = ckpt.model(torch.from_numpy(x))
    torch_logits = {n: out[n].numpy() for n in LOGITS}
    ref = served_reference(letterbox_repo)
    # the repository's verbatim preprocess copy, fed as mtqa_preprocess decodes the PNG bytes
    served_x = [
        ref.preprocess.preprocess_image(
            ref.decode.decode_image(_png(im), size=ref.image_size).rgb,
            ref.image_size,
            ref.mean,
            ref.std,
            "letterbox",
        )
        for im in images
    ]
    assert np.array_equal(np.stack(served_x), x)
    session = ort.InferenceSession(str(ref.onnx_path), providers=["CPUExecutionProvider"])
    ort_logits = dict(zip(LOGITS, session.run(list(LOGITS), {"images": x}), strict=True))
    thr = {
        key: np.array([ref.thresholds[key].get(c, 0.5) for c in ref.classes], np.float32)
        for key in ("presence", "segmentation")
    }
    orig = np.array([im.shape[:2] for im in images], np.int32)
    content = np.array([fit_size(h, w, ckpt.image_size, "letterbox") for h, w in orig], np.int32)
    post = postprocess(
        *(ort_logits[n] for n in LOGITS), orig, thr["presence"], thr["segmentation"], None, content
    )
    return {
        "images": images,
        "torch": torch_logits,
        "ort": ort_logits,
        "post": post,
        "content": content,
        "seg_thr": thr["segmentation"],
        "classes": ref.classes,
    }


def _resize_recorded(repo: Path) -> list[str]:
    """The resize rule as the repository records it for preprocess, postprocess, the ensemble."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    [pre] = (repo / "mtqa_preprocess").glob("*/preprocess.json")
    [post] = (repo / "mtqa_postprocess").glob("*/postprocess.json")
    ensemble = text_format.Parse(
        (repo / "mtqa_inspect" / "config.pbtxt").read_text(), mc.ModelConfig()
    )
    return [
        json.loads(pre.read_text())["resize"],
        json.loads(post.read_text())["resize"],
        ensemble.parameters["resize"].string_value,
    ]


def _served(server, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    import tritonclient.grpc as grpcclient

    names = ("presence_prob", "grade_prob", "masks_packed", "regions", "mask_size")
    data = np.array([[_png(im)] for im in images], dtype=np.object_)
    tensor = grpcclient.InferInput("image_bytes", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        wanted = [grpcclient.InferRequestedOutput(n) for n in names]
        result = client.infer("mtqa_inspect", [tensor], outputs=wanted, client_timeout=120)
    finally:
        client.close()
    return {n: result.as_numpy(n) for n in names}


@pytest.fixture(scope="module")
def served_answers(letterbox_server, local_answers) -> dict[str, np.ndarray]:
    """The ensemble's answer for the two images, as one batched request."""
    return _served(letterbox_server, local_answers["images"])


def _settled(local: dict, b: int) -> np.ndarray:
    """Bool [K,S,S]: pixels whose probability is off the threshold by more than TOL (a pixel on
    it may flip between runtimes)."""
    seg_prob = _sigmoid(local["ort"]["seg_logits"][b])
    return np.abs(seg_prob - local["seg_thr"][:, None, None]) > TOL


@pytest.mark.server
def test_served_probabilities_match_pytorch_and_onnxruntime(
    served_answers, local_answers, letterbox_repo
) -> None:
    local, served = local_answers, served_answers
    assert _resize_recorded(letterbox_repo) == ["letterbox"] * 3
    for name in LOGITS:  # the exported graph is the checkpoint's network
        assert np.abs(local["torch"][name] - local["ort"][name]).max() <= TOL, name
    for name, logits, fn in (
        ("presence_prob", "presence_logits", _sigmoid),
        ("grade_prob", "grade_logits", _softmax),
    ):
        assert np.abs(served[name] - fn(local["torch"][logits])).max() <= TOL, name
        assert np.abs(served[name] - fn(local["ort"][logits])).max() <= TOL, name
    assert served["mask_size"].tolist() == local["content"].tolist() == [[58, 128], [128, 58]]


@pytest.mark.server
def test_served_masks_match_the_local_postprocess_inside_the_content(
    served_answers, local_answers
) -> None:
    local, served = local_answers, served_answers
    k, in_padding = len(local["classes"]), 0
    for b, (c_h, c_w) in enumerate(local["content"]):
        raw = _sigmoid(local["ort"]["seg_logits"][b]) >= local["seg_thr"][:, None, None]
        raw[:, :c_h, :c_w] = False
        in_padding += int(raw.sum())  # what the net itself marks in the padding
        got = _unpack(served["masks_packed"][b], k)
        want = _unpack(local["post"]["masks_packed"][b], k)
        settled = _settled(local, b)
        assert np.array_equal(got[settled], want[settled])
        assert got[:, :c_h, :c_w].any(), "the test image should give a non-empty mask"
        assert not got[:, c_h:].any() and not got[:, :, c_w:].any()
    assert in_padding > 0, "the net marks no padding pixel here: the clearing went untested"
    regions = served["regions"].reshape(len(local["images"]), -1, 6)
    for b, image in enumerate(local["images"]):
        h, w = image.shape[:2]
        rows = regions[b][regions[b][:, 0] >= 0]
        assert (rows[:, 2:4] >= 0).all() and (rows[:, 4] <= w).all() and (rows[:, 5] <= h).all()


def _source_pixels(content: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    """int [h,w]: the flat index of the content pixel each original pixel takes (nearest)."""
    index = np.arange(content[0] * content[1], dtype=np.int32).reshape(content)
    return np.asarray(Image.fromarray(index, mode="I").resize((hw[1], hw[0]), Image.NEAREST))


@pytest.mark.server
def test_sdk_gives_boxes_and_masks_in_original_pixels(letterbox_server, local_answers) -> None:
    from mtqa_client import InspectionClient

    local = local_answers
    with InspectionClient(letterbox_server.grpc_url, timeout_s=60, connect_timeout_s=120) as c:
        results = c.inspect(local["images"])
    k = len(local["classes"])
    marked = 0
    for b, (result, image) in enumerate(zip(results, local["images"], strict=True)):
        h, w = image.shape[:2]
        c_h, c_w = (int(v) for v in local["content"][b])
        assert result.image_size == (h, w)
        for region in result.regions:
            x0, y0, x1, y1 = region.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, region.box
        want_small = _unpack(local["post"]["masks_packed"][b], k)[:, :c_h, :c_w]
        settled_small = _settled(local, b)[:, :c_h, :c_w]
        source = _source_pixels((c_h, c_w), (h, w))
        for j, name in enumerate(local["classes"]):
            got = result.mask(name)
            assert got.shape == (h, w)
            want = want_small[j].reshape(-1)[source]
            settled = settled_small[j].reshape(-1)[source]
            assert np.array_equal(got[settled], want[settled]), name
            assert np.array_equal(want, _nearest(want_small[j], (h, w)))
            marked += int(got.sum())
    assert marked > 0


def test_evaluate_feeds_the_split_as_the_checkpoint_was_trained(
    letterbox_run, tmp_path, capsys
) -> None:
    from mtqa.calibrate import checkpoint_split
    from mtqa.checkpoint import load_checkpoint
    from mtqa.evaluate import run_evaluation, torch_predict_fn
    from mtqa_cli.main import main

    data = _wide_dataset(tmp_path / "wide", n=12)
    ckpt = load_checkpoint(letterbox_run)
    dataset, _ = checkpoint_split(ckpt, "test", str(data))
    assert dataset.resize == "letterbox" and len(dataset) == 3
    c_h, _ = fit_size(90, 200, ckpt.image_size, "letterbox")
    for i in range(len(dataset)):
        item = dataset[i]
        assert np.abs(item["image"][:, c_h:].numpy()).max() <= 0.5 / 255 / min(ckpt.std) + 1e-6
        assert np.abs(item["image"][:, :c_h].numpy()).max() > 0.5  # the image itself is there
        assert not item["mask"][:, c_h:].any()
    out = tmp_path / "eval"
    argv = ["evaluate", "--run", str(letterbox_run), "--data", str(data)]
    rc = main(argv + ["--split", "test", "--out", str(out), "--samples", "1"])
    assert rc == 0, capsys.readouterr().err
    pixel = np.array(json.loads((out / "confusion_matrices.json").read_text())["pixel"]["matrix"])
    args = (ckpt.classes, ckpt.grades, ckpt.thresholds)
    letterboxed = run_evaluation(torch_predict_fn(ckpt.model), dataset, *args)
    assert np.array_equal(pixel, letterboxed.pixel_confusion)
    dataset.resize = "squash"  # the same split squashed scores differently
    squashed = run_evaluation(torch_predict_fn(ckpt.model), dataset, *args)
    assert not np.array_equal(pixel, squashed.pixel_confusion)


def test_the_sdk_asks_for_mask_size_where_the_ensemble_has_it() -> None:
    from mtqa_client import protocol
    from mtqa_client.images import encode_images

    images = encode_images([np.zeros(ORIG, np.uint8)])
    spec = _spec()
    old = [o.name() for o in protocol.inspect_request(images, spec)[1]]
    assert "mask_size" not in old  # a repository that predates it: not asked, parses squashed
    spec = ModelSpec(**{**spec.__dict__, "outputs": {"mask_size": ("INT32", (-1, 2))}})
    assert "mask_size" in [o.name() for o in protocol.inspect_request(images, spec)[1]]
