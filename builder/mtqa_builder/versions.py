"""The one place where the NGC / TensorRT versions this project targets are pinned.

Engines are tied to the exact TensorRT version and GPU compute capability, so the image that
compiles them (docker/ builder image) and the image that serves them must be the same NGC release.
The serving engineer reads `TRITON_IMAGE` from here for docker/.
"""

from __future__ import annotations

# NGC release 25.01: Triton 2.54.0, TensorRT 10.8.0, CUDA 12.8 (NGC support matrix, 25.01).
NGC_RELEASE = "25.01"
TRITON_VERSION = "2.54.0"
TENSORRT_VERSION = "10.8.0"
TENSORRT_MAJOR = 10
CUDA_VERSION = "12.8"
TRITON_IMAGE = f"nvcr.io/nvidia/tritonserver:{NGC_RELEASE}-py3"
TENSORRT_IMAGE = f"nvcr.io/nvidia/tensorrt:{NGC_RELEASE}-py3"

# Opset used for every exported ONNX file (TensorRT 10.x parses opsets 9..22).
ONNX_OPSET = 18
