"""The swap itself: publish/resolve, load beside the old version, golden check, switch, retire.

Order of effects (each undone in reverse on failure, so the old version keeps serving):
0. the candidate's files are loaded as a scratch model and unloaded again (preflight: a version
   that fails to load must not fail on `mtqa_net`, see `ModelControl.preflight`);
1. `mtqa_net` is re-loaded with a config override whose version policy lists old and new;
2. the golden check runs through the SDK, pinned to each version;
3. `mtqa_inspect` is re-loaded with its `mtqa_net` step pinned to the new version;
4. `mtqa_net` is re-loaded without the old version (retired);
5. only then are both config.pbtxt files rewritten, so a restarted server serves what the live
   one does, and a swap interrupted before this point restarts on the old version.
Every attempt, successful or not, is appended to `mtqa_net/swap_history.jsonl`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtqa_builder.contract import ENSEMBLE, NET, THRESHOLDS, version_dir
from mtqa_builder.swap import history
from mtqa_builder.swap import repo as repository
from mtqa_builder.swap.control import ModelControl, version_files
from mtqa_builder.swap.errors import GoldenCheckError, SwapError, SwapFailedError, TargetError
from mtqa_builder.swap.golden import SYNTH, GoldenSet, golden_check, load_golden
from mtqa_client import InspectionClient, InspectionError


@dataclass(frozen=True)
class SwapRequest:
    """What `mtqa swap` was asked to do."""

    repo: Path
    to: str
    url: str
    golden: str = SYNTH
    golden_count: int = 16
    tolerance: float = 1.0
    precision: str | None = None
    timeout_s: float = 120.0
    key: str | None = field(default=None, repr=False)  # the server's control key


def _precision(repo: Path, version: int, manifest: dict[str, Any]) -> str | None:
    info = repository.variants(repo).get(str(version), {})
    return manifest.get("precision") or info.get("precision")


class _Swap:
    """One swap attempt: the state needed to undo what has been done so far."""

    def __init__(self, req: SwapRequest, log: Callable[[str], None]) -> None:
        self.req, self.log = req, log
        self.repo = Path(req.repo).resolve()
        self.net_cfg = repository.read_config(self.repo, NET)
        self.ens_cfg = repository.read_config(self.repo, ENSEMBLE)
        self.served = repository.served_versions(self.net_cfg)
        self.current = repository.pinned_step(self.ens_cfg, NET)
        self.control = ModelControl(req.url, req.timeout_s, key=req.key)
        self.done: list[str] = []  # steps started, in order
        self.current_manifest: dict[str, Any] = {}
        self.record: dict[str, Any] = {
            "id": uuid.uuid4().hex[:12],
            "started": history.now(),
            "url": req.url,
            "requested": req.to,
            "from": {"version": self.current},
            "checks": {},
            "steps": [],
        }

    def _step(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        self.log(f"{name} ...")
        self.done.append(name)  # before the call: a half-done step is undone too
        value = fn()
        self.record["steps"].append({"step": name, "seconds": round(time.monotonic() - start, 3)})
        return value

    def prepare(self) -> tuple[repository.Target, GoldenSet]:
        """Everything that does not touch the server: checks, target, golden set."""
        self.control.check_reachable()
        ready = self.control.ready_versions(NET)
        if self.current not in ready:
            raise TargetError(
                f"{NET} v{self.current} (pinned by {ENSEMBLE}) is not ready on {self.req.url} "
                f"(ready: {ready}); is this server serving {self.repo}?"
            )
        self.current_manifest = repository.load_manifest(self.repo, NET, self.current)
        self.record["from"]["precision"] = _precision(
            self.repo, self.current, self.current_manifest
        )
        target = repository.resolve(self.repo, self.req.to, self.current, self.req.precision)
        self.record["to"] = {
            "version": target.version,
            "precision": _precision(self.repo, target.version, target.manifest),
            "published_by_swap": target.published,
        }
        self.record["checks"]["manifest"] = {"files_match": True, "gate": _gate(target.manifest)}
        if target.version == self.current:
            raise TargetError(f"{NET} v{target.version} is already the serving version")
        params = repository.preprocessing(self.repo, self.ens_cfg)
        golden = load_golden(
            self.req.golden, target.manifest["classes"], params, self.req.golden_count
        )
        return target, golden

    def apply(self, target: repository.Target, golden: GoldenSet) -> None:
        """Steps 0-5 of the module docstring."""
        new = target.version

        def preflight() -> None:
            names = sorted(target.manifest["files"])
            current_names = sorted(self.current_manifest["files"])
            self.control.preflight(
                self.net_cfg,
                version_files(self.repo / NET / str(new), names),
                version_files(self.repo / NET / str(self.current), current_names),
            )

        self._step("preflight", preflight)
        self.record["checks"]["preflight"] = "loaded as a scratch model, then unloaded"
        both = repository.with_versions(self.net_cfg, [*self.served, self.current, new])
        self._step("load", lambda: self.control.load(both))
        thresholds = _thresholds(self.repo, new)

        def check() -> dict[str, Any]:
            with InspectionClient(self.req.url, connect_timeout_s=self.req.timeout_s) as client:
                return golden_check(
                    client,
                    golden,
                    self.current,
                    new,
                    target.manifest,
                    thresholds,
                    self.req.tolerance,
                )

        result = self._step("golden_check", check)
        self.record["checks"]["golden"] = result
        if not result["passed"]:
            raise GoldenCheckError("golden check failed: " + "; ".join(result["failures"]))
        switched = repository.with_pinned(self.ens_cfg, NET, new)
        self._step("switch", lambda: self.control.load(switched))
        kept = [v for v in self.served if v != self.current]
        retired = repository.with_versions(self.net_cfg, [*kept, new])
        self._step("retire", lambda: self.control.load(retired))

        def persist() -> None:
            repository.write_config(self.repo, retired)
            repository.write_config(self.repo, switched)

        self._step("persist", persist)

    def run(self) -> dict[str, Any]:
        """Prepare, apply, and on failure after the server was touched, roll back."""
        try:
            target, golden = self.prepare()
        except (SwapError, InspectionError) as exc:
            self.finish("rejected", error=str(exc))
            raise
        try:
            self.apply(target, golden)
        except BaseException as exc:  # whatever failed (even Ctrl-C), the old version must serve
            error = f"{type(exc).__name__}: {exc}"
            try:
                undone = self.rollback()
            except Exception as again:
                record = self.finish("rollback_failed", error=error, rollback_error=str(again))
                raise SwapFailedError(
                    f"swap failed ({error}) and the rollback failed too ({again}): check "
                    f"{self.req.url} by hand",
                    record,
                ) from exc
            record = self.finish("rolled_back", error=error, rollback=undone)
            raise SwapFailedError(
                f"swap to {NET} v{target.version} failed and was rolled back; v{self.current} "
                f"keeps serving. Cause: {error}",
                record,
            ) from exc
        self.log(f"swapped {NET} v{self.current} -> v{target.version}")
        return self.finish("swapped")

    def finish(self, outcome: str, **extra: Any) -> dict[str, Any]:
        """Complete the record and append it to the history."""
        record = {**self.record, **extra, "outcome": outcome, "finished": history.now()}
        history.append(self.repo / NET, record)
        return record

    def rollback(self) -> list[str]:
        """Undo the server-side steps done so far; returns what was undone."""
        undone = []
        if "persist" in self.done:
            repository.write_config(self.repo, self.net_cfg)
            repository.write_config(self.repo, self.ens_cfg)
            undone.append("config.pbtxt files restored")
        if "switch" in self.done:
            self.control.load(self.ens_cfg)
            undone.append(f"{ENSEMBLE} pinned back to {NET} v{self.current}")
        if "load" in self.done or "retire" in self.done:
            self.control.load(self.net_cfg)
            undone.append(f"{NET} reloaded with versions {self.served}")
        if not self.control.version_ready(NET, self.current):
            raise SwapError(f"{NET} v{self.current} is not ready after the rollback")
        return undone


def _gate(manifest: dict[str, Any]) -> str:
    gate = manifest.get("gate")
    if not isinstance(gate, dict):
        return "not gated offline (published by mtqa swap): the golden check is its gate"
    return "passed" if gate.get("passed", True) else "failed"


def _thresholds(repo: Path, version: int) -> dict[str, Any]:
    path = version_dir(repo, NET, version) / THRESHOLDS
    return json.loads(path.read_text()) if path.is_file() else {}


def swap(req: SwapRequest, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Swap the serving `mtqa_net` version; returns the history record of the successful swap.

    Raises a `SwapError`: a rejected swap changed nothing on the server; `SwapFailedError` means
    the server was touched and rolled back. Both are recorded in the history.
    """
    net_dir = Path(req.repo).resolve() / NET
    if not net_dir.is_dir():
        raise TargetError(f"{net_dir} missing: is {req.repo} an mtqa model repository?")
    with history.swap_lock(net_dir):
        attempt = _Swap(req, log)
        try:
            return attempt.run()
        finally:
            attempt.control.close()
