"""Serving throughput with the business metrics and input drift on and off, interleaved.

    python -m mtqa_bench.metrics_overhead --repo model_repository --pairs 4 --out overhead.json

The repository is copied once with `business_metrics: "off"` in the config of mtqa_preprocess
and mtqa_postprocess, and both copies are served at the same time by two Triton servers. Only
one server is loaded at a time: `users` SDK threads per server send `request_batch` encoded
images per request during windows of `seconds`, in blocks of four windows ordered on/off/off/on
(then off/on/on/off, ...), each window starting on an idle server (the previous one drained).
A block's ratio is its on figure over its off figure; a load swing of the shared machine that is
linear over a block cancels in it. The blocks are split over `pairs` pairs of servers started in
turn, the first started alternating, so that what one server process gets by chance (its start
order, where its threads land) does not stay with one mode.

Reported for the throughput and for the server's CPU time per image (Triton and its python
stubs, from /proc via psutil; it moves less with other work than the throughput): the median
change over blocks with a bootstrap 95 % interval and quartiles, and the pooled change; per
pair, the same medians and the mean compute time per image of the two python models from
Triton's own counters. `--control` serves the metrics on in both (A/A): the method's null.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil  # locust's dependency, in the bench extra
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mtqa_bench.payloads import encode, product_images
from mtqa_builder import contract
from mtqa_client import InspectionClient
from mtqa_serving import TritonServer

SWITCH = "business_metrics"
PYTHON_MODELS = (contract.PRE, contract.POST)
MODES = ("on", "off")
BOOTSTRAP = 4000  # resamples of the blocks for the median's interval
WARMUP_S = 4.0  # load on each fresh server before its windows count
CPU = "server_cpu_ms_per_image"


def metrics_off_copy(repo: Path, dest: Path, control: bool = False) -> Path:
    """A copy of `repo` whose python models export no business metrics (with `control`, a plain
    copy: an A/A run shows what the method reads when nothing differs)."""
    shutil.copytree(repo, dest)
    for model in () if control else PYTHON_MODELS:
        path = dest / model / contract.CONFIG
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        config.parameters[SWITCH].string_value = "off"
        path.write_text(text_format.MessageToString(config))
    return dest


def _counters(url: str) -> dict[tuple[str, str], float]:
    """(metric, model) -> value of Triton's per-model counters (all versions summed)."""
    values: dict[tuple[str, str], float] = {}
    for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
        if line.startswith("nv_inference_") and 'model="' in line:
            name = line.split("{", 1)[0]
            model = line.split('model="', 1)[1].split('"', 1)[0]
            values[(name, model)] = values.get((name, model), 0.0) + float(line.split()[-1])
    return values


def compute_us_per_image(before: dict, after: dict) -> dict[str, float]:
    """Mean compute time per image of each python model between two `_counters` reads."""
    per_image = {}
    for model in PYTHON_MODELS:
        spent = ("nv_inference_compute_infer_duration_us", model)
        count = ("nv_inference_count", model)
        images = after.get(count, 0.0) - before.get(count, 0.0)
        per_image[model] = (after.get(spent, 0.0) - before.get(spent, 0.0)) / max(images, 1.0)
    return per_image


def server_cpu_s(process: psutil.Process) -> float:
    """CPU seconds (user + system) of a Triton server and its children (the python stubs)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


class Load:
    """`users` SDK threads that send requests to one server only while a window is open."""

    def __init__(self, server: TritonServer, images: list[bytes], users: int, batch: int) -> None:
        url, self.process = server.grpc_url, psutil.Process(server.pid)
        self._lock = threading.Lock()
        self._open, self._quit = threading.Event(), threading.Event()
        self.completed, self.in_flight, self.failed = 0, 0, 0
        self._threads = [
            threading.Thread(target=self._user, args=(url, images, batch, i), daemon=True)
            for i in range(users)
        ]
        for thread in self._threads:
            thread.start()

    def _user(self, url: str, images: list[bytes], batch: int, index: int) -> None:
        with InspectionClient(url, timeout_s=120) as client:
            n = index * batch
            while not self._quit.is_set():
                with self._lock:  # a request starts only inside a window
                    started = self._open.is_set()
                    self.in_flight += int(started)
                if not started:
                    self._open.wait(0.05)
                    continue
                answered = 0
                try:
                    client.inspect([images[(n + i) % len(images)] for i in range(batch)])
                    answered = batch
                except Exception:  # counted, and the user goes on: one error skews no window
                    self.failed += 1
                finally:
                    with self._lock:
                        self.in_flight -= 1
                        self.completed += answered
                n += batch

    def window(self, seconds: float) -> tuple[float, float]:
        """One window of `seconds` on an idle server: (images/s completed in it, server CPU ms
        per image of the requests it started, counted until they are answered)."""
        cpu = server_cpu_s(self.process)
        with self._lock:
            start_count, start = self.completed, time.monotonic()
            self._open.set()
        time.sleep(seconds)
        with self._lock:
            self._open.clear()
            done, elapsed = self.completed - start_count, time.monotonic() - start
        while self.in_flight:  # drain: the next window starts on a quiet machine
            time.sleep(0.01)
        cpu = server_cpu_s(self.process) - cpu
        return done / elapsed, 1e3 * cpu / max(self.completed - start_count, 1)

    def close(self) -> None:
        self._quit.set()
        for thread in self._threads:
            thread.join(timeout=120)


def block_order(block: int) -> tuple[str, ...]:
    """on/off/off/on for even blocks, off/on/on/off for odd ones."""
    first, second = MODES if block % 2 == 0 else MODES[::-1]
    return (first, second, second, first)


def bootstrap_medians(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP medians of `groups` (one array of block ratios per server pair) resampled in two
    levels: pairs with replacement, then each drawn pair's blocks with replacement, so that what
    differs between pairs widens the interval as much as what differs between blocks."""
    medians = np.empty(BOOTSTRAP)
    for i in range(BOOTSTRAP):
        drawn = rng.integers(0, len(groups), len(groups))
        medians[i] = np.median(
            np.concatenate([rng.choice(groups[g], len(groups[g])) for g in drawn])
        )
    return medians


def summarise(windows: Sequence[dict], key: str = "images_per_s", seed: int = 0) -> dict:
    """The on/off change (%) of `key` per block, its median with a bootstrap 95 % interval (over
    pairs and blocks) and quartiles, the pooled change and the mean per mode."""
    blocks: dict[int, dict[str, float]] = {}
    pair_of: dict[int, int] = {}
    for w in windows:
        sums = blocks.setdefault(w["block"], dict.fromkeys(MODES, 0.0))
        sums[w["mode"]] += w[key]
        pair_of[w["block"]] = w.get("pair", 0)
    ratios = np.array([b["on"] / b["off"] for b in blocks.values()])
    pairs = np.array([pair_of[b] for b in blocks])
    groups = [ratios[pairs == p] for p in np.unique(pairs)]
    medians = bootstrap_medians(groups, np.random.default_rng(seed))
    low, high = np.percentile(medians, [2.5, 97.5])
    q1, q3 = np.percentile(ratios, [25, 75])
    totals = {m: sum(w[key] for w in windows if w["mode"] == m) for m in MODES}

    def pct(ratio: float) -> float:
        return round(100.0 * (float(ratio) - 1.0), 2)

    return {
        "blocks": len(ratios),
        "block_change_pct": [pct(r) for r in ratios],
        "median_change_pct": pct(np.median(ratios)),
        "median_change_ci95_pct": [pct(low), pct(high)],
        "quartiles_change_pct": [pct(q1), pct(q3)],
        "pooled_change_pct": pct(totals["on"] / totals["off"]),
        "mean": {m: round(totals[m] / sum(w["mode"] == m for w in windows), 3) for m in MODES},
    }


def serve_pair(
    repos: dict[str, Path], first: str, blocks: range, load_args: tuple, seconds: float, pair: int
) -> tuple[list[dict], dict, dict]:
    """Start one server per mode (`first` first), run `blocks` ABBA blocks of windows; returns
    (windows, compute us per image per mode, failed requests per mode)."""
    order = (first, *(m for m in MODES if m != first))
    servers = {m: TritonServer(repos[m], startup_timeout=180) for m in order}
    loads: dict[str, Load] = {}
    try:
        for mode in order:
            servers[mode].start()
            loads[mode] = Load(servers[mode], *load_args)
            loads[mode].window(WARMUP_S)  # stubs, ORT sessions, client channels
        before = {m: _counters(servers[m].metrics_url) for m in MODES}
        windows = []
        for block in blocks:
            for mode in block_order(block):
                rate, cpu_ms = loads[mode].window(seconds)
                windows.append(
                    {
                        "pair": pair,
                        "block": block,
                        "mode": mode,
                        "started_first": mode == first,
                        "images_per_s": round(rate, 1),
                        "server_cpu_ms_per_image": round(cpu_ms, 3),
                    }
                )
                print(
                    f"block {block + 1} metrics {mode}: {rate:.1f} images/s, "
                    f"server CPU {cpu_ms:.2f} ms/image",
                    flush=True,
                )
        cost = {
            m: compute_us_per_image(before[m], _counters(servers[m].metrics_url)) for m in MODES
        }
        return windows, cost, {m: loads[m].failed for m in MODES}
    finally:
        for load in loads.values():
            load.close()
        for server in servers.values():
            server.stop()


def run(
    repo: Path,
    blocks: int,
    users: int,
    batch: int,
    seconds: float,
    px: int,
    pairs: int = 2,
    control: bool = False,
) -> dict:
    """Serve `repo` with metrics on and off side by side: `pairs` pairs of servers in turn (the
    first started alternating: a server's own placement cancels over pairs), `blocks` ABBA
    blocks of windows in all."""
    images = [encode(img, "jpeg") for img in product_images(64, px)]
    windows, per_pair = [], []
    with tempfile.TemporaryDirectory(prefix="mtqa-metrics-off-") as tmp:
        repos = {"on": repo, "off": metrics_off_copy(repo, Path(tmp) / "repo", control)}
        bounds = np.linspace(0, blocks, pairs + 1).round().astype(int)
        for pair in range(pairs):
            first = MODES[pair % 2]
            blocks_here = range(bounds[pair], bounds[pair + 1])
            load_args = (images, users, batch)
            got, cost, failed = serve_pair(repos, first, blocks_here, load_args, seconds, pair)
            windows += got
            per_pair.append(
                {
                    "started_first": first,
                    "throughput_median_change_pct": summarise(got)["median_change_pct"],
                    "server_cpu_median_change_pct": summarise(got, CPU)["median_change_pct"],
                    "compute_us_per_image": {
                        m: {model: round(v, 1) for model, v in cost[m].items()} for m in MODES
                    },
                    "failed_requests": failed,
                }
            )
    return {
        "throughput": summarise(windows, "images_per_s"),
        "server_cpu_ms_per_image": summarise(windows, CPU),
        "pairs": per_pair,
        "windows": windows,
        "setup": {
            "users": users,
            "request_batch": batch,
            "window_s": seconds,
            "image_px": px,
            "server_pairs": pairs,
            "order": "ABBA blocks, one server loaded at a time",
            "control": control,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="built repository")
    parser.add_argument("--blocks", type=int, default=20, help="on/off/off/on blocks (default: 20)")
    parser.add_argument("--users", type=int, default=8, help="client threads (default: 8)")
    parser.add_argument(
        "--request-batch", type=int, default=4, help="images per request (default: 4)"
    )
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="seconds per window (default: 1.5)"
    )
    parser.add_argument("--image-px", type=int, default=256, help="image side (default: 256)")
    parser.add_argument(
        "--pairs", type=int, default=2, help="server pairs started in turn (default: 2)"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="A/A run: the second server keeps the metrics on (the method's null reading)",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON summary to write")
    args = parser.parse_args(argv)
    summary = run(
        args.repo,
        args.blocks,
        args.users,
        args.request_batch,
        args.seconds,
        args.image_px,
        pairs=args.pairs,
        control=args.control,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    shown = {k: v for k, v in summary.items() if k != "windows"}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    main()
