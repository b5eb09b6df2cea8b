"""Triton python model `mtqa_net` (local target): runs the version's model.onnx on ONNX Runtime.

The bundled CPU tritonserver has only the python backend, so this model stands in for the
`onnxruntime_onnx` backend used on NGC hosts. Requests gathered by the dynamic batcher are
concatenated into one ORT call, then split back per request.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent
_UTILS = importlib.util.spec_from_file_location(f"{__name__}_utils", _HERE / "backend_utils.py")
utils = importlib.util.module_from_spec(_UTILS)
_UTILS.loader.exec_module(utils)


class TritonPythonModel:
    """One ORT session per instance; thread counts come from the config's parameters."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(_HERE / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        parts = [pb_utils.get_input_tensor_by_name(r, "images").as_numpy() for r in requests]
        # Non-finite input would come back as finite, meaningless logits: refuse it per request.
        finite = [bool(np.isfinite(p).all()) for p in parts]
        good = [p for p, ok in zip(parts, finite, strict=True) if ok]
        try:
            # One request (batching off, or a lone one): feed it as is, no copy.
            feed = {"images": good[0] if len(good) == 1 else np.concatenate(good)} if good else None
            results = self.session.run(self.outputs, feed) if feed else []
        except Exception as exc:  # fail this batch's requests, keep the instance alive
            error = pb_utils.TritonError(f"mtqa_net inference failed: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        responses, start = [], 0
        for part, ok in zip(parts, finite, strict=True):
            if not ok:
                error = utils.invalid_arg("images hold NaN or Inf")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            stop = start + len(part)
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(out[start:stop]))
                for name, out in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses
