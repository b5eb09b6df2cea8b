"""`AsyncInspectionClient`: the asyncio twin of `InspectionClient` (tritonclient.grpc.aio).

Same options, contract checks, deadlines, failover and retry rules as the sync client; create it
with `await AsyncInspectionClient.connect(url, ...)` or `async with AsyncInspectionClient(url)`.
`inspect_many` keeps up to `concurrency` requests in flight on one channel; `max_in_flight`
records the highest number seen, which is how tests prove requests really overlapped. System
shared memory is offered by the sync client only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

import numpy as np
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from mtqa_client import protocol
from mtqa_client.base import POLL_S, ClientBase, Read
from mtqa_client.batch import Collector, Outcome, finish
from mtqa_client.endpoints import EndpointPool
from mtqa_client.errors import InspectionError, ModelNotReadyError
from mtqa_client.images import ImageLike, ImagesLike, as_items, is_batch
from mtqa_client.renamed import renamed_keyword
from mtqa_client.results import InspectionResult, ItemError, TensorResult
from mtqa_client.spec import NET_OUTPUTS, ModelSpec

R = TypeVar("R")


class AsyncInspectionClient(ClientBase):
    """Asyncio client: await `inspect`, `inspect_many` and `infer_tensor`.

    Takes the options of `ClientBase`; channels open in `open()`, inside the running loop.
    """

    _pool: EndpointPool[aioclient.InferenceServerClient] | None = None
    _spec: ModelSpec | None = None
    _in_flight = 0
    max_in_flight = 0  # the most inference requests this client had in flight at once

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> AsyncInspectionClient:
        """Create a client and connect it (wait for readiness, read and check the model)."""
        client = cls(url, **kwargs)
        await client.open()
        return client

    async def open(self) -> None:
        """Open channels (inside the running loop), wait for readiness, load the model spec."""
        if self._pool is not None:
            return
        kwargs = self.options.client_kwargs()
        self._pool = EndpointPool(
            [(u, aioclient.InferenceServerClient(u, **kwargs)) for u in self.options.urls]
        )
        try:
            await self.wait_until_ready(self.options.connect_timeout_s)
            opts = self.options
            self._spec = await self._load_spec(opts.model, "inspect", opts.model_version)
        except BaseException:
            await self.close()
            raise

    async def __aenter__(self) -> AsyncInspectionClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every channel (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            for _, client in pool.items:
                await client.close()

    @property
    def spec(self) -> ModelSpec:
        """The inspect model's spec (after `open`)."""
        if self._spec is None:
            raise InspectionError("client is not connected; use `async with` or `await open()`")
        return self._spec

    def _endpoints(self) -> EndpointPool[aioclient.InferenceServerClient]:
        if self._pool is None:
            raise InspectionError("client is closed or not connected")
        return self._pool

    async def _call(
        self,
        fn: Callable[[aioclient.InferenceServerClient], Awaitable[R]],
        *,
        model: str,
        idempotent_read: bool,
    ) -> R:
        pool, policy = self._endpoints(), self.options.retry
        last: InspectionError | None = None
        for round_index in range(policy.retries + 1):
            if round_index:
                await asyncio.sleep(policy.delay(round_index - 1))
            for url, client in pool.order():
                try:
                    value = await fn(client)
                except InferenceServerException as exc:
                    last = self._failed(pool, url, exc, model, idempotent_read)
                    continue
                pool.restore(url)
                return value
        assert last is not None
        raise last

    async def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Wait until some endpoint reports server and model ready, or raise after timeout_s."""
        opts = self.options
        timeout_s = opts.connect_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        seen: tuple[str, aioclient.InferenceServerClient] | None = None
        while True:
            failed: dict[str, InspectionError] = {}
            for url, client in self._endpoints().items:
                probe = max(0.1, min(2.0, deadline - time.monotonic()))
                try:
                    if not await client.is_server_ready(headers=opts.headers, client_timeout=probe):
                        continue
                    seen = (url, client)
                    if await client.is_model_ready(
                        opts.model, opts.version_str, headers=opts.headers, client_timeout=probe
                    ):
                        return
                except InferenceServerException as exc:
                    failed[url] = self._probe_failed(url, exc)
            self._unless_refused(failed)
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        if seen is None:
            raise self._not_ready(None, None, timeout_s)
        url, client = seen
        try:
            answer = await client.get_model_repository_index(
                headers=opts.headers, as_json=True, client_timeout=2.0
            )
            index = answer.get("models", [])
        except InferenceServerException:
            index = None
        raise self._not_ready(url, index, timeout_s)

    async def _read(self, read: Read) -> Any:
        """An idempotent control read; None for an optional one on a missing model."""
        try:
            return await self._call(read.fn, model=read.model, idempotent_read=True)
        except ModelNotReadyError:
            if read.optional:
                return None
            raise

    async def _load_spec(self, model: str, kind: str, version: str | None) -> ModelSpec:
        plan = self._spec_plan(model, kind, version)
        read = next(plan)
        while True:
            try:
                read = plan.send(await self._read(read))
            except StopIteration as done:
                return done.value

    async def _infer(
        self, model: str, version: str, inputs: list, outputs: list, timeout_s: float | None
    ) -> tuple[Any, float]:
        send = self._infer_call(model, version, inputs, outputs, timeout_s)

        async def timed(client: aioclient.InferenceServerClient) -> tuple[Any, float]:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            start = time.perf_counter()
            try:
                result = await send(client)
            finally:
                self._in_flight -= 1
            return result, (time.perf_counter() - start) * 1000.0

        return await self._call(timed, model=model, idempotent_read=False)

    # A single image gives its result, a list or tuple a list: typed so for checkers (py.typed).
    @overload
    async def inspect(
        self, images: ImageLike, *, timeout_s: float | None = None
    ) -> InspectionResult: ...

    @overload
    async def inspect(
        self,
        images: list[Any] | tuple[Any, ...],  # of ImageLike; list is invariant
        *,
        timeout_s: float | None = None,
    ) -> list[InspectionResult | ItemError]: ...

    async def inspect(
        self, images: ImagesLike, *, timeout_s: float | None = None
    ) -> InspectionResult | list[InspectionResult | ItemError]:
        """Inspect one image (its result, or its error raised) or a list (a list in input order;
        requests run concurrently). Bad images and failed requests of a list are reported as in
        the sync client: ItemError entries, BatchError carrying every answer (`mtqa_client.batch`).
        """
        batch = is_batch(images)
        part = await self._inspect_part(as_items(images), 0, timeout_s, batch)
        return finish([part], batch)

    async def _inspect_part(
        self, items: Sequence[ImageLike], offset: int, timeout_s: float | None, batch: bool
    ) -> Collector:
        """Encode images `offset ..` of a call and send their requests concurrently."""
        part, encoded = self._collect(items, offset, batch)

        async def send(chunk: Sequence) -> None:
            try:
                part.answered(chunk, await self._inspect_encoded(chunk, timeout_s))
            except InspectionError as exc:
                if not batch:
                    raise
                part.failed(chunk, exc)

        await asyncio.gather(*(send(c) for c in protocol.chunks(encoded, self.spec.max_batch_size)))
        return part

    async def _inspect_encoded(self, chunk: Sequence, timeout_s: float | None) -> list[Outcome]:
        spec, opts = self.spec, self.options
        inputs, outputs = protocol.inspect_request(chunk, spec)
        result, ms = await self._infer(opts.model, opts.version_str, inputs, outputs, timeout_s)
        return self._inspect_results(result, ms, chunk, spec)

    async def inspect_many(
        self,
        images: Iterable[ImageLike],
        *,
        concurrency: int = 8,
        batch_size: int | None = None,
        timeout_s: float | None = None,
    ) -> list[InspectionResult | ItemError]:
        """Inspect many images with at most `concurrency` requests in flight; keeps input order.

        Reports bad images and failed requests as `inspect` of a list does."""
        items = list(images)
        size = self._group_size(items, concurrency, batch_size, self.spec.max_batch_size)
        gate = asyncio.Semaphore(concurrency)

        async def run(start: int) -> Collector:
            async with gate:
                return await self._inspect_part(items[start : start + size], start, timeout_s, True)

        tasks = [asyncio.ensure_future(run(s)) for s in range(0, len(items), size)]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return finish(list(parts), True)

    async def net_spec(self) -> ModelSpec:
        """The raw model's spec, read and checked on first use."""
        if self._net_spec is None:
            self._net_spec = await self._load_spec(self.net_model, "net", None)
        return self._net_spec

    async def infer_tensor(
        self,
        images: np.ndarray,
        *,
        model_version: str | int | None = None,
        timeout_s: float | None = None,
        version: str | int | None = None,
    ) -> TensorResult:
        """Run the raw network on float32 [N, 3, S, S] images (chunks run concurrently);
        `model_version` as in InspectionClient.infer_tensor (`version`: its deprecated name)."""
        model_version = renamed_keyword("version", version, "model_version", model_version)
        pinned = "" if model_version is None else str(model_version)
        spec = await self.net_spec()
        batch = protocol.check_tensor(images, spec)

        async def one(chunk: np.ndarray) -> tuple[dict[str, np.ndarray], float, str, dict]:
            inputs, outputs = protocol.net_request(np.ascontiguousarray(chunk))
            model = self.net_model
            result, ms = await self._infer(model, pinned, inputs, outputs, timeout_s)
            version, server = protocol.response_info(result)
            return protocol.read_outputs(result, list(NET_OUTPUTS)), ms, version, server

        parts = await asyncio.gather(*(one(c) for c in protocol.chunks(batch, spec.max_batch_size)))
        _, _, version, server = parts[-1]
        ms = max(p[1] for p in parts)  # chunks ran concurrently
        return self._tensor_result(spec, (p[0] for p in parts), len(batch), ms, version, server)

    async def statistics(self, model: str | None = None) -> dict[str, Any]:
        """Triton's inference statistics for `model` (default: the inspect model) as JSON."""
        return await self._read(self._statistics_read(model))
