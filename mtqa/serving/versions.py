"""Pinned NVIDIA NGC release shared by the serving image, the TensorRT builder image and manifests.

TensorRT engines only load in the TensorRT version (and GPU compute capability) that built them, so
the builder image and the serving image must come from the same NGC release. 24.10 ships Triton
2.51.0, the same server version bundled in nvidia-pytriton 0.7.0 that serves locally.
"""

from __future__ import annotations

NGC_RELEASE = "24.10"
TRITON_VERSION = "2.51.0"
TENSORRT_VERSION = "10.5.0"
TRITON_IMAGE = f"nvcr.io/nvidia/tritonserver:{NGC_RELEASE}-py3"
TENSORRT_IMAGE = f"nvcr.io/nvidia/tensorrt:{NGC_RELEASE}-py3"
