"""The served ensemble in process: a built repository's steps run on ONNX Runtime, no server.

`OfflinePredictor` replays `mtqa_inspect` from the files `mtqa build` wrote: the versions the
ensemble's config pins, the same decoder and preprocessing (mtqa.data.decode / preprocess, the
files copied into `mtqa_preprocess`), the network's `model.onnx` on the lane runner the local
`mtqa_net` uses (ort_plan), the postprocess model's numeric core (postprocess_core, with its
thresholds.json and labels.txt), and the SDK's own parsing (`mtqa_client.results.parse_inspect`)
and per-image error handling (`mtqa_client.batch`). So `mtqa predict` gives what `mtqa inspect`
gets from a server, as the same `InspectionResult` / `ItemError` objects: same JSON, same
overlays. Timings are the local wall time of each batch (no server figures).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from mtqa.data import decode, preprocess
from mtqa_builder import configs, contract
from mtqa_builder.contract import ENSEMBLE, LABELS, NET, POST, PRE, THRESHOLDS
from mtqa_builder.errors import RepositoryError
from mtqa_builder.triton_models import ort_plan, postprocess_core
from mtqa_client.batch import Collector, Outcome, finish
from mtqa_client.errors import InspectionError
from mtqa_client.images import EncodedImage, ImageLike, encode_one
from mtqa_client.results import Timings, parse_inspect
from mtqa_client.spec import ModelSpec, build_spec

LOGITS = ("presence_logits", "seg_logits", "grade_logits")
ONNX_FILE = "model.onnx"


class OfflineError(RepositoryError):
    """The repository cannot be run offline (not built, no ONNX file, unknown precision)."""


def _pinned(ensemble: configs.mc.ModelConfig) -> dict[str, int]:
    """model -> the version each ensemble step pins."""
    steps = {s.model_name: int(s.model_version) for s in ensemble.ensemble_scheduling.step}
    missing = [m for m in (PRE, NET, POST) if steps.get(m, -1) < 1]
    if missing:
        raise OfflineError(f"{ENSEMBLE} pins no version of {missing}")
    return steps


def _datatype(data_type: int) -> str:
    """Triton's metadata name of a config data type (TYPE_FP32 -> FP32, TYPE_STRING -> BYTES)."""
    name = configs.mc.DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def ensemble_spec(ensemble: configs.mc.ModelConfig, version: int) -> ModelSpec:
    """The `ModelSpec` a client builds from the served ensemble, from its config.pbtxt: the
    metadata Triton would report and the config as tritonclient's JSON, through the SDK's own
    contract check (`build_spec`)."""

    def tensors(items: Any) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "datatype": _datatype(t.data_type), "shape": [-1, *t.dims]}
            for t in items
        ]

    metadata = {
        "name": ensemble.name,
        "versions": [str(version)],
        "platform": ensemble.platform,
        "inputs": tensors(ensemble.input),
        "outputs": tensors(ensemble.output),
    }
    config = json_format.MessageToDict(ensemble, preserving_proto_field_name=True)
    return build_spec(metadata, config, kind="inspect")


def _net_version(repo: Path, pinned: int, precision: str | None) -> int:
    if precision is None:
        return pinned
    built = contract.precision_versions(repo)
    if precision not in built:
        raise OfflineError(f"{repo} has no {precision} variant (built: {sorted(built) or 'none'})")
    return int(built[precision])


class OfflinePredictor:
    """Runs a built repository's ensemble in this process (see the module docstring).

    `precision` picks a variant from variants.json (default: the network version the ensemble
    pins); `threads` is ONNX Runtime's intra-op threads (0: every core).
    """

    def __init__(self, repo: Path | str, *, precision: str | None = None, threads: int = 0) -> None:
        self.repo = Path(repo)
        if not self.repo.is_dir():
            raise OfflineError(f"no model repository at {self.repo}; build one with `mtqa build`")
        ensemble = configs.read_model_config(self.repo, ENSEMBLE)
        try:
            self.version = max(int(v) for v in ensemble.version_policy.specific.versions)
        except ValueError:
            self.version = contract.latest_version(self.repo, ENSEMBLE)
        steps = _pinned(ensemble)
        self.spec = ensemble_spec(ensemble, self.version)
        self.max_batch = max(1, int(ensemble.max_batch_size) or 1)
        self.net_version = _net_version(self.repo, steps[NET], precision)
        self.preprocessing = contract.read_preprocessing(self.repo, steps[PRE])
        pre_params = configs.read_model_config(self.repo, PRE).parameters
        self.max_pixels = int(
            pre_params["max_pixels"].string_value
            if "max_pixels" in pre_params
            else decode.DEFAULT_MAX_PIXELS
        )
        post_dir = contract.version_dir(self.repo, POST, steps[POST])
        classes = [c for c in (post_dir / LABELS).read_text().split("\n") if c]
        thresholds = contract.read_json(post_dir / THRESHOLDS)
        self.presence_thr = postprocess_core.threshold_vector(thresholds, "presence", classes)
        self.seg_thr = postprocess_core.threshold_vector(thresholds, "segmentation", classes)
        onnx = contract.version_dir(self.repo, NET, self.net_version) / ONNX_FILE
        if not onnx.is_file():
            raise OfflineError(
                f"{onnx} is missing: {NET} version {self.net_version} holds no ONNX model "
                "(an ngc-trt build serves TensorRT plans; build with --target local or ngc-onnx)"
            )
        size = self.preprocessing.image_size
        self.runner = ort_plan.open_runner(
            onnx, threads or (os.cpu_count() or 1), 1, configs.chunk_images_for(size), LOGITS
        )

    def __enter__(self) -> OfflinePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.runner.close()

    def _input(self, image: EncodedImage) -> tuple[np.ndarray, tuple[int, int], str]:
        """What mtqa_preprocess makes of one image: (input, orig (h, w), "") or a blank input,
        (0, 0) and the reason it could not be decoded."""
        p = self.preprocessing
        try:
            decoded = decode.decode_image(image.data, size=p.image_size, max_pixels=self.max_pixels)
            x = preprocess.preprocess_image(decoded.rgb, p.image_size, p.mean, p.std, p.resize)
            return x, decoded.orig_hw, ""
        except Exception as exc:  # the image's own fault: reported in its slot
            blank = np.zeros((3, p.image_size, p.image_size), np.float32)
            return blank, (0, 0), f"{type(exc).__name__}: {exc}"

    def _run(self, chunk: Sequence[EncodedImage]) -> list[Outcome]:
        """One batch through preprocess, the network and postprocess, parsed as the SDK does."""
        start = time.perf_counter()
        done = [self._input(image) for image in chunk]
        images = np.stack([d[0] for d in done])
        orig = np.asarray([d[1] for d in done], dtype=np.int32).reshape(-1, 2)
        # as mtqa_postprocess: a failed slot's (0, 0) is read as 1x1 for the geometry
        errors = np.array([[d[2].encode()] for d in done], dtype=np.object_)
        valid = np.array([not d[2] for d in done])
        ((presence, seg, grade),) = self.runner.run([images])
        p = self.preprocessing
        fills = [
            preprocess.fit_size(int(h), int(w), p.image_size, p.resize)
            for h, w in np.maximum(orig, 1)
        ]
        content = np.asarray(fills, dtype=np.int32).reshape(-1, 2)
        outputs = postprocess_core.postprocess(
            presence, seg, grade, orig, self.presence_thr, self.seg_thr, valid, content
        )
        outputs["item_error"] = errors
        outputs["orig_size"] = orig
        ms = (time.perf_counter() - start) * 1000.0
        return parse_inspect(outputs, chunk, self.spec, str(self.version), Timings(ms, len(chunk)))

    def predict(
        self, images: Sequence[ImageLike], *, batch_size: int | None = None
    ) -> list[Outcome]:
        """One `InspectionResult` or `ItemError` per image, in order, as `inspect_many` returns.

        Images are checked and encoded as the SDK does (an unreadable one becomes its ItemError)
        and run in batches of `batch_size` (default: the ensemble's max_batch_size). A batch
        that fails as a whole raises `BatchError` carrying every answer, as in the SDK.
        """
        size = max(1, batch_size or self.max_batch)
        part = Collector(0, len(images))

        def encode(item: object, index: int) -> EncodedImage:
            return encode_one(
                item, index, max_pixels=self.max_pixels, size=self.preprocessing.image_size
            )

        ready = part.encode(list(images), encode)
        for start in range(0, len(ready), size):
            chunk = ready[start : start + size]
            try:
                part.answered(chunk, self._run(chunk))
            except Exception as exc:  # ORT failed on this batch: its images get the error
                error = InspectionError(f"offline inference failed: {type(exc).__name__}: {exc}")
                part.failed(chunk, error)
        return finish([part], True)  # type: ignore[return-value]


def predict(
    repo: Path | str,
    images: Sequence[ImageLike],
    *,
    precision: str | None = None,
    threads: int = 0,
) -> list[Outcome]:
    """`OfflinePredictor(repo, ...).predict(images)` in one call."""
    with OfflinePredictor(repo, precision=precision, threads=threads) as predictor:
        return predictor.predict(images)
