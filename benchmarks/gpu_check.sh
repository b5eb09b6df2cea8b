#!/usr/bin/env bash
# GPU reference in one prepared run (at most 8 minutes): PyTorch CUDA throughput of the mtqa network
# (fp32/bf16/fp16 autocast, batch 1..256, eager and CUDA graphs). Needs only torch (+ PyYAML) and
# this repository; writes benchmarks/results/gpu_reference.json, and copies it to $OUT when set
# (the device runner's return folder). Extra arguments go to gpu_check.py, e.g. --run RUN.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
# 360 s of sweep budget plus start-up stays inside the 8-minute limit; timeout is the backstop.
timeout 470 "$PY" benchmarks/mtqa_bench/gpu_check.py --budget-s 360 "$@"
if [[ -n "${OUT:-}" ]]; then
  cp benchmarks/results/gpu_reference.json "$OUT/"
fi
