"""Locust users for mtqa: the Triton ensemble and raw network over gRPC (through the SDK), and the
naive FastAPI peer over HTTP.

Run one class by name, e.g.
``locust -f benchmarks/mtqa_bench/locustfile.py --headless -u 16 -t 30s --host 127.0.0.1:8001 \
    InspectUser``.
`InspectUser` sends encoded product images to `mtqa_inspect` (or `--mtqa-model`), `TensorUser`
sends preprocessed float32 batches to `mtqa_net` (`--mtqa-version` picks a precision variant;
`--mtqa-shared-memory system` passes them through system shared memory, client on the host),
`NaiveUser` posts one image per request to `mtqa_bench.naive_server` (`--host http://...`).
Options also read environment variables (`MTQA_BENCH_*`). Payloads come from `--mtqa-payloads`
(a folder written by `mtqa_bench.payloads`) or are generated at start. gRPC users also record
the SDK's own round-trip time, so `--mtqa-sidecar FILE` gets the client-side share of latency.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

# gRPC must cooperate with gevent before any channel exists, or N users behave as one.
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import numpy as np  # noqa: E402
from locust import FastHttpUser, User, constant, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from mtqa_bench import payloads  # noqa: E402
from mtqa_builder.contract import ENSEMBLE  # noqa: E402
from mtqa_client import InspectionClient, InspectionError  # noqa: E402

_GENERATED_COUNT = 16
_CLIENT_TIMEOUT_S = 120.0


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("mtqa")
    group.add_argument("--mtqa-payloads", env_var="MTQA_BENCH_PAYLOADS", default="")
    group.add_argument("--mtqa-model", env_var="MTQA_BENCH_MODEL", default=ENSEMBLE)
    # empty: the network the ensemble names in its config (the SDK reads it)
    group.add_argument("--mtqa-net-model", env_var="MTQA_BENCH_NET_MODEL", default="")
    group.add_argument("--mtqa-version", env_var="MTQA_BENCH_VERSION", default="")
    group.add_argument("--mtqa-batch", type=int, env_var="MTQA_BENCH_BATCH", default=1)
    group.add_argument("--mtqa-sidecar", env_var="MTQA_BENCH_SIDECAR", default="")
    group.add_argument("--mtqa-shared-memory", env_var="MTQA_BENCH_SHARED_MEMORY", default="")


class _ClientShare:
    """Sums of whole-call and SDK round-trip times (ms) of the measured requests."""

    def __init__(self) -> None:
        self.transport = "grpc"  # "shm" once a user's client passes tensors through shared memory
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.images = 0
        self.total_ms = 0.0
        self.rpc_ms = 0.0

    def add(self, total_ms: float, rpc_ms: float, images: int) -> None:
        self.requests += 1
        self.images += images
        self.total_ms += total_ms
        self.rpc_ms += rpc_ms


SHARE = _ClientShare()


@events.reset_stats.add_listener
def _reset_share() -> None:
    SHARE.reset()  # --reset-stats drops the ramp-up; the client share follows


@events.test_stop.add_listener
def _write_sidecar(environment: Environment, **_kw) -> None:
    """Final figures, written when the users have stopped: the runner reads these rather than
    the CSV, whose last periodic write may predate the end of the test."""
    path = getattr(environment.parsed_options, "mtqa_sidecar", "")
    if not path:
        return
    total = environment.stats.total
    stats = {
        "rps": total.total_rps,
        "avg_ms": total.avg_response_time,
        "p50_ms": total.get_response_time_percentile(0.50),
        "p95_ms": total.get_response_time_percentile(0.95),
        "p99_ms": total.get_response_time_percentile(0.99),
        "requests": total.num_requests,
        "failures": total.num_failures,
    }
    Path(path).write_text(json.dumps({"stats": stats, "client": vars(SHARE)}))


def _encoded(opts) -> list[bytes]:
    if opts.mtqa_payloads:
        return payloads.read_images(Path(opts.mtqa_payloads))
    return [payloads.encode(im, "jpeg") for im in payloads.product_images(_GENERATED_COUNT, 256)]


def _batches(items: list, batch: int):
    """An endless cycle of `batch`-sized groups over `items` (wrapping around)."""
    if batch < 1:
        raise ValueError(f"--mtqa-batch must be >= 1, got {batch}")
    ring = itertools.cycle(items)
    while True:
        yield [next(ring) for _ in range(batch)]


class _GrpcUser(User):
    """Shared set-up of the SDK users: one connected client per simulated user."""

    abstract = True
    wait_time = constant(0)  # closed loop, like perf_analyzer's concurrency mode

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.opts = opts
        self.client = InspectionClient(
            self.host,
            model=opts.mtqa_model,
            net_model=opts.mtqa_net_model or None,
            timeout_s=_CLIENT_TIMEOUT_S,
            connect_timeout_s=_CLIENT_TIMEOUT_S,
            retries=0,  # a benchmark counts failures instead of hiding them
            shared_memory=opts.mtqa_shared_memory == "system",
            key=os.environ.get("MTQA_CONTROL_KEY") or None,  # shared-memory registration needs it
        )

    def on_stop(self) -> None:
        self.client.close()

    def _fire(self, name: str, start: float, rpc_ms: float, images: int, size: int, exc=None):
        total_ms = (time.perf_counter() - start) * 1000.0
        if exc is None:
            SHARE.add(total_ms, rpc_ms, images)
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=total_ms,
            response_length=size,
            exception=exc,
            context={"images": images},
        )


class InspectUser(_GrpcUser):
    """Encoded images through the `mtqa_inspect` ensemble with `InspectionClient.inspect`."""

    def on_start(self) -> None:
        super().on_start()
        self.groups = _batches(_encoded(self.opts), self.opts.mtqa_batch)

    @task
    def inspect(self) -> None:
        group = next(self.groups)
        start = time.perf_counter()
        try:
            results = self.client.inspect(group)
        except InspectionError as exc:
            self._fire(self.opts.mtqa_model, start, 0.0, len(group), 0, exc)
            return
        size = sum(len(d) for d in group)
        self._fire(self.opts.mtqa_model, start, results[0].timings.round_trip_ms, len(group), size)


class TensorUser(_GrpcUser):
    """Preprocessed float32 batches through the raw `mtqa_net` with `infer_tensor`."""

    def on_start(self) -> None:
        super().on_start()
        opts = self.opts
        if opts.mtqa_payloads:
            tensors = payloads.read_tensors(Path(opts.mtqa_payloads))
        else:
            side = self.client.net_spec().image_size
            if not side:  # a dynamic input side: only real payloads say what to send
                raise RuntimeError(
                    f"{self.client.net_model} declares no fixed image size; pass --mtqa-payloads"
                )
            rng = np.random.default_rng(0)
            tensors = rng.standard_normal((_GENERATED_COUNT, 3, side, side), dtype=np.float32)
        self.groups = (np.stack(g) for g in _batches(list(tensors), opts.mtqa_batch))
        self.version = opts.mtqa_version or None
        if self.client.uses_shared_memory:
            SHARE.transport = "shm"
        self.name = self.client.net_model + (f" v{self.version}" if self.version else "")

    @task
    def infer(self) -> None:
        batch = next(self.groups)
        start = time.perf_counter()
        try:
            result = self.client.infer_tensor(batch, model_version=self.version)
        except InspectionError as exc:
            self._fire(self.name, start, 0.0, len(batch), 0, exc)
            return
        self._fire(self.name, start, result.timings.round_trip_ms, len(batch), batch.nbytes)


class NaiveUser(FastHttpUser):
    """One encoded image per HTTP POST to the naive FastAPI + PyTorch server."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.groups = _batches(_encoded(self.environment.parsed_options), 1)

    @task
    def inspect(self) -> None:
        (data,) = next(self.groups)
        headers = {"Content-Type": "application/octet-stream"}
        self.client.post("/inspect", data=data, headers=headers, name="naive /inspect")
