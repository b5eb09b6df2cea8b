"""Triton python model `mtqa_preprocess`: encoded image bytes -> normalised model input.

It imports `decode.py` and `preprocess.py`, verbatim copies of mtqa/data/decode.py and
mtqa/data/preprocess.py made at build time, so serving decodes (bounded by `max_pixels`, checked
from the header before decoding), resizes and normalises exactly as training did. The images of
one request are decoded on `decode_threads` threads (pillow's decode and resize release the GIL),
so a lone multi-image request uses every core.

An image that cannot be decoded fails alone: its slot gets a blank (all-zero) input, orig_size
(0, 0) and its reason in `item_error` ("" for every answered image); the postprocess model carries
that error through to the client, and the other images of the request are answered.

Where the build left a drift fingerprint (drift_reference.json, drift.py), decoded images are
scored against it and exported on Triton's metrics port, labelled `model`/`version` (the gauges
also `model_instance`: each instance has its own window; read them with `max by (model)`):
`mtqa_input_drift_score` (gauge: `Reference.shift` of the instance's last `drift.WINDOW` scored
images: colour means, contrast, grey-level bins, original size),
`mtqa_input_drift_group_score{group="brightness|contrast|histogram|size"}` (gauge: the largest
within each of `drift.GROUPS`, read off the same shifts, so an alert can say what drifted),
`mtqa_input_images_scored_total` and `mtqa_input_outside_reference_total` (images with a
statistic outside the reference's range), sent every `metrics_interval_s` seconds (default 1)
by `utils.DeferredMetrics`.
Each instance scores the images of at most one request every `drift_interval_ms` (default 250;
0 scores every request): a sample that does not depend on the images reads the same drift, at a
cost that stops growing with the load (the statistics took ~90 us of stub CPU an image under
load, 2026-12-07). `business_metrics: "off"` turns drift and metrics off.
"""

import ctypes
import ctypes.util
import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent
_UTILS = importlib.util.spec_from_file_location(f"{__name__}_utils", _HERE / "backend_utils.py")
utils = importlib.util.module_from_spec(_UTILS)
_UTILS.loader.exec_module(utils)


# After a request whose images held more original pixels than this, freed decode buffers are
# handed back to the OS (glibc keeps them in per-thread arenas otherwise, and the stub's RSS stays
# at its peak after one large request).
_TRIM_PIXELS = 8_000_000


def _malloc_trim():
    """glibc's malloc_trim(0) where it exists (a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class TritonPythonModel:
    """Decodes each request's images; an undecodable image fails its own slot only."""

    def initialize(self, args):
        self.pre = utils.sibling("preprocess")
        self.decode = utils.sibling("decode")
        params = json.loads((_HERE / "preprocess.json").read_text())
        self.size, self.mean, self.std = params["image_size"], params["mean"], params["std"]
        self.resize = params.get("resize", "squash")
        config = json.loads(args["model_config"])
        parameters = utils.parameters(config)
        threads = int(parameters.get("decode_threads", "1"))
        default = str(self.decode.DEFAULT_MAX_PIXELS)
        self.max_pixels = int(parameters.get("max_pixels", default))
        self.pool = ThreadPoolExecutor(threads, "decode") if threads > 1 else None
        self.blank = np.zeros((3, self.size, self.size), dtype=np.float32)
        self.trim = _malloc_trim()
        self.drift = None
        if parameters.get("business_metrics") != "off" and (_HERE / "drift.py").is_file():
            self.drift = self._open_drift(args)

    def _open_drift(self, args):
        """(module, reference, window, gauge, scored, outside, group gauges by name), or None
        (logged) without metrics."""
        try:
            drift = utils.sibling("drift")
            reference = drift.Reference.from_dict(
                json.loads((_HERE / "drift_reference.json").read_text())
            )
            labels = {"model": args["model_name"], "version": str(args["model_version"])}
            kinds = pb_utils.MetricFamily
            self.families = [
                pb_utils.MetricFamily(name=name, description=text, kind=kind)
                for name, text, kind in (
                    ("mtqa_input_drift_score", "Largest drift |z| of recent images", kinds.GAUGE),
                    ("mtqa_input_images_scored_total", "Images scored for drift", kinds.COUNTER),
                    (
                        "mtqa_input_outside_reference_total",
                        "Images with a statistic outside the build's reference range",
                        kinds.COUNTER,
                    ),
                )
            ]
            # Each instance keeps its own window, so its gauges carry the instance's name: with the
            # same labels, two instances' set() calls would overwrite one series, last flush wins.
            # The counters stay shared (their increments add up on one series).
            own = labels | {"model_instance": args.get("model_instance_name", "")}
            gauge, *counters = self.families
            metrics = [gauge.Metric(labels=own), *(f.Metric(labels=labels) for f in counters)]
            by_group = pb_utils.MetricFamily(
                name="mtqa_input_drift_group_score",
                description="Largest drift |z| of recent images within a group of statistics",
                kind=kinds.GAUGE,
            )
            self.families.append(by_group)
            groups = {
                name: by_group.Metric(labels=own | {"group": name}) for name, _ in reference.groups
            }
            parameters = utils.parameters(json.loads(args["model_config"]))
            self.deferred = utils.DeferredMetrics(float(parameters.get("metrics_interval_s", "1")))
            self.drift_gap_s = float(parameters.get("drift_interval_ms", "250")) / 1000
            self.drift_next = 0.0
            return (drift, reference, drift.DriftWindow(reference), *metrics, groups)
        except Exception as exc:  # no metrics on this server: serve without drift
            pb_utils.Logger.log_warn(f"mtqa_preprocess: input drift off: {exc}")
            return None

    def _score_drift(self, images, sizes, decoded):
        """Score the decoded images of one request; a failure is logged, never raised."""
        try:
            drift, reference, window, gauge, scored, outside, groups = self.drift
            now = time.monotonic()
            if not decoded.any() or now < self.drift_next:
                return
            self.drift_next = now + self.drift_gap_s
            if not decoded.all():
                images, sizes = images[decoded], sizes[decoded]
            stats = drift.image_stats(images, sizes, reference.edges)
            self.deferred.set(gauge, window.add(stats))
            for name, value in window.by_group.items():
                self.deferred.set(groups[name], value)
            out = int(reference.outside(stats).sum())
            self.deferred.add_many([(outside, out), (scored, len(stats))])
        except Exception as exc:
            pb_utils.Logger.log_error(f"mtqa_preprocess: drift update failed: {exc}")

    def finalize(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.drift is not None:
            self.deferred.close()

    def _one(self, data):
        """(input, (h, w), "") for a good image; (blank, (0, 0), reason) for a bad one."""
        try:
            if isinstance(data, np.ndarray):  # Triton may hand BYTES elements as 0-d arrays
                data = data.item()
            data = bytes(data)
            if not data:
                raise self.decode.DecodeError("empty image data (0 bytes)")
            decoded = self.decode.decode_image(data, size=self.size, max_pixels=self.max_pixels)
            x = self.pre.preprocess_image(decoded.rgb, self.size, self.mean, self.std, self.resize)
            return x, decoded.orig_hw, ""
        except Exception as exc:  # the client's data: reported in this slot, never raised
            return self.blank, (0, 0), f"{type(exc).__name__}: {exc}"

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                raw = pb_utils.get_input_tensor_by_name(request, "image_bytes").as_numpy()
                items = raw.reshape(raw.shape[0], -1)[:, 0]
                run = self.pool.map if self.pool is not None and len(items) > 1 else map
                done = list(run(self._one, items))
                images = np.stack([d[0] for d in done])  # float32 from normalise
                sizes = np.asarray([d[1] for d in done], dtype=np.int32).reshape(-1, 2)
                errors = np.array([[d[2].encode()] for d in done], dtype=np.object_)
                pixels = int(np.prod(sizes.astype(np.int64), axis=1).sum())
                if self.trim is not None and pixels > _TRIM_PIXELS:
                    self.trim(0)
                if self.drift is not None:
                    self._score_drift(images, sizes, np.array([not d[2] for d in done]))
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("images", images),
                            pb_utils.Tensor("orig_size", sizes),
                            pb_utils.Tensor("item_error", errors),
                        ]
                    )
                )
            except Exception as exc:  # a malformed request -> an error response, never a dead stub
                error = utils.invalid_arg(f"cannot preprocess image batch: {exc}")
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses
