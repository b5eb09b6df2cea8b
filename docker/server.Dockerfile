# mtqa serving image: NGC Triton (same release as the TensorRT builder image, so engines match)
# plus the Python packages the python-backend models import. The model repository is mounted at
# /models (compose volume, Kubernetes PersistentVolumeClaim); nothing model-specific is baked in.
# Release pinned in builder/mtqa_builder/versions.py (NGC_RELEASE); tests/test_docker.py checks they agree.
ARG NGC_RELEASE=25.01
FROM nvcr.io/nvidia/tritonserver:${NGC_RELEASE}-py3

# Ubuntu 24.04 based NGC images mark the system Python as externally managed (PEP 668).
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements-server.txt /opt/mtqa/requirements-server.txt
RUN pip install -r /opt/mtqa/requirements-server.txt

# HTTP stays on the container's loopback (health check only); gRPC and metrics are reachable.
# The control key comes from the environment at start (compose: docker/.env, Kubernetes: a
# Secret); without it the server does not start. Policy: docs/serving.md.
EXPOSE 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"
CMD ["sh", "-c", "exec tritonserver --model-repository=/models --model-control-mode=none \
--strict-readiness=true --allow-metrics=true --http-address=127.0.0.1 --http-port=8000 \
--grpc-address=0.0.0.0 --grpc-port=8001 --metrics-address=0.0.0.0 --metrics-port=8002 \
--grpc-restricted-protocol=model-repository,shared-memory,logging,trace:mtqa-control-key=${MTQA_CONTROL_KEY:?required} \
--http-restricted-api=model-repository,shared-memory,logging,trace:mtqa-control-key=${MTQA_CONTROL_KEY:?required} \
--exit-timeout-secs=30"]
