"""Serving throughput with the business metrics and input drift on and off, same run.

    python -m mtqa_bench.metrics_overhead --repo model_repository --out results/overhead.json

The repository is copied twice into a temporary folder, one copy with `business_metrics: "off"`
in the config of mtqa_preprocess and mtqa_postprocess. Rounds alternate the two servers (on/off,
then off/on, ...) so that a slow spell of a shared machine lands on both; each round starts the
server, warms it, then `users` threads send `request_batch` encoded images per request through
the SDK for `seconds`. Reported: images/s per round and their medians, and the mean compute time
per image of the two python models from Triton's own counters (the in-server cost, which client
noise does not reach).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mtqa_bench.payloads import encode, product_images
from mtqa_builder import contract
from mtqa_client import InspectionClient
from mtqa_serving import TritonServer

SWITCH = "business_metrics"
PYTHON_MODELS = (contract.PRE, contract.POST)


def metrics_off_copy(repo: Path, dest: Path) -> Path:
    """A copy of `repo` whose python models export no business metrics."""
    shutil.copytree(repo, dest)
    for model in PYTHON_MODELS:
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


def measure(repo: Path, images: list[bytes], users: int, batch: int, seconds: float) -> dict:
    """Start a server on `repo`, load it for `seconds`, return images/s and per-image costs."""
    server = TritonServer(repo, startup_timeout=180)
    server.start()
    try:
        stop, counts = threading.Event(), [0] * users

        def user(index: int) -> None:
            with InspectionClient(server.grpc_url, timeout_s=120) as client:
                n = index
                while not stop.is_set():
                    chunk = [images[(n + i) % len(images)] for i in range(batch)]
                    client.inspect(chunk)
                    counts[index] += batch
                    n += batch

        threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
        for t in threads:
            t.start()
        time.sleep(min(3.0, seconds / 3))  # warm-up: stubs, ORT sessions, client channels
        before, start_counts, start = _counters(server.metrics_url), sum(counts), time.monotonic()
        time.sleep(seconds)
        done, elapsed = sum(counts) - start_counts, time.monotonic() - start
        after = _counters(server.metrics_url)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    finally:
        server.stop()
    per_image = {}
    for model in PYTHON_MODELS:
        key = ("nv_inference_compute_infer_duration_us", model)
        count = ("nv_inference_count", model)
        images_done = after.get(count, 0.0) - before.get(count, 0.0)
        per_image[model] = (after.get(key, 0.0) - before.get(key, 0.0)) / max(images_done, 1.0)
    return {"images_per_s": done / elapsed, "compute_us_per_image": per_image}


def run(repo: Path, rounds: int, users: int, batch: int, seconds: float, px: int) -> dict:
    images = [encode(img, "jpeg") for img in product_images(64, px)]
    with tempfile.TemporaryDirectory(prefix="mtqa-metrics-off-") as tmp:
        repos = {"on": repo, "off": metrics_off_copy(repo, Path(tmp) / "repo")}
        results: dict[str, list[dict]] = {"on": [], "off": []}
        for r in range(rounds):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                results[mode].append(measure(repos[mode], images, users, batch, seconds))
                print(f"round {r + 1} metrics {mode}: {results[mode][-1]}", flush=True)
    summary = {}
    for mode, points in results.items():
        summary[mode] = {
            "images_per_s": [round(p["images_per_s"], 1) for p in points],
            "median_images_per_s": round(statistics.median(p["images_per_s"] for p in points), 1),
            "compute_us_per_image": {
                m: round(statistics.median(p["compute_us_per_image"][m] for p in points), 1)
                for m in PYTHON_MODELS
            },
        }
    on, off = summary["on"]["median_images_per_s"], summary["off"]["median_images_per_s"]
    summary["throughput_change_pct"] = round(100.0 * (on - off) / off, 2)
    summary["setup"] = {"users": users, "request_batch": batch, "seconds": seconds, "image_px": px}
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="built repository")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per mode (default: 4)")
    parser.add_argument("--users", type=int, default=8, help="client threads (default: 8)")
    parser.add_argument("--request-batch", type=int, default=4, help="images per request")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per round")
    parser.add_argument("--image-px", type=int, default=256, help="image side (default: 256)")
    parser.add_argument("--out", type=Path, required=True, help="JSON summary to write")
    args = parser.parse_args(argv)
    summary = run(
        args.repo, args.rounds, args.users, args.request_batch, args.seconds, args.image_px
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
