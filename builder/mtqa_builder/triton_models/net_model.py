"""Triton python model `mtqa_net` (local target): runs the version's model.onnx on ONNX Runtime.

The bundled CPU tritonserver has only the python backend, so this model stands in for the
`onnxruntime_onnx` backend used on NGC hosts. The requests of a batch run through
`ort_plan.LaneRunner`: cut into chunks of at most `chunk_images` images and spread over
`lane_sessions` ORT sessions at once, outputs written in place per request. A version with a
`runtime.json` (the OpenVINO variants) runs the same file on OpenVINO through `ov_plan.OvRunner`:
`lane_sessions` streams sharing `lane_sessions x intra_op_threads` threads, same outputs.
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


ort_plan = utils.sibling("ort_plan")


class TritonPythonModel:
    """`lane_sessions` ORT sessions per instance; sizes come from the config's parameters."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = utils.parameters(config)
        self.outputs = [o["name"] for o in config["output"]]
        threads = int(params.get("intra_op_threads", "1"))
        lanes = int(params.get("lane_sessions", "1"))
        chunk = int(params.get("chunk_images", "0"))
        if (_HERE / "runtime.json").is_file():
            ov_plan = utils.sibling("ov_plan")
            runtime = ov_plan.read_runtime(_HERE)
            self.runner = ov_plan.open_runner(
                _HERE / "model.onnx",
                runtime["inference_precision"],
                threads * lanes,
                lanes,
                chunk,
                self.outputs,
            )
        else:
            self.runner = ort_plan.open_runner(
                _HERE / "model.onnx", threads, lanes, chunk, self.outputs
            )

    def finalize(self):
        self.runner.close()

    def execute(self, requests):
        parts = [pb_utils.get_input_tensor_by_name(r, "images").as_numpy() for r in requests]
        # Non-finite input would come back as finite, meaningless logits: refuse it per request.
        finite = [bool(np.isfinite(p).all()) for p in parts]
        try:
            results = iter(self.runner.run([p for p, ok in zip(parts, finite, strict=True) if ok]))
        except Exception as exc:  # fail this batch's requests, keep the instance alive
            error = pb_utils.TritonError(f"mtqa_net inference failed: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        responses = []
        for ok in finite:
            if not ok:
                error = utils.invalid_arg("images hold NaN or Inf")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            tensors = [
                pb_utils.Tensor(name, out)
                for name, out in zip(self.outputs, next(results), strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
