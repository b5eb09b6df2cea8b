"""Triton python model `mtqa_postprocess`: logits -> probabilities, decisions, masks, regions.

`item_error` (one message per image, "" when preprocess decoded it) passes through unchanged; the
images it marks get empty results (see postprocess_core.postprocess).

It also exports what it finds on Triton's metrics port (python-backend custom metrics), labelled
`model`/`version` like Triton's own `nv_*` series: `mtqa_images_inspected_total`,
`mtqa_images_failed_total`, `mtqa_defects_total{class}` (images decided to hold the class),
`mtqa_regions_total{class}`, `mtqa_grade_total{grade}`, and the histograms
`mtqa_presence_probability{class}` and `mtqa_regions_per_image` (`_bucket{le}`, `_sum`,
`_count`, written as counters: the backend's HISTOGRAM kind takes one blocking `observe` per
value). `execute` only keeps each request's outputs; once every `metrics_interval_s` seconds
(parameter, default 1) `utils.DeferredMetrics` has them tallied (numpy, all requests at once) and
sends the sums to Triton. `business_metrics: "off"` turns them off.
"""

import importlib.util
import json
import threading
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent
_UTILS = importlib.util.spec_from_file_location(f"{__name__}_utils", _HERE / "backend_utils.py")
utils = importlib.util.module_from_spec(_UTILS)
_UTILS.loader.exec_module(utils)
_INPUTS = ("presence_logits", "seg_logits", "grade_logits", "orig_size")


def _family(name, description):
    return pb_utils.MetricFamily(
        name=name, description=description, kind=pb_utils.MetricFamily.COUNTER
    )


class BusinessMetrics:
    """The inspection counters and histograms of one model instance (created at initialize)."""

    def __init__(self, core, deferred, model, version, classes, grades):
        base = {"model": model, "version": str(version)}
        # Families are kept: a Metric must not outlive its MetricFamily.
        self.families = {
            key: _family(name, text)
            for key, name, text in (
                ("images", "mtqa_images_inspected_total", "Images answered"),
                ("failed", "mtqa_images_failed_total", "Images that failed decoding"),
                ("defects", "mtqa_defects_total", "Images decided to hold a class"),
                ("regions", "mtqa_regions_total", "Defect regions listed per class"),
                ("grades", "mtqa_grade_total", "Images per predicted grade"),
                ("p_bucket", "mtqa_presence_probability_bucket", "Presence probability <= le"),
                ("p_sum", "mtqa_presence_probability_sum", "Sum of presence probabilities"),
                ("p_count", "mtqa_presence_probability_count", "Presence probabilities seen"),
                ("r_bucket", "mtqa_regions_per_image_bucket", "Images with <= le regions"),
                ("r_sum", "mtqa_regions_per_image_sum", "Sum of regions per image"),
                ("r_count", "mtqa_regions_per_image_count", "Images counted for regions"),
            )
        }
        f = self.families
        les = [core.bucket_label(b) for b in (*core.PROBABILITY_BUCKETS, float("inf"))]
        region_les = [core.bucket_label(b) for b in (*core.REGION_BUCKETS, float("inf"))]
        per_class = [{**base, "class": c} for c in classes]
        self.images = f["images"].Metric(labels=base)
        self.failed = f["failed"].Metric(labels=base)
        self.defects = [f["defects"].Metric(labels=lab) for lab in per_class]
        self.regions = [f["regions"].Metric(labels=lab) for lab in per_class]
        self.grades = [f["grades"].Metric(labels={**base, "grade": g}) for g in grades]
        self.p_buckets = [
            [f["p_bucket"].Metric(labels={**lab, "le": le}) for le in les] for lab in per_class
        ]
        self.p_sum = [f["p_sum"].Metric(labels=lab) for lab in per_class]
        self.p_count = [f["p_count"].Metric(labels=lab) for lab in per_class]
        self.r_buckets = [f["r_bucket"].Metric(labels={**base, "le": le}) for le in region_les]
        self.r_sum = f["r_sum"].Metric(labels=base)
        self.r_count = f["r_count"].Metric(labels=base)
        self.core, self.n_grades = core, len(grades)
        # One flat list, in the order `drain` lays out the tallies.
        self.counters = [self.images, self.failed, self.r_sum, self.r_count]
        for group in (self.defects, self.regions, self.grades, self.p_sum, self.p_count):
            self.counters += group
        self.counters += self.r_buckets + [m for row in self.p_buckets for m in row]
        self._lock, self._pending = threading.Lock(), []
        deferred.add_source(self.drain)

    def record(self, result, valid):
        """Keep one request's outcome (postprocess outputs, bool [B] decoded images) for the next
        flush: a few references here; `drain` tallies them all at once off the request path (per
        request, the ~35 small numpy calls of `tallies` took ~140 us of stub CPU under load)."""
        item = (
            result["presence_decision"],
            result["regions"][..., 0],
            result["grade_index"].reshape(-1),
            result["presence_prob"],
            np.asarray(valid, bool).reshape(-1),
        )
        with self._lock:
            self._pending.append(item)

    def drain(self):
        """[(counters, increments)] of the requests recorded since the last drain."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return []
        decision, region_class, grade, presence, valid = zip(*pending, strict=True)
        padded = np.full(
            (sum(len(c) for c in region_class), max(c.shape[1] for c in region_class)), -1.0
        )
        row = 0
        for classes in region_class:  # requests list up to different numbers of regions
            padded[row : row + len(classes), : classes.shape[1]] = classes
            row += len(classes)
        merged = {
            "presence_decision": np.concatenate(decision),
            "regions": padded[..., None],
            "grade_index": np.concatenate(grade),
            "presence_prob": np.concatenate(presence),
        }
        t = self.core.tallies(merged, np.concatenate(valid), self.n_grades)
        images = t["images"]
        vector = np.concatenate(
            [
                (images, t["failed"], t["region_sum"], images),
                t["defects"],
                t["regions"],
                t["grades"],
                t["presence_sum"],
                np.full(len(self.p_count), images),
                t["region_buckets"],
                t["presence_buckets"].ravel(),
            ],
            dtype=np.float64,
        )
        return [(self.counters, vector.tolist())]


class TritonPythonModel:
    """Applies the checkpoint's per-class thresholds (thresholds.json in the version dir)."""

    def initialize(self, args):
        self.core = utils.sibling("postprocess_core")
        classes = (_HERE / "labels.txt").read_text().split("\n")
        classes = [c for c in classes if c]
        thresholds = json.loads((_HERE / "thresholds.json").read_text())
        self.presence_thr = self.core.threshold_vector(thresholds, "presence", classes)
        self.seg_thr = self.core.threshold_vector(thresholds, "segmentation", classes)
        config = json.loads(args["model_config"])
        params = utils.parameters(config)
        self.outputs = [o["name"] for o in config["output"]]
        # how preprocess fitted each image into the input (same file, same rule)
        self.pre = utils.sibling("preprocess")
        geometry = json.loads((_HERE / "postprocess.json").read_text())
        self.size, self.resize = int(geometry["image_size"]), geometry.get("resize", "squash")
        self.metrics = None
        if params.get("business_metrics") != "off":
            self.metrics = self._open_metrics(args, params, classes)

    def _open_metrics(self, args, params, classes):
        """BusinessMetrics, or None (logged) where this server has no custom metrics."""
        manifest = _HERE / "manifest.json"
        grades = json.loads(manifest.read_text()).get("grades") if manifest.is_file() else None
        self.deferred = utils.DeferredMetrics(float(params.get("metrics_interval_s", "1.0")))
        try:
            return BusinessMetrics(
                self.core,
                self.deferred,
                args["model_name"],
                args["model_version"],
                classes,
                grades or [],
            )
        except Exception as exc:  # e.g. --allow-metrics=false: serve without them
            self.deferred.close()
            pb_utils.Logger.log_warn(f"mtqa_postprocess: business metrics off: {exc}")
            return None

    def finalize(self):
        if self.metrics is not None:
            self.deferred.close()

    def _content(self, orig_size):
        return np.asarray(
            [self.pre.fit_size(int(h), int(w), self.size, self.resize) for h, w in orig_size],
            dtype=np.int32,
        ).reshape(-1, 2)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                arrays = [pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in _INPUTS]
                errors = pb_utils.get_input_tensor_by_name(request, "item_error")
                errors = None if errors is None else errors.as_numpy().reshape(-1, 1)
                valid = None if errors is None else np.array([not e for e in errors[:, 0]])
                content = self._content(np.maximum(arrays[3].reshape(-1, 2), 1))
                result = self.core.postprocess(
                    *arrays, self.presence_thr, self.seg_thr, valid, content
                )
                if errors is not None:
                    result["item_error"] = errors
                if self.metrics is not None:
                    self._record(result, valid)
                tensors = [
                    pb_utils.Tensor(n, np.ascontiguousarray(result[n])) for n in self.outputs
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # one bad request must not take the instance down
                error = pb_utils.TritonError(f"postprocess failed: {type(exc).__name__}: {exc}")
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses

    def _record(self, result, valid):
        """Count one request; a metrics failure is logged and never fails the request."""
        batch = len(result["grade_index"])
        try:
            self.metrics.record(result, np.ones(batch, bool) if valid is None else valid)
        except Exception as exc:
            pb_utils.Logger.log_error(f"mtqa_postprocess: metrics update failed: {exc}")
