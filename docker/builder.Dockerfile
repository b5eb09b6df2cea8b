# mtqa builder image: compiles TensorRT engines inside the SAME NGC release as the serving image
# (engines only load in the TensorRT version and GPU compute capability that built them) and writes
# an `ngc-trt` model repository. Release pinned in builder/mtqa_builder/versions.py (NGC_RELEASE).
# Build from the repository root: docker build -f docker/builder.Dockerfile .
ARG NGC_RELEASE=25.01
FROM nvcr.io/nvidia/tensorrt:${NGC_RELEASE}-py3

ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /opt/mtqa
COPY pyproject.toml setup.py README.md ./
COPY mtqa mtqa
COPY builder builder
COPY benchmarks benchmarks
COPY client client
# TensorRT's Python bindings come with the base image; the `gpu` extra would pull a second,
# mismatched TensorRT from PyPI, so it is deliberately not installed.
RUN pip install ./client .

WORKDIR /work
ENTRYPOINT ["mtqa", "build", "--target", "ngc-trt"]
CMD ["--help"]
