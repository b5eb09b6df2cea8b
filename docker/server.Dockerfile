# mtqa serving image: NGC Triton (same release as the TensorRT builder image, so engines match)
# plus the Python packages the python-backend models import. The model repository is mounted at
# /models (compose volume, Kubernetes PersistentVolumeClaim); nothing model-specific is baked in.
# Release pinned in builder/versions.py (NGC_RELEASE); tests/test_docker.py checks they agree.
ARG NGC_RELEASE=25.01
FROM nvcr.io/nvidia/tritonserver:${NGC_RELEASE}-py3

# Ubuntu 24.04 based NGC images mark the system Python as externally managed (PEP 668).
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements-server.txt /opt/mtqa/requirements-server.txt
RUN pip install -r /opt/mtqa/requirements-server.txt

EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://localhost:8000/v2/health/ready', timeout=2)"
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", \
     "--load-model=*", "--strict-readiness=true", "--allow-metrics=true", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", "--exit-timeout-secs=30"]
