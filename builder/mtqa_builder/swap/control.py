"""Model control on a running Triton through gRPC: load a model with a config override, read state.

Triton's load API takes the whole model config as JSON (`load_model(name, config=...)`); with it
the server ignores config.pbtxt, so the new version policy takes effect without touching the
repository until the swap has succeeded. A (re)load keeps serving the versions that stay in the
policy and only returns once every listed version is ready (or failed).

Model control is restricted by the server's control key (docs/serving.md): every call carries it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException

from mtqa_builder.configs import mc
from mtqa_builder.swap.errors import ControlError, ServerUnreachableError
from mtqa_client.control_key import CONTROL_KEY_ENV, control_headers

PREFLIGHT = "mtqa_net_swap_preflight"


class ModelControl:
    """Load/unload/readiness calls against one server (`url` is gRPC host:port, `key` the
    server's control key, sent with every call)."""

    def __init__(self, url: str, timeout_s: float = 120.0, key: str | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._headers = control_headers(key)
        self._client = grpcclient.InferenceServerClient(url)

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, headers=self._headers, **kwargs)
        except InferenceServerException as exc:
            hint = ""
            if "restricted" in (exc.message() or ""):
                hint = (
                    " (model control needs the server's control key: --key-file or"
                    f" ${CONTROL_KEY_ENV}{'; the key given was refused' if self._headers else ''})"
                )
            raise ControlError(f"{what} failed on {self.url}: {exc.message()}{hint}") from None

    def check_reachable(self) -> None:
        """Fail with a clear message unless the server at `url` is live (ServerUnreachableError:
        the CLI tells it from a refused control call by its exit code)."""
        try:
            live = self._call("health check", self._client.is_server_live, client_timeout=5.0)
        except ControlError as exc:
            raise ServerUnreachableError(str(exc)) from None
        if not live:
            raise ServerUnreachableError(f"Triton at {self.url} is not live")

    def load(self, cfg: mc.ModelConfig) -> None:
        """(Re)load `cfg.name` with `cfg` as its config (blocks until loaded or failed)."""
        text = json_format.MessageToJson(cfg, preserving_proto_field_name=True)
        self._call(
            f"load {cfg.name} with versions {list(cfg.version_policy.specific.versions)}",
            self._client.load_model,
            cfg.name,
            config=text,
            client_timeout=self.timeout_s,
        )

    def ready_versions(self, model: str) -> list[int]:
        """Versions of `model` the server reports READY."""
        index = self._call(
            "repository index", self._client.get_model_repository_index, as_json=True
        )
        return sorted(
            int(row["version"])
            for row in index.get("models", [])
            if row.get("name") == model and row.get("state") == "READY" and row.get("version")
        )

    def version_ready(self, model: str, version: int) -> bool:
        """True when `model` version `version` answers ready."""
        return bool(
            self._call(
                f"readiness of {model} v{version}",
                self._client.is_model_ready,
                model,
                str(version),
                client_timeout=5.0,
            )
        )

    def _load_files(self, cfg: mc.ModelConfig, files: dict[str, bytes]) -> None:
        text = json_format.MessageToJson(cfg, preserving_proto_field_name=True)
        self._call(
            f"preflight load of {cfg.name}",
            self._client.load_model,
            cfg.name,
            config=text,
            files=files,
            client_timeout=self.timeout_s,
        )

    def wait_server_ready(self) -> None:
        """Wait (bounded) until the server reports ready again, e.g. after an unload."""
        deadline = time.monotonic() + self.timeout_s
        while not self._call("readiness", self._client.is_server_ready, client_timeout=5.0):
            if time.monotonic() > deadline:
                raise ControlError(f"{self.url} not ready {self.timeout_s:g} s after an unload")
            time.sleep(0.1)

    def preflight(self, cfg: mc.ModelConfig, candidate: dict[str, bytes], good: dict[str, bytes]):
        """Load the candidate version's files as a scratch model, then unload it.

        A version that fails to load stays UNAVAILABLE in Triton's model states and keeps the
        server's strict readiness false (new SDK clients then refuse to connect) until that same
        model/version loads or unloads cleanly. Trying the candidate under a scratch name keeps
        such a failure off `mtqa_net`; after one, the scratch version is loaded once with the
        serving version's files and unloaded, which clears the failed state.
        """
        scratch = mc.ModelConfig()
        scratch.CopyFrom(cfg)
        scratch.name = PREFLIGHT
        scratch.version_policy.Clear()
        scratch.version_policy.specific.versions.append(1)
        try:
            self._load_files(scratch, {f"file:1/{n}": data for n, data in candidate.items()})
        except ControlError:
            self._load_files(scratch, {f"file:1/{n}": data for n, data in good.items()})
            raise
        finally:
            self._call(f"unload {PREFLIGHT}", self._client.unload_model, PREFLIGHT)
            self.wait_server_ready()


def version_files(version_dir: Path, names: list[str]) -> dict[str, bytes]:
    """The named files of a version directory, for a load request's `files` override."""
    return {name: (version_dir / name).read_bytes() for name in names}
