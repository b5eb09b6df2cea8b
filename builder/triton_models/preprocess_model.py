"""Triton python model `mtqa_preprocess`: encoded image bytes -> normalised model input.

It imports `preprocess.py`, a verbatim copy of mtqa/data/preprocess.py made at build time, so
serving decodes, resizes and normalises exactly as training did. The images of one request are
decoded on `decode_threads` threads (pillow's decode and resize release the GIL), so a lone
multi-image request uses every core.
"""

import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent
_UTILS = importlib.util.spec_from_file_location(f"{__name__}_utils", _HERE / "backend_utils.py")
utils = importlib.util.module_from_spec(_UTILS)
_UTILS.loader.exec_module(utils)


class TritonPythonModel:
    """Decodes each request's images; undecodable bytes fail that request only."""

    def initialize(self, args):
        self.pre = utils.sibling("preprocess")
        params = json.loads((_HERE / "preprocess.json").read_text())
        self.size, self.mean, self.std = params["image_size"], params["mean"], params["std"]
        config = json.loads(args["model_config"])
        threads = int(utils.parameters(config).get("decode_threads", "1"))
        self.pool = ThreadPoolExecutor(threads, "decode") if threads > 1 else None

    def finalize(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def _one(self, data):
        if isinstance(data, np.ndarray):  # Triton may hand BYTES elements as 0-d object arrays
            data = data.item()
        rgb = self.pre.decode_image(bytes(data))
        return self.pre.preprocess_image(rgb, self.size, self.mean, self.std), rgb.shape[:2]

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
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("images", images),
                            pb_utils.Tensor("orig_size", sizes),
                        ]
                    )
                )
            except Exception as exc:  # bad bytes -> an error response, never a dead instance
                error = utils.invalid_arg(f"cannot preprocess image: {exc}")  # the client's data
                responses.append(pb_utils.InferenceResponse(error=error))
        return responses
