"""`ClientBase`: what the sync and asyncio clients share apart from I/O.

Validated options, the model-spec bookkeeping (which reads make a spec, which models are
verified), the retry decision for one failed attempt, the readiness error, the request grouping
of `inspect_many` and the assembly of results. The subclasses keep only their transport: blocking
or awaiting a call, sleeping between rounds, running requests concurrently.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from mtqa_client import protocol
from mtqa_client.batch import Collector, Outcome
from mtqa_client.control_key import control_headers
from mtqa_client.endpoints import EndpointPool
from mtqa_client.errors import (
    InspectionError,
    InvalidInputError,
    ModelContractError,
    ModelNotReadyError,
    ServerUnavailableError,
    from_server_error,
    is_refusal,
)
from mtqa_client.images import DEFAULT_MAX_PIXELS, EncodedImage, encode_one
from mtqa_client.options import ClientOptions, make_options
from mtqa_client.renamed import renamed_keyword
from mtqa_client.results import TensorResult, Timings, parse_inspect
from mtqa_client.retry import RetryPolicy, is_retryable
from mtqa_client.spec import (
    INSPECT_OUTPUTS,
    ITEM_ERROR,
    NET_MODEL_PARAMETER,
    NET_OUTPUTS,
    ModelSpec,
    build_spec,
    ensemble_steps,
)
from mtqa_client.transport import DEFAULT_MAX_MESSAGE_BYTES, TlsConfig

POLL_S = 0.25  # pause between readiness sweeps over the endpoints


class Read(NamedTuple):
    """A control read: `fn(client)` on `model`; an `optional` one yields None if it is absent."""

    model: str
    fn: Callable[[Any], Any]
    optional: bool = False


SpecPlan = Generator[Read, Any, ModelSpec]


class ClientBase:
    """Options and transport-independent steps; subclasses add the sync or asyncio I/O."""

    _net_spec: ModelSpec | None = None

    def __init__(
        self,
        url: str,
        *,
        model: str = "mtqa_inspect",
        model_version: str | int | None = None,
        net_model: str | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 60.0,
        retries: int | RetryPolicy = 3,
        tls: bool | TlsConfig | None = None,
        headers: Mapping[str, str] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        endpoints: Sequence[str] = (),
        validate_images: bool = True,
        shared_memory: bool = False,
        key: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        wait_for_server: bool = False,
        version: str | int | None = None,
    ) -> None:
        """`headers` go with every call; `key` (the server's control key, needed for
        `shared_memory=True` on an mtqa server) is added to them. `net_model` names the raw
        network `infer_tensor` calls; by default the inspect model's config names it.
        `model_version` pins the inspect model's version (`version` is its deprecated name)."""
        model_version = renamed_keyword("version", version, "model_version", model_version)
        headers = {**(headers or {}), **control_headers(key)}
        self.options: ClientOptions = make_options(
            url,
            model=model,
            net_model=net_model,
            model_version=model_version,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
            tls=tls,
            headers=headers,
            max_message_bytes=max_message_bytes,
            endpoints=endpoints,
            validate_images=validate_images,
            max_pixels=max_pixels,
            wait_for_server=wait_for_server,
        )
        self._verified: set[str] = set()  # models whose spec was read: NOT_FOUND is transient
        self._open_transport(shared_memory)

    def _open_transport(self, shared_memory: bool) -> None:
        """Subclass hook run at the end of `__init__`; the base has no shared-memory path."""
        if shared_memory:
            raise InvalidInputError(f"{type(self).__name__} does not support shared_memory")

    # -- retries and readiness ---------------------------------------------------------------

    def _failed(
        self,
        pool: EndpointPool[Any],
        url: str,
        exc: Exception,
        model: str,
        idempotent_read: bool,
    ) -> InspectionError:
        """The typed error of a failed attempt: raised if final, else `url` is benched."""
        error = from_server_error(exc, model=model, endpoint=url)
        known = model in self._verified
        if not is_retryable(error, idempotent_read=idempotent_read, model_verified=known):
            raise error from None
        pool.bench(url)
        return error

    def _probe_failed(self, url: str, exc: Exception) -> InspectionError:
        """A failed readiness probe: raise unless the endpoint may still come up."""
        error = from_server_error(exc, model=self.options.model, endpoint=url)
        if not is_retryable(error, idempotent_read=True):
            raise error from None
        return error

    def _unless_refused(self, failed: Mapping[str, InspectionError]) -> None:
        """After a readiness sweep: raise at once when every endpoint refused the connection.

        Nothing listens there, so the wait would only end at its timeout; a server that is still
        starting is waited for with `wait_for_server=True`.
        """
        opts = self.options
        if opts.wait_for_server or set(failed) != set(opts.urls):
            return
        if not all(is_refusal(error) for error in failed.values()):
            return
        first = next(iter(failed.values()))
        raise ServerUnavailableError(
            f"no Triton server ready at {list(opts.urls)}: connection refused (nothing listens "
            "there; wait_for_server=True waits up to connect_timeout_s for one that is starting)",
            status=first.status,
            model=opts.model,
            endpoint=", ".join(failed),
        )

    def _not_ready(
        self, seen: str | None, index: Sequence[Mapping[str, Any]] | None, timeout_s: float
    ) -> InspectionError:
        """Why the wait failed: no server ready, or (on server `seen`) the model not ready."""
        opts = self.options
        if seen is None:
            return ServerUnavailableError(
                f"no Triton server ready at {list(opts.urls)} within {timeout_s:g} s",
                status="UNAVAILABLE",
                model=opts.model,
                endpoint=", ".join(opts.urls),
            )
        reason = protocol.not_ready_reason(index, opts.model, opts.model_version, timeout_s)
        return ModelNotReadyError(reason, endpoint=seen)

    # -- model specs -------------------------------------------------------------------------

    @property
    def net_model(self) -> str:
        """The raw network model `infer_tensor` calls: the `net_model` argument, else the one
        the inspect model's config names (ModelContractError when it names none)."""
        opts = self.options
        name = opts.net_model or self.spec.net_model
        if not name:
            raise ModelContractError(
                f"model {opts.model!r} names no network model (no {NET_MODEL_PARAMETER!r} "
                f"parameter, no step producing {sorted(NET_OUTPUTS)}); pass net_model=",
                model=opts.model,
            )
        return name

    def _spec_plan(self, model: str, kind: str, version: str | None) -> SpecPlan:
        """The reads that make `model`'s spec, sent back one by one by the client's driver."""
        opts, timeout = self.options, self.options.timeout_s
        meta = yield Read(
            model,
            lambda c: c.get_model_metadata(
                model, headers=opts.headers, as_json=True, client_timeout=timeout
            ),
        )
        if version and version not in meta.get("versions", []):
            raise ModelNotReadyError(
                f"model {model!r} has no version {version}; "
                f"served versions: {meta.get('versions', [])}",
                model=model,
            )
        config = yield Read(
            model,
            lambda c: c.get_model_config(
                model, version or "", headers=opts.headers, as_json=True, client_timeout=timeout
            ),
        )
        extra = []
        for step in ensemble_steps(config):
            answer = yield Read(
                step,
                lambda c, s=step: c.get_model_config(
                    s, headers=opts.headers, as_json=True, client_timeout=timeout
                ),
                optional=True,  # a step model without readable config only loses label names
            )
            if answer is not None:
                extra.append(answer.get("config", answer))
        spec = build_spec(meta, config, kind=kind, extra_configs=extra)
        self._verified.add(model)
        return spec

    def _statistics_read(self, model: str | None) -> Read:
        name, opts = model or self.options.model, self.options
        return Read(
            name,
            lambda c: c.get_inference_statistics(
                name, headers=opts.headers, as_json=True, client_timeout=opts.timeout_s
            ),
        )

    # -- requests and results ----------------------------------------------------------------

    def _infer_call(
        self, model: str, version: str, inputs: list, outputs: list, timeout_s: float | None
    ) -> Callable[[Any], Any]:
        """`fn(client)` sending one inference request (on asyncio it returns an awaitable)."""
        opts, timeout = self.options, timeout_s or self.options.timeout_s
        return lambda c: c.infer(
            model,
            inputs,
            model_version=version,
            outputs=outputs,
            client_timeout=timeout,
            headers=opts.headers,
        )

    def _group_size(
        self, items: Sequence[Any], concurrency: int, batch_size: int | None, max_batch: int
    ) -> int:
        """Images per request for `inspect_many` (InvalidInputError on an empty list)."""
        if not items:
            raise InvalidInputError("no images given (empty list)")
        if concurrency < 1:
            raise InvalidInputError(f"concurrency must be >= 1, got {concurrency}")
        if batch_size:
            return min(batch_size, max_batch or batch_size)
        return protocol.batch_size_for(len(items), max_batch, concurrency)

    def _collect(self, items: Sequence[Any], offset: int, batch: bool) -> tuple[Collector, list]:
        """Encode images `offset ..` of a call: (their collector, the sendable EncodedImages).

        In a batch an unusable image becomes its ItemError; a single one raises its error.
        """
        opts, size = self.options, self.spec.image_size

        def encode(item: Any, index: int) -> EncodedImage:
            return encode_one(
                item, index, validate=opts.validate_images, max_pixels=opts.max_pixels, size=size
            )

        collector = Collector(offset, len(items))
        if not batch:
            return collector, [encode(items[0], offset)]
        return collector, collector.encode(items, encode)

    @staticmethod
    def _inspect_results(
        result: Any, ms: float, chunk: Sequence[EncodedImage], spec: ModelSpec
    ) -> list[Outcome]:
        version, server = protocol.response_info(result)
        names = [*INSPECT_OUTPUTS, "orig_size", "mask_size", ITEM_ERROR]
        arrays = protocol.read_outputs(result, names)
        return parse_inspect(arrays, chunk, spec, version, Timings(ms, len(chunk), server))

    @staticmethod
    def _tensor_result(
        spec: ModelSpec,
        parts: Iterable[Mapping[str, np.ndarray]],
        n: int,
        ms: float,
        version: str,
        server: Mapping[str, float],
    ) -> TensorResult:
        """Join per-chunk `mtqa_net` outputs into one result for `n` images."""
        parts = list(parts)
        if len(parts) == 1:  # one chunk: its arrays are the result, no copy
            joined = {name: parts[0][name] for name in NET_OUTPUTS}
        else:
            joined = {name: np.concatenate([p[name] for p in parts]) for name in NET_OUTPUTS}
        return TensorResult(
            **joined, model_name=spec.name, model_version=version, timings=Timings(ms, n, server)
        )
