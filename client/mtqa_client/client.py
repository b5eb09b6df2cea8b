"""`InspectionClient`: the synchronous gRPC client for mtqa models served by Triton.

It connects eagerly: it waits (up to `connect_timeout_s`) for a replica whose server and model
are ready, reads the model metadata and config, and checks them against the mtqa contract, so a
wrong model, version, shape or dtype fails at construction. Every call carries a deadline
(`timeout_s`), rotates over the endpoints, fails over on a dead replica and retries retryable
errors with exponential backoff (see `mtqa_client.retry`). Use it as a context manager.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, overload

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from mtqa_client import protocol, shm
from mtqa_client.base import POLL_S, ClientBase, Read
from mtqa_client.batch import Collector, Outcome, finish
from mtqa_client.endpoints import EndpointPool
from mtqa_client.errors import InspectionError, InvalidInputError, ModelNotReadyError
from mtqa_client.images import ImageLike, ImagesLike, as_items, is_batch
from mtqa_client.renamed import renamed_keyword
from mtqa_client.results import InspectionResult, ItemError, TensorResult
from mtqa_client.spec import NET_OUTPUTS, ModelSpec

R = TypeVar("R")


class InspectionClient(ClientBase):
    """Synchronous client: `inspect` images through the ensemble, `infer_tensor` raw batches.

    Takes the options of `ClientBase` (url, model, model_version, net_model, timeout_s,
    connect_timeout_s, retries, tls, headers, max_message_bytes, endpoints, validate_images,
    shared_memory, key): it connects, waits for readiness and reads the model in the constructor.
    """

    def _open_transport(self, shared_memory: bool) -> None:
        if shared_memory and len(self.options.urls) > 1:
            raise InvalidInputError("shared_memory needs a single endpoint on the local host")
        kwargs = self.options.client_kwargs()
        self._pool = EndpointPool(
            [(u, grpcclient.InferenceServerClient(u, **kwargs)) for u in self.options.urls]
        )
        self._lock = threading.Lock()
        self._shm = shm.ShmPool(self._shm_register, self._shm_unregister) if shared_memory else None
        try:
            self.wait_until_ready(self.options.connect_timeout_s)
            self.spec: ModelSpec = self._load_spec(
                self.options.model, "inspect", self.options.model_version
            )
        except BaseException:
            self.close()
            raise

    @property
    def uses_shared_memory(self) -> bool:
        """True when `infer_tensor` passes tensors through system shared memory."""
        return self._shm is not None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> InspectionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release shared memory and close every channel (idempotent)."""
        if self._shm is not None:
            self._shm.close()
        for _, client in self._pool.items:
            client.close()

    # -- transport ---------------------------------------------------------------------------

    def _call(
        self,
        fn: Callable[[grpcclient.InferenceServerClient], R],
        *,
        model: str,
        idempotent_read: bool,
    ) -> R:
        """Run `fn` on an endpoint with failover, deadline and retry (see module docstring)."""
        pool, policy = self._pool, self.options.retry
        last: InspectionError | None = None
        for round_index in range(policy.retries + 1):
            if round_index:
                time.sleep(policy.delay(round_index - 1))
            for url, client in pool.order():
                try:
                    value = fn(client)
                except InferenceServerException as exc:
                    last = self._failed(pool, url, exc, model, idempotent_read)
                    continue
                pool.restore(url)
                return value
        assert last is not None
        raise last

    def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Block until some endpoint reports server and model ready, or raise after timeout_s."""
        timeout_s = self.options.connect_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        opts = self.options
        server_seen = None
        while True:
            failed: dict[str, InspectionError] = {}
            for url, client in self._pool.items:
                probe = max(0.1, min(2.0, deadline - time.monotonic()))
                try:
                    if not client.is_server_ready(headers=opts.headers, client_timeout=probe):
                        continue
                    server_seen = (url, client)
                    if client.is_model_ready(
                        opts.model, opts.version_str, headers=opts.headers, client_timeout=probe
                    ):
                        return
                except InferenceServerException as exc:
                    failed[url] = self._probe_failed(url, exc)
            self._unless_refused(failed)
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        if server_seen is None:
            raise self._not_ready(None, None, timeout_s)
        url, client = server_seen
        try:
            index = client.get_model_repository_index(
                headers=opts.headers, as_json=True, client_timeout=2.0
            ).get("models", [])
        except InferenceServerException:
            index = None
        raise self._not_ready(url, index, timeout_s)

    def _read(self, read: Read) -> Any:
        """An idempotent control read; None for an optional one on a missing model."""
        try:
            return self._call(read.fn, model=read.model, idempotent_read=True)
        except ModelNotReadyError:
            if read.optional:
                return None
            raise

    def _load_spec(self, model: str, kind: str, version: str | None) -> ModelSpec:
        plan = self._spec_plan(model, kind, version)
        read = next(plan)
        while True:
            try:
                read = plan.send(self._read(read))
            except StopIteration as done:
                return done.value

    # -- inference -------------------------------------------------------------------------------

    def _infer(
        self, model: str, version: str, inputs: list, outputs: list, timeout_s: float | None
    ) -> tuple[Any, float]:
        """One inference request (never retried on timeout) and its round trip in ms."""
        send = self._infer_call(model, version, inputs, outputs, timeout_s)

        def timed(client: grpcclient.InferenceServerClient) -> tuple[Any, float]:
            start = time.perf_counter()
            result = send(client)
            return result, (time.perf_counter() - start) * 1000.0

        return self._call(timed, model=model, idempotent_read=False)

    # A single image gives its result, a list or tuple a list: typed so for checkers (py.typed).
    @overload
    def inspect(self, images: ImageLike, *, timeout_s: float | None = None) -> InspectionResult: ...

    @overload
    def inspect(
        self,
        images: list[Any] | tuple[Any, ...],  # of ImageLike; list is invariant
        *,
        timeout_s: float | None = None,
    ) -> list[InspectionResult | ItemError]: ...

    def inspect(
        self, images: ImagesLike, *, timeout_s: float | None = None
    ) -> InspectionResult | list[InspectionResult | ItemError]:
        """Inspect one image (returns its result, raises its error) or a list (returns a list in
        input order, split into requests of at most max_batch_size images).

        In a list a bad image becomes an `ItemError` at its index and the others are answered; a
        request that fails as a whole raises `BatchError` after the other requests ran, with
        every answer in `.results` (see `mtqa_client.batch`).
        """
        batch = is_batch(images)
        part = self._inspect_part(as_items(images), 0, timeout_s, batch)
        return finish([part], batch)

    def _inspect_part(
        self, items: Sequence[ImageLike], offset: int, timeout_s: float | None, batch: bool
    ) -> Collector:
        """Encode and send images `offset ..` of a call, request by request; never raises for
        one request in a batch (its images get ItemErrors)."""
        part, encoded = self._collect(items, offset, batch)
        for chunk in protocol.chunks(encoded, self.spec.max_batch_size):
            try:
                part.answered(chunk, self._inspect_encoded(chunk, timeout_s))
            except InspectionError as exc:
                if not batch:
                    raise
                part.failed(chunk, exc)
        return part

    def _inspect_encoded(self, chunk: Sequence, timeout_s: float | None) -> list[Outcome]:
        opts, spec = self.options, self.spec
        inputs, outputs = protocol.inspect_request(chunk, spec)
        result, ms = self._infer(opts.model, opts.version_str, inputs, outputs, timeout_s)
        return self._inspect_results(result, ms, chunk, spec)

    def inspect_many(
        self,
        images: Iterable[ImageLike],
        *,
        concurrency: int = 4,
        batch_size: int | None = None,
        timeout_s: float | None = None,
    ) -> list[InspectionResult | ItemError]:
        """Inspect many images with up to `concurrency` requests in flight; results keep order.

        Images are grouped into requests of `batch_size` (default: small enough to keep all
        workers busy, never above the model's max_batch_size) and encoded inside the workers, so
        a long list of paths is read while earlier requests are on the wire. Bad images and
        failed requests are reported as in `inspect` of a list: ItemError entries, and BatchError
        (carrying every answer) when a request failed as a whole.
        """
        items = list(images)
        size = self._group_size(items, concurrency, batch_size, self.spec.max_batch_size)
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="mtqa-inspect")
        try:
            futures = [
                pool.submit(self._inspect_part, items[start : start + size], start, timeout_s, True)
                for start in range(0, len(items), size)
            ]
            return finish([future.result() for future in futures], True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def net_spec(self) -> ModelSpec:
        """The raw model's spec, read and checked on first use."""
        with self._lock:
            if self._net_spec is None:
                # The version pin applies to the inspect model; the raw model follows its policy.
                self._net_spec = self._load_spec(self.net_model, "net", None)
            return self._net_spec

    def infer_tensor(
        self,
        images: np.ndarray,
        *,
        model_version: str | int | None = None,
        timeout_s: float | None = None,
        version: str | int | None = None,
    ) -> TensorResult:
        """Run the raw network on float32 [N, 3, S, S] (already preprocessed) images.

        `model_version` picks a `mtqa_net` version (e.g. one precision variant); default: the
        server's version policy. `version` is its deprecated name.
        """
        model_version = renamed_keyword("version", version, "model_version", model_version)
        pinned = "" if model_version is None else str(model_version)
        spec = self.net_spec()
        batch = protocol.check_tensor(images, spec)
        parts: list[dict[str, np.ndarray]] = []
        total_ms, served, server = 0.0, "", {}
        for chunk in protocol.chunks(batch, spec.max_batch_size):
            arrays, ms, served, server = self._infer_net(
                np.ascontiguousarray(chunk), pinned, timeout_s
            )
            parts.append(arrays)
            total_ms += ms
        return self._tensor_result(spec, parts, len(batch), total_ms, served, server)

    def _infer_net(
        self, chunk: np.ndarray, version: str, timeout_s: float | None
    ) -> tuple[dict[str, np.ndarray], float, str, dict[str, float]]:
        inputs, outputs = protocol.net_request(chunk, with_data=self._shm is None)
        region = None
        if self._shm is not None:
            region, layout = self._shm_prepare(chunk, inputs, outputs)
        try:
            result, ms = self._infer(self.net_model, version, inputs, outputs, timeout_s)
            version, server = protocol.response_info(result)
            if region is None:
                arrays = protocol.read_outputs(result, list(NET_OUTPUTS))
            else:
                arrays = {
                    name: shm.read(region, np.float32, shape, offset)
                    for name, (shape, offset) in layout.items()
                }
        finally:
            if region is not None:
                self._shm.release(region)
        return arrays, ms, version, server

    # -- shared memory -------------------------------------------------------------------------

    def _shm_prepare(
        self, chunk: np.ndarray, inputs: list, outputs: list
    ) -> tuple[shm.Region, dict[str, tuple[list[int], int]]]:
        """Place the input and all outputs in one region; returns it and the output layout."""
        spec = self.net_spec()
        n, side = chunk.shape[0], chunk.shape[-1]
        shapes = {
            "presence_logits": [n, len(spec.classes)],
            "seg_logits": [n, len(spec.classes), side, side],
            "grade_logits": [n, len(spec.grades)],
        }
        layout, offset = {}, chunk.nbytes
        for name, shape in shapes.items():
            layout[name] = (shape, offset)
            offset += int(np.prod(shape)) * 4
        region = self._shm.acquire(offset)
        shm.write(region, chunk)
        inputs[0].set_shared_memory(region.name, chunk.nbytes, 0)
        for out in outputs:
            shape, off = layout[out.name()]
            out.set_shared_memory(region.name, int(np.prod(shape)) * 4, off)
        return region, layout

    def _shm_register(self, name: str, key: str, size: int) -> None:
        opts = self.options
        self._read(
            Read(
                self.net_model,
                lambda c: c.register_system_shared_memory(
                    name, key, size, headers=opts.headers, client_timeout=opts.timeout_s
                ),
            )
        )

    def _shm_unregister(self, name: str) -> None:
        opts = self.options
        for _, client in self._pool.items:
            client.unregister_system_shared_memory(name, headers=opts.headers, client_timeout=2.0)

    # -- observability -----------------------------------------------------------------------

    def statistics(self, model: str | None = None) -> dict[str, Any]:
        """Triton's inference statistics for `model` (default: the inspect model) as JSON."""
        return self._read(self._statistics_read(model))
