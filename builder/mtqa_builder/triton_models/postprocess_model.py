"""Triton python model `mtqa_postprocess`: logits -> probabilities, decisions, masks, regions.

`item_error` (one message per image, "" when preprocess decoded it) passes through unchanged; the
images it marks get empty results (see postprocess_core.postprocess).
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent
_UTILS = importlib.util.spec_from_file_location(f"{__name__}_utils", _HERE / "backend_utils.py")
utils = importlib.util.module_from_spec(_UTILS)
_UTILS.loader.exec_module(utils)
_INPUTS = ("presence_logits", "seg_logits", "grade_logits", "orig_size")


class TritonPythonModel:
    """Applies the checkpoint's per-class thresholds (thresholds.json in the version dir)."""

    def initialize(self, args):
        self.core = utils.sibling("postprocess_core")
        classes = (_HERE / "labels.txt").read_text().split("\n")
        classes = [c for c in classes if c]
        thresholds = json.loads((_HERE / "thresholds.json").read_text())
        self.presence_thr = self.core.threshold_vector(thresholds, "presence", classes)
        self.seg_thr = self.core.threshold_vector(thresholds, "segmentation", classes)
        self.outputs = [o["name"] for o in json.loads(args["model_config"])["output"]]
        # how preprocess fitted each image into the input (same file, same rule)
        self.pre = utils.sibling("preprocess")
        geometry = json.loads((_HERE / "postprocess.json").read_text())
        self.size, self.resize = int(geometry["image_size"]), geometry.get("resize", "squash")

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
                tensors = [
                    pb_utils.Tensor(n, np.ascontiguousarray(result[n])) for n in self.outputs
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # one bad request must not take the instance down
                error = pb_utils.TritonError(f"postprocess failed: {type(exc).__name__}: {exc}")
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses
