# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# torch, CPU or GPU, is chosen here, before the project's `torch>=2.4` resolves (on Linux PyPI
# would pull a CUDA build). Default: the CPU wheel from PyTorch's CPU index (a local wheel found
# through pip's find-links also serves; an unreachable index costs one retry). GPU hosts pick a
# CUDA build, e.g.
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128   (or TORCH_INDEX= for PyPI's)
# An environment that already imports torch keeps it.
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# The versions tested together (pip freeze of the direct dependencies).
CONSTRAINTS ?= constraints.txt
PYTEST_ARGS ?=

.PHONY: setup prometheus test test-slow demo lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml client/pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || \
	  $(PY) -m pip install '$(TORCH_SPEC)' $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --retries 1)
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ./client -e '.[all,dev]'
	touch $@

test: setup prometheus
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Debian's `prometheus` (with `promtool`) for the metrics and alert-rule tests, installed only
# where it is missing and apt-get exists (CI runs `make test` as root on a fresh machine); where it
# cannot be installed those tests skip and say so.
prometheus:
	@command -v prometheus >/dev/null || ! command -v apt-get >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus; } || \
	  echo "prometheus could not be installed: its tests will skip"

test-slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/mtqa demo --out results/demo

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) results runs
