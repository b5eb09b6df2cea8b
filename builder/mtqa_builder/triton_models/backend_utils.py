"""Helpers shared by the python-backend models, copied next to each version's model.py.

A model.py loads this file by path (see `_UTILS` there): the backend does not put the version
dir on sys.path.
"""

import importlib.util
from pathlib import Path

import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent


def sibling(name):
    """Import a module that sits next to this file, under a name unique to this model version."""
    unique = f"_mtqa_{_HERE.parent.name}_v{_HERE.name}_{name}"
    spec = importlib.util.spec_from_file_location(unique, _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parameters(config):
    """The `parameters` of a model config (the JSON Triton hands to `initialize`) as strings."""
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def invalid_arg(message):
    """An INVALID_ARG error where this Triton knows error codes (2.51 does), else a plain one."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(*((message, code) if code is not None else (message,)))
