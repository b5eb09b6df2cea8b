"""Finding the `tritonserver` binary and preparing the python backend directory it loads.

Order: `$MTQA_TRITONSERVER`, then `tritonserver` on PATH (the NGC image), then the binary bundled in
the nvidia-pytriton wheel. The bundle's backend needs a directory `python/` holding the backend
library, `triton_python_backend_utils.py` and the stub built for the running Python version.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from mtqa_serving.errors import ServerNotFoundError

ENV_BINARY = "MTQA_TRITONSERVER"
NGC_BACKENDS = Path("/opt/tritonserver/backends")


def pytriton_root() -> Path | None:
    """Return `<site-packages>/pytriton/tritonserver` when nvidia-pytriton is installed."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    return root if root.is_dir() else None


def find_tritonserver() -> Path:
    """Locate the server binary, raising ServerNotFoundError with every place that was tried."""
    tried = []
    override = os.environ.get(ENV_BINARY)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ServerNotFoundError(f"${ENV_BINARY}={override} is not an executable file")
    on_path = shutil.which("tritonserver")
    if on_path:
        return Path(on_path)
    tried.append("tritonserver on PATH")
    root = pytriton_root()
    if root is not None and (root / "bin" / "tritonserver").is_file():
        return root / "bin" / "tritonserver"
    tried.append("the nvidia-pytriton wheel (pip install nvidia-pytriton==0.7.0)")
    raise ServerNotFoundError(f"tritonserver not found; tried ${ENV_BINARY}, " + ", ".join(tried))


def backend_directory(binary: Path, workdir: Path) -> Path:
    """Return a backend directory for `binary`, building one under `workdir` for the bundle.

    An NGC-style install already has a complete `backends/` next to `bin/`; the pytriton bundle has
    the stubs in a separate folder, so we assemble `workdir/backends/python/` from symlinks.
    """
    installed = binary.resolve().parent.parent / "backends"
    if (installed / "python" / "triton_python_backend_stub").is_file():
        return installed
    root = pytriton_root()
    if root is None or binary.resolve() != (root / "bin" / "tritonserver").resolve():
        if NGC_BACKENDS.is_dir():
            return NGC_BACKENDS
        raise ServerNotFoundError(f"no python backend found for {binary}")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    sources = {
        "libtriton_python.so": root / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": root / "backends/python/triton_python_backend_utils.py",
        "triton_python_backend_stub": root
        / "python_backend_stubs"
        / version
        / "triton_python_backend_stub",
    }
    missing = [str(p) for p in sources.values() if not p.is_file()]
    if missing:
        raise ServerNotFoundError(
            f"the nvidia-pytriton bundle lacks python backend files for Python {version}: "
            + ", ".join(missing)
        )
    python_dir = workdir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (python_dir / name).symlink_to(source)
    return python_dir.parent
