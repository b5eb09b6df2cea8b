"""The newcomer's path on the CPU: data -> train -> evaluate -> build -> serve -> inspect -> bench.

Each step runs the public `mtqa` command a user would type (so its own progress shows) and leaves
a stamp holding the hash of its inputs; a re-run skips every step whose inputs did not change.
The server runs only for the steps that need it and is always stopped.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from mtqa import config as mtqa_config

console = Console()


@dataclass
class DemoPlan:
    """Where the demo writes and how big each step is (sized for < 10 minutes on 2 cores)."""

    out: Path
    config: str = "tiny"
    synth_images: int = 48
    precisions: str = "fp32,int8"
    bench_seconds: int = 5  # per point: ensemble + 2 raw variants + peers ~ 25 s
    bench_users: str = "8"
    inspect_images: int = 6
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def run(self) -> Path:
        return self.out / "run"

    @property
    def evaluation(self) -> Path:
        return self.out / "evaluation"

    @property
    def repo(self) -> Path:
        return self.out / "model_repository"

    @property
    def inspection(self) -> Path:
        return self.out / "inspection"

    @property
    def bench(self) -> Path:
        return self.out / "bench"


def _mtqa(*args: object, capture: Path | None = None) -> None:
    """Run one `mtqa` subcommand in a child process; fail the demo with its exit code."""
    cmd = [sys.executable, "-m", "mtqa_cli.main", *map(str, args)]
    console.print(f"[dim]$ mtqa {shlex.join(map(str, args))}[/dim]")
    if capture is None:
        proc = subprocess.run(cmd)
    else:
        capture.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        capture.write_text(proc.stdout)
        console.print(proc.stdout, end="", markup=False, highlight=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"demo step failed: mtqa {shlex.join(map(str, args))} (exit {proc.returncode})"
        )


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path) and part.is_file():
            h.update(part.read_bytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]


def _step(plan: DemoPlan, name: str, key: str, action: Callable[[], None]) -> None:
    """Run `action` unless its stamp says the same inputs already produced its outputs."""
    stamp = plan.out / ".stamps" / name
    console.rule(f"[bold]{name}")
    if stamp.is_file() and stamp.read_text() == key:
        console.print("[green]up to date[/green] (inputs unchanged; delete the stamp to redo)")
        return
    start = time.perf_counter()
    action()
    plan.timings[name] = round(time.perf_counter() - start, 1)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


def _sample_images(plan: DemoPlan) -> list[Path]:
    images = sorted((plan.data / "images" / "test").glob("*.png"))
    return images[: plan.inspect_images]


def run_demo(plan: DemoPlan) -> Path:
    """Run every step and return the path of the results index page."""
    from mtqa_serving import TritonServer

    plan.out.mkdir(parents=True, exist_ok=True)
    weights = plan.run / "model.safetensors"

    _step(
        plan,
        "1 data",
        _digest(plan.synth_images),
        lambda: _mtqa(
            "data",
            "synth",
            "--out",
            plan.data,
            "--n",
            plan.synth_images,
            "--size",
            128,
            "--seed",
            7,
        ),
    )
    _step(
        plan,
        "2 train",
        _digest(plan.config, Path(mtqa_config.__file__)),  # the presets live there
        lambda: _mtqa(
            "train",
            "--data",
            "synth",
            "--config",
            plan.config,
            "--out",
            plan.run,
        ),
    )
    _step(
        plan,
        "3 evaluate",
        _digest(weights),
        lambda: _mtqa(
            "evaluate",
            "--checkpoint",
            plan.run,
            "--data",
            "synth",
            "--split",
            "test",
            "--out",
            plan.evaluation,
            "--calibrate",
        ),
    )
    thresholds = plan.run / "thresholds.json"
    _step(
        plan,
        "4 build",
        _digest(weights, thresholds, plan.precisions),
        lambda: _mtqa(
            "build",
            "--checkpoint",
            plan.run,
            "--repo",
            plan.repo,
            "--precision",
            plan.precisions,
            "--calib",
            "synth",
            "--target",
            "local",
        ),
    )
    _mtqa("repo", "check", plan.repo)

    console.rule("[bold]5 serve")
    with TritonServer(plan.repo) as server:
        console.print(
            f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}, "
            f"metrics {server.metrics_url}"
        )
        console.rule("[bold]6 inspect")
        _mtqa(
            "inspect",
            *_sample_images(plan),
            "--url",
            server.grpc_url,
            "--overlays",
            plan.inspection,
            capture=plan.inspection / "table.txt",
        )
        _mtqa(
            "inspect",
            *_sample_images(plan),
            "--url",
            server.grpc_url,
            "--json",
            capture=plan.inspection / "results.json",
        )
        _step(
            plan,
            "7 bench",
            _digest(weights, plan.bench_seconds, plan.bench_users),
            lambda: _mtqa(
                "bench",
                "--url",
                server.grpc_url,
                "--repo-info",
                plan.repo,
                "--checkpoint",
                plan.run,
                "--users",
                plan.bench_users,
                "--duration",
                plan.bench_seconds,
                "--variants",
                plan.precisions,
                "--targets",
                "inspect,net",
                "--peers",
                "ort,naive",
                "--no-perf-analyzer",
                "--out",
                plan.bench,
            ),
        )
    console.print("Triton stopped.")
    index = write_index(plan)
    console.rule("[bold]done")
    console.print(f"Results: {index}")
    return index


def write_index(plan: DemoPlan) -> Path:
    """One Markdown page linking every artefact the demo produced."""

    def link(path: Path, text: str) -> str:
        rel = path.relative_to(plan.out)
        return f"- [{text}]({rel.as_posix()})" if path.exists() else f"- {text}: (missing)"

    overlays = sorted(plan.inspection.glob("*.png"))
    lines = [
        "# mtqa demo results",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `mtqa demo --out {plan.out}`.",
        "",
        "## Steps",
        link(plan.data, "synthetic dataset (indexed-mask format)"),
        link(plan.run / "config.json", "training config"),
        link(plan.run / "metrics.csv", "training log (per epoch)"),
        link(plan.run / "thresholds.json", "per-class thresholds chosen on val"),
        link(plan.evaluation / "report.md", "evaluation report"),
        link(plan.evaluation / "metrics.json", "evaluation metrics"),
        link(plan.repo, "Triton model repository"),
        link(plan.inspection / "table.txt", "inspection table (SDK)"),
        link(plan.inspection / "results.json", "inspection results (JSON)"),
        *[link(p, f"overlay {p.name}") for p in overlays],
        link(plan.bench / "report.md", "benchmark report"),
        "",
        "## Step times this run (seconds; skipped steps are absent)",
        "```",
        json.dumps(plan.timings, indent=2),
        "```",
    ]
    index = plan.out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index
