"""The newcomer's path on the CPU: data -> train -> evaluate -> build -> serve -> inspect -> bench.

Each step runs the public `mtqa` command a user would type (so its own progress shows) and leaves
a stamp holding the hash of its inputs; a re-run skips every step whose inputs did not change.
The server runs only for the steps that need it and is always stopped.

Training runs a fixed number of epochs with a fixed seed and thread count, not the `tiny`
preset's time budget, so two demos give the same figures on any machine; only the time differs.
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
from typing import Any

from rich.console import Console

from mtqa import config as mtqa_config
from mtqa import htmlpage

console = Console()

# One `tiny` epoch (1536 synthetic images at 128 px, then validation) on a quiet 2-core machine:
# 150 s over 19 epochs (docs/history.md). Only for the estimate printed before training.
EPOCH_SECONDS_QUIET = 7.9
# Step times of every run so far, kept so a re-run's index still shows the skipped steps' times.
TIMINGS_FILE = ".stamps/timings.json"


@dataclass
class DemoPlan:
    """Where the demo writes and how big each step is (sized for < 10 minutes on 2 cores)."""

    out: Path
    config: str = "tiny"
    synth_images: int = 48
    precisions: str = "fp32,int8"
    bench_seconds: int = 5  # per point: ensemble + 2 raw variants + peers ~ 25 s
    bench_users: str = "8"
    # Requests of 8 images, raw tensors through shared memory: the comparison with in-process ONNX
    # Runtime at the same batch that is fair when client and server share one machine.
    bench_request_batch: int = 8
    inspect_images: int = 6
    # What the `tiny` preset's 150 s budget reached on a quiet 2-core machine (19-20 epochs,
    # docs/history.md); fixed here so the figures do not depend on the machine's speed or load.
    epochs: int = 19
    seed: int = 0
    threads: int = 2  # CPU reductions split by thread count: fixed, so the sums match too
    # 0: none. A budget > 0 makes the run's length depend on the clock; the index then says so.
    time_budget: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def train_overrides(self) -> list[str]:
        """The `--set` values the demo's training adds to the preset."""
        return [f"train.time_budget={self.time_budget:g}", f"train.threads={self.threads}"]

    def estimated_train_seconds(self) -> float:
        """Training time on a quiet 2-core machine (slower when busy)."""
        return self.epochs * EPOCH_SECONDS_QUIET

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
    _save_timing(plan, name, plan.timings[name])


def _load_timings(plan: DemoPlan) -> dict[str, float]:
    """Step seconds from the runs that last did each step (empty when none is recorded)."""
    try:
        data = json.loads((plan.out / TIMINGS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_timing(plan: DemoPlan, name: str, seconds: float) -> None:
    timings = {**_load_timings(plan), name: seconds}
    path = plan.out / TIMINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timings, indent=2) + "\n")


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
    console.print(
        f"Training `{plan.config}` for {plan.epochs} epochs (seed {plan.seed}, "
        f"{plan.threads} threads): about {plan.estimated_train_seconds() / 60:.1f} min on a quiet "
        "2-core machine, longer on a busy one."
    )
    _step(
        plan,
        "2 train",
        # the presets live in mtqa/config.py
        _digest(
            plan.config, Path(mtqa_config.__file__), plan.epochs, plan.seed, plan.train_overrides
        ),
        lambda: _mtqa(
            "train",
            "--data",
            "synth",
            "--config",
            plan.config,
            "--out",
            plan.run,
            "--epochs",
            plan.epochs,
            "--seed",
            plan.seed,
            *(arg for item in plan.train_overrides for arg in ("--set", item)),
        ),
    )
    _step(
        plan,
        "3 evaluate",
        _digest(weights),
        lambda: _mtqa(
            "evaluate",
            "--run",
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
            "--run",
            plan.run,
            "--repo",
            plan.repo,
            "--precision",
            plan.precisions,
            "--calib-data",
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
            _digest(weights, plan.bench_seconds, plan.bench_users, plan.bench_request_batch),
            lambda: _mtqa(
                "bench",
                "--url",
                server.grpc_url,
                "--repo-info",
                plan.repo,
                "--run",
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
                "--request-batch",
                plan.bench_request_batch,
                # registering shared memory is a control call: it needs the server's key
                *(("--shared-memory", "--key-file", server.key_file) if server.key_file else ()),
                "--out",
                plan.bench,
            ),
        )
    console.print("Triton stopped.")
    index = write_index(plan)
    console.rule("[bold]done")
    console.print(f"Results: {index} (in a browser: {index.with_suffix('.html')})")
    return index


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _figure(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "n/a"


def headline(plan: DemoPlan) -> list[tuple[str, str, str]]:
    """(figure, value, where it comes from) for the index's headline table."""
    metrics = _read_json(plan.evaluation / "metrics.json") or {}
    split = metrics.get("split", "test")
    rows = [
        ("presence macro-F1", _figure(metrics.get("presence_macro_f1")), f"evaluate, {split}"),
        ("defect IoU", _figure(metrics.get("defect_iou")), f"evaluate, {split}"),
        ("grade accuracy", _figure(metrics.get("grade_accuracy")), f"evaluate, {split}"),
    ]
    bench = _read_json(plan.bench / "results.json") or {}
    served = [
        r
        for r in bench.get("rows", [])
        if r.get("source") == "locust" and r.get("target") == "inspect" and r.get("throughput")
    ]
    if served:
        best = max(served, key=lambda r: r["throughput"])
        where = (
            f"bench: mtqa_inspect through the SDK, {best.get('variant')}, "
            f"{best.get('users')} users, p99 {_figure(best.get('p99_ms'), 0)} ms"
        )
        rows.append(("served throughput (images/s)", _figure(best["throughput"], 1), where))
    else:
        rows.append(("served throughput (images/s)", "n/a", "bench"))
    return rows


def bench_notes(plan: DemoPlan) -> list[str]:
    """The bench's ratios in plain words (none before the bench ran)."""
    head = _read_json(plan.bench / "summary.json")
    if not isinstance(head, dict):
        return []
    notes = []
    value = head.get("sdk_over_ort_median")
    if isinstance(value, int | float):
        notes.append(
            f"Served / in-process ONNX Runtime {value:.2f} (median): the share of ONNX Runtime's "
            f"own speed that the server delivers, both running batches of "
            f"{plan.bench_request_batch} images (raw tensors through shared memory). The rest is "
            "each request's fixed cost (client, gRPC, Triton's hand-offs) and the load generator "
            "taking CPU from the server: here client and server share the same cores."
        )
    value = head.get("served_over_naive")
    if isinstance(value, int | float):
        notes.append(
            f"Served / naive server {value:.2f}: the Triton ensemble's best throughput against a "
            "plain FastAPI + PyTorch-eager server (one image a request), at a p99 latency no "
            "worse than the naive server's."
        )
    value = head.get("int8_over_fp32_served_median")
    if isinstance(value, int | float):
        notes.append(
            f"INT8 / FP32 served {value:.2f}: `tiny` is too small for INT8 to pay on a CPU (1.16x "
            "in-process at batch 32; the larger `neu` network: 2.24x, README), so a ratio "
            "near 1 is expected here, not a fault."
        )
    notes.append(cpu_note())
    return notes


def cpu_note() -> str:
    """Which CPU features this machine has for the CPU variants the builder can serve."""
    from mtqa_builder import openvino_variants as ovv

    hw = ovv.hardware()
    flags = ", ".join(hw["flags"]) or "none of those probed"
    caps = hw["capabilities"]
    openvino = (
        f"OpenVINO {hw['openvino']} lists {', '.join(caps)}"
        if caps is not None
        else "OpenVINO is not installed (`pip install 'mtqa[openvino]'`)"
    )
    amx = "has" if "amx_bf16" in hw["flags"] else "lacks"
    return (
        f"This CPU ({hw['cpu'] or 'unknown'}) has {flags}; {openvino}. The demo serves ONNX "
        "Runtime FP32 and INT8 (INT8 is fast with avx512_vnni, avx_vnni or amx_int8). The "
        "OpenVINO variants (`mtqa build --precision ov-bf16,ov-int8`) need OpenVINO's BF16 / "
        f"INT8 capability; bf16 pays mainly with AMX (amx_bf16), which this CPU {amx} "
        "(docs/builder.md)."
    )


def training_note(plan: DemoPlan) -> str:
    """How training ended, and whether a time budget cut it (then the figures vary by machine)."""
    summary = _read_json(plan.run / "summary.json")
    if not isinstance(summary, dict):
        return "Training: no summary.json (not run yet)."
    stopped_by = summary.get("stopped_by") or "?"
    text = (
        f"Training: {summary.get('epochs_run')} epochs in {_figure(summary.get('seconds'), 0)} s, "
        f"stopped by {stopped_by}, best epoch {summary.get('best_epoch')}."
    )
    if stopped_by == "time budget":
        text += (
            " The time budget cut the run: how many epochs fit depends on the machine's speed "
            "and load, so these figures differ between machines."
        )
    return text


def step_times(plan: DemoPlan) -> list[tuple[str, str, str]]:
    """(step, seconds, which run) for every step the demo has ever timed here."""
    recorded = _load_timings(plan)
    return [
        (name, f"{seconds:.1f}", "this run" if name in plan.timings else "an earlier run")
        for name, seconds in sorted({**recorded, **plan.timings}.items())
    ]


def index_links(plan: DemoPlan) -> list[tuple[Path, str]]:
    """(artefact, description) for every artefact the index links."""
    overlays = sorted(plan.inspection.glob("*.png"))
    return [
        (plan.data, "synthetic dataset (indexed-mask format)"),
        (plan.run / "config.json", "training config"),
        (plan.run / "metrics.csv", "training log (per epoch)"),
        (plan.run / "summary.json", "training summary"),
        (plan.run / "thresholds.json", "per-class thresholds chosen on val"),
        (plan.evaluation / "report.html", "evaluation report (HTML)"),
        (plan.evaluation / "report.md", "evaluation report"),
        (plan.evaluation / "metrics.json", "evaluation metrics"),
        (plan.repo, "Triton model repository"),
        (plan.inspection / "table.txt", "inspection table (SDK)"),
        (plan.inspection / "results.json", "inspection results (JSON)"),
        *[(p, f"overlay {p.name}") for p in overlays],
        (plan.bench / "report.html", "benchmark report (HTML)"),
        (plan.bench / "report.md", "benchmark report"),
    ]


def write_index(plan: DemoPlan) -> Path:
    """One Markdown page with the headline figures, step times and links to every artefact."""

    def link(path: Path, text: str) -> str:
        rel = path.relative_to(plan.out)
        return f"- [{text}]({rel.as_posix()})" if path.exists() else f"- {text}: (missing)"

    def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
        if not rows:
            return ["(none recorded yet)"]
        return [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(" --- " for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows),
        ]

    lines = [
        "# mtqa demo results",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `mtqa demo --out {plan.out}`.",
        "",
        "## Headline figures",
        "",
        *table(("figure", "value", "from"), headline(plan)),
        "",
        training_note(plan),
        "",
        *(line for note in bench_notes(plan) for line in (f"- {note}", "")),
        "## Steps",
        *[link(path, text) for path, text in index_links(plan)],
        "",
        "## Step times (seconds)",
        "",
        *table(("step", "seconds", "measured in"), step_times(plan)),
    ]
    index = plan.out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    write_html_index(plan)
    return index


def write_html_index(plan: DemoPlan) -> Path:
    """index.html: the same page for a browser, linking the HTML reports and showing overlays."""
    h = htmlpage

    def item(path: Path, text: str) -> str:
        rel = path.relative_to(plan.out).as_posix()
        return f"<li>{h.link(rel, text) if path.exists() else h.esc(text + ': (missing)')}</li>"

    links = [(p, t) for p, t in index_links(plan) if not t.startswith("overlay ")]
    overlays = sorted(plan.inspection.glob("*.png"))
    body = [
        f"<p class='note'>Generated {h.esc(time.strftime('%Y-%m-%d %H:%M:%S'))} by "
        f"<code>mtqa demo --out {h.esc(plan.out)}</code>.</p>",
        "<h2>Headline figures</h2>",
        h.table(("figure", "value", "from"), headline(plan)),
        f"<p>{h.esc(training_note(plan))}</p>",
        *(f"<p>{h.esc(note)}</p>" for note in bench_notes(plan)),
        "<h2>Reports and artefacts</h2>",
        "<ul>" + "".join(item(p, t) for p, t in links) + "</ul>",
        "<h2>Step times (seconds)</h2>",
        h.table(("step", "seconds", "measured in"), step_times(plan)),
        "<h2>Inspection overlays (SDK)</h2>",
        *(h.figure(p.name, p) for p in overlays),
    ]
    index = plan.out / "index.html"
    index.write_text(h.page("mtqa demo results", body))
    return index
