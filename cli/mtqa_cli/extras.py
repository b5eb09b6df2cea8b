"""Optional installs (`pip install 'mtqa[EXTRA]'`) a command needs, checked before it starts.

The base install builds and runs the tools around a served model; training and evaluation,
serving, benchmarking and the GPU path are extras (pyproject.toml). A command that lacks one
fails with a line naming the extra to install, not an ImportError halfway through its work.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

# The modules each extra brings that our code imports (or runs: locust is started as a process).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("matplotlib", "pycocotools"),  # efficientnet weights: model.pretrained says so
    "serve": ("pytriton",),
    "bench": ("locust", "fastapi", "uvicorn", "matplotlib"),
    "gpu": ("tensorrt",),
}


class MissingExtraError(Exception):
    """A command needs an optional install that is not there."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


def _server_elsewhere() -> bool:
    """True when a tritonserver other than the nvidia-pytriton bundle is found (an NGC image,
    $MTQA_TRITONSERVER): `mtqa serve` then runs without the `serve` extra."""
    from mtqa_serving.binary import ENV_BINARY, find_tritonserver
    from mtqa_serving.errors import ServerNotFoundError

    if not (os.environ.get(ENV_BINARY) or shutil.which("tritonserver")):
        return False
    try:
        find_tritonserver()
    except ServerNotFoundError:
        return False
    return True


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not installed (none when a tritonserver stands in for
    the `serve` extra's bundle)."""
    absent = [m for m in EXTRA_MODULES[extra] if not _installed(m)]
    if extra == "serve" and absent and _server_elsewhere():
        return []
    return absent


def require(*extras: str) -> None:
    """Raise MissingExtraError naming the first extra in `extras` that is not installed."""
    for extra in extras:
        absent = missing(extra)
        if absent:
            raise MissingExtraError(
                f"needs the '{extra}' extra ({', '.join(absent)} not installed): "
                f"pip install 'mtqa[{extra}]'"
            )
