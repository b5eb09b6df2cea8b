"""Triton `config.pbtxt` contents built as `ModelConfig` protobufs (never string templates).

One function per model named by `mtqa_builder.contract`; `to_text` renders a config with
google.protobuf.text_format, which `mtqa repo check` parses back with the same schema. `Serving`
holds the batching and instance settings, and `Serving.for_target` their defaults, which the
build API and `mtqa build` share (the measurements behind them: docs/builder.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mtqa_builder import contract
from mtqa_builder.contract import ENSEMBLE, NET, POST, PRE
from mtqa_builder.errors import ServingError

TARGETS = ("local", "ngc-onnx", "ngc-trt", "ngc-openvino")
# Targets whose network runs on the CPU: the serving defaults are the CPU ones (for_target).
CPU_TARGETS = ("local", "ngc-openvino")
# Triton's native `openvino` backend (NGC image): the parameters it reads from the model config
# and their accepted values (github.com/triton-inference-server/openvino_backend, README and
# src/openvino.cc). It reads model.xml unless `default_model_filename` names the ONNX file, and
# pads every batch to max_batch_size unless the model is dynamic: ENABLE_BATCH_PADDING lets a
# smaller batch through at the cost of computing the padding.
OPENVINO_BACKEND = "openvino"
OPENVINO_MODEL_FILE = "model.onnx"
OPENVINO_PARAMETERS = {
    "PERFORMANCE_HINT": ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"),
    "NUM_STREAMS": None,  # a positive number, AUTO or NUMA
    "INFERENCE_NUM_THREADS": None,  # a non-negative number
    "COMPILATION_NUM_THREADS": None,
    "HINT_BF16": ("YES",),
    "ENABLE_BATCH_PADDING": ("YES", "NO"),
    "SKIP_OV_DYNAMIC_BATCHSIZE": ("YES", "NO"),
    "RESHAPE_IO_LAYERS": ("YES", "NO"),
    "CPU_EXTENSION_PATH": None,
}
# Per-image error message ("" when the image was answered): preprocess -> postprocess -> client.
ITEM_ERROR = "item_error"

# Counts that must be at least 1, and durations/sizes that must be at least 0.
_POSITIVE = (
    "max_batch",
    "instances",
    "max_queue_size",
    "intra_op_threads",
    "lane_sessions",
    "decode_threads",
    "max_pixels",
)
_NON_NEGATIVE = ("queue_delay_us", "queue_timeout_us")


@dataclass(frozen=True)
class Serving:
    """Batching, queueing and instance settings shared by the generated configs.

    The field defaults are fixed fallbacks (one instance, 2000 us, one thread each); the build
    API and `mtqa build` use `Serving.for_target`, which derives them from the target and the
    host's cores. Values out of range raise ServingError naming the field.
    """

    max_batch: int = 32
    queue_delay_us: int = 2000
    preferred_batch: tuple[int, ...] = ()  # sizes the batcher sends at once (empty: max_batch)
    instances: int = 1
    max_queue_size: int = 256
    queue_timeout_us: int = 5_000_000
    intra_op_threads: int = 1  # local mtqa_net: ORT threads per instance
    lane_sessions: int = 1  # local mtqa_net: ORT sessions one batch is spread over (ort_plan.py)
    # local mtqa_net: most images per ORT call, 0 = a whole request, None = `chunk_images_for`
    # the network's image size
    chunk_images: int | None = None
    decode_threads: int = 1  # mtqa_preprocess: threads decoding the images of one request
    # mtqa_preprocess: most pixels (width x height, from the header) an image may declare
    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise ServingError(name, f"must be >= 1, got {getattr(self, name)}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ServingError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.chunk_images is not None and self.chunk_images < 0:
            raise ServingError("chunk_images", f"must be >= 0, got {self.chunk_images}")
        if any(not 1 <= b <= self.max_batch for b in self.preferred_batch):
            raise ServingError(
                "preferred_batch",
                f"sizes must lie in 1..{self.max_batch}, got {list(self.preferred_batch)}",
            )

    @classmethod
    def for_target(cls, target: str = "local", cores: int | None = None, **overrides) -> Serving:
        """The serving settings for `target` on a host with `cores` CPU cores (default: this
        host's), with `overrides` (field -> value; None = keep the default) applied on top.

        `local` (python + ORT on CPU) runs several instances with one ORT thread each, never
        fewer than two (a single instance stalls in the bundled Triton's dynamic batcher), no
        batching delay and small preferred batches (ngc-openvino, also on the CPU, the same with
        max_batch 4: its backend pads a batch to max_batch); the NGC GPU targets keep one
        instance and a 2000 us delay. Why, with figures: docs/builder.md ("Serving defaults").
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ServingError(unknown[0], f"is not a Serving setting; known: {sorted(known)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        cores = max(1, cores or os.cpu_count() or 1)
        local = target in CPU_TARGETS
        # ngc-openvino pads each batch to max_batch_size: keep it at the preferred size
        default_batch = 4 if target == "ngc-openvino" else cls.max_batch
        max_batch = given.get("max_batch", default_batch)
        instances = given.get("instances", min(max(cores, 2), 4) if local else 1)
        derived = {
            "max_batch": max_batch,
            "queue_delay_us": 0 if local else cls.queue_delay_us,
            "preferred_batch": (min(4, max_batch),) if local and max_batch >= 1 else (),
            "instances": instances,
            # half the cores per instance set: the net shares them with the pre/post-processing
            # stubs, the server and (in a benchmark) the load generator
            "intra_op_threads": max(1, cores // (2 * max(1, instances))),
            "lane_sessions": min(cores, 4),  # a batch spreads over every core, up to 4
            "decode_threads": min(cores, 4),
        }
        return cls(**{**derived, **given})


# Pixels one ORT call of the local mtqa_net takes by default: batch 4 at 128 px. Past it the
# activations leave the cache and a call costs more per image (docs/builder.md).
CHUNK_PIXELS = 4 * 128 * 128


def chunk_images_for(image_size: int) -> int:
    """Default images per ORT call for a network of `image_size` px: CHUNK_PIXELS, at least 1."""
    return max(1, round(CHUNK_PIXELS / image_size**2))


@dataclass(frozen=True)
class Shapes:
    """Model geometry from the checkpoint: image size S, K classes, G grades."""

    image_size: int
    classes: int
    grades: int

    @property
    def packed_bytes(self) -> int:
        return math.ceil(self.image_size * self.image_size / 8)


def _tensor(kind, name: str, dtype: str, dims: Sequence[int]):
    return kind(name=name, data_type=mc.DataType.Value(dtype), dims=list(dims))


def _inp(name: str, dtype: str, dims: Sequence[int]) -> mc.ModelInput:
    return _tensor(mc.ModelInput, name, dtype, dims)


def _out(name: str, dtype: str, dims: Sequence[int]) -> mc.ModelOutput:
    return _tensor(mc.ModelOutput, name, dtype, dims)


def net_io(shapes: Shapes) -> tuple[list[mc.ModelInput], list[mc.ModelOutput]]:
    """`mtqa_net` tensors (batch axis excluded)."""
    s, k, g = shapes.image_size, shapes.classes, shapes.grades
    return (
        [_inp("images", "TYPE_FP32", [3, s, s])],
        [
            _out("presence_logits", "TYPE_FP32", [k]),
            _out("seg_logits", "TYPE_FP32", [k, s, s]),
            _out("grade_logits", "TYPE_FP32", [g]),
        ],
    )


def result_outputs(shapes: Shapes) -> list[mc.ModelOutput]:
    """Outputs of `mtqa_postprocess`, which are also the outputs of the ensemble."""
    k, g = shapes.classes, shapes.grades
    return [
        _out("presence_prob", "TYPE_FP32", [k]),
        _out("presence_decision", "TYPE_BOOL", [k]),
        _out("grade_prob", "TYPE_FP32", [g]),
        _out("grade_index", "TYPE_INT32", [1]),
        _out("masks_packed", "TYPE_UINT8", [k, shapes.packed_bytes]),
        _out("regions", "TYPE_FP32", [-1, 6]),
        _out(ITEM_ERROR, "TYPE_STRING", [1]),
        # (h, w) of the input the image fills (letterbox leaves padding): masks map back by it
        _out("mask_size", "TYPE_INT32", [2]),
    ]


def _batching(cfg: mc.ModelConfig, serving: Serving) -> None:
    cfg.dynamic_batching.max_queue_delay_microseconds = serving.queue_delay_us
    cfg.dynamic_batching.preferred_batch_size.extend(sorted(set(serving.preferred_batch)))
    policy = cfg.dynamic_batching.default_queue_policy
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = serving.queue_timeout_us
    policy.allow_timeout_override = True
    policy.max_queue_size = serving.max_queue_size


def _versions(cfg: mc.ModelConfig, versions: Sequence[int]) -> None:
    cfg.version_policy.specific.versions.extend(sorted(versions))


def _python(name: str, serving: Serving, versions: Sequence[int]) -> mc.ModelConfig:
    cfg = mc.ModelConfig(name=name, backend="python", max_batch_size=serving.max_batch)
    _versions(cfg, versions)
    _batching(cfg, serving)
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=serving.instances)
    return cfg


def net_config(
    target: str,
    shapes: Shapes,
    serving: Serving,
    versions: Sequence[int],
    cc_model_filenames: dict[str, str] | None = None,
    hint_bf16: bool = False,
) -> mc.ModelConfig:
    """`mtqa_net`: python+ORT locally, onnxruntime_onnx or tensorrt_plan on NGC GPU hosts,
    Triton's `openvino` backend on NGC CPU hosts (`hint_bf16`: its bf16 inference precision)."""
    if target == "local":
        cfg = _python(NET, serving, versions)
        cfg.parameters["intra_op_threads"].string_value = str(serving.intra_op_threads)
        cfg.parameters["lane_sessions"].string_value = str(serving.lane_sessions)
        chunk = serving.chunk_images
        chunk = chunk_images_for(shapes.image_size) if chunk is None else chunk
        cfg.parameters["chunk_images"].string_value = str(chunk)
    elif target == "ngc-openvino":
        cfg = openvino_net_config(serving, versions, hint_bf16)
    else:
        platform = {"ngc-onnx": "onnxruntime_onnx", "ngc-trt": "tensorrt_plan"}[target]
        cfg = mc.ModelConfig(name=NET, platform=platform, max_batch_size=serving.max_batch)
        _versions(cfg, versions)
        _batching(cfg, serving)
        cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_GPU, count=serving.instances)
        for cc, filename in sorted((cc_model_filenames or {}).items()):
            cfg.cc_model_filenames[cc] = filename
    inputs, outputs = net_io(shapes)
    cfg.input.extend(inputs)
    cfg.output.extend(outputs)
    warm = cfg.model_warmup.add(name="zeros_batch1", batch_size=1)
    warm.inputs["images"].data_type = mc.TYPE_FP32
    warm.inputs["images"].dims.extend([3, shapes.image_size, shapes.image_size])
    warm.inputs["images"].zero_data = True
    return cfg


def openvino_net_config(
    serving: Serving, versions: Sequence[int], hint_bf16: bool
) -> mc.ModelConfig:
    """`mtqa_net` on Triton's native `openvino` backend (ngc-openvino), I/O added by the caller.

    One stream per instance (the backend gives each instance one infer request on a shared
    compiled model), the throughput hint, and batch padding so the batcher may send fewer than
    max_batch_size images. The parameters apply to every version of the model: one inference
    precision per repository.
    """
    cfg = mc.ModelConfig(
        name=NET,
        backend=OPENVINO_BACKEND,
        max_batch_size=serving.max_batch,
        default_model_filename=OPENVINO_MODEL_FILE,
    )
    _versions(cfg, versions)
    _batching(cfg, serving)
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=serving.instances)
    params = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": str(serving.instances),
        "ENABLE_BATCH_PADDING": "YES",
    }
    if hint_bf16:
        params["HINT_BF16"] = "YES"
    for key, value in params.items():
        cfg.parameters[key].string_value = value
    return cfg


def preprocess_config(shapes: Shapes, serving: Serving, versions: Sequence[int]) -> mc.ModelConfig:
    """`mtqa_preprocess`: encoded bytes -> `images`, the original (h, w) and `item_error`."""
    cfg = _python(PRE, serving, versions)
    cfg.parameters["decode_threads"].string_value = str(serving.decode_threads)
    cfg.parameters["max_pixels"].string_value = str(serving.max_pixels)
    cfg.input.append(_inp("image_bytes", "TYPE_STRING", [1]))
    s = shapes.image_size
    cfg.output.extend(
        [
            _out("images", "TYPE_FP32", [3, s, s]),
            _out("orig_size", "TYPE_INT32", [2]),
            _out(ITEM_ERROR, "TYPE_STRING", [1]),
        ]
    )
    return cfg


def postprocess_config(shapes: Shapes, serving: Serving, versions: Sequence[int]) -> mc.ModelConfig:
    """`mtqa_postprocess`: the three logits, `orig_size` and `item_error` -> the results."""
    cfg = _python(POST, serving, versions)
    cfg.input.extend(_inp(o.name, "TYPE_FP32", o.dims) for o in net_io(shapes)[1])
    cfg.input.append(_inp("orig_size", "TYPE_INT32", [2]))
    cfg.input.append(_inp(ITEM_ERROR, "TYPE_STRING", [1]))
    cfg.output.extend(result_outputs(shapes))
    return cfg


def ensemble_config(
    shapes: Shapes,
    serving: Serving,
    versions: Sequence[int],
    steps: dict[str, int],
    labels: dict[str, str] | None = None,
) -> mc.ModelConfig:
    """`mtqa_inspect`: preprocess -> net -> postprocess, each step pinned to `steps[model]`.

    `labels` become string parameters (`contract.ensemble_parameters`: class and grade names,
    thresholds, geometry, the network's model name) so a gRPC client needs the config alone.
    """
    cfg = mc.ModelConfig(name=ENSEMBLE, platform="ensemble", max_batch_size=serving.max_batch)
    _versions(cfg, versions)
    for key, value in (labels or {}).items():
        cfg.parameters[key].string_value = value
    cfg.input.append(_inp("image_bytes", "TYPE_STRING", [1]))
    cfg.output.extend(result_outputs(shapes))
    logits = ("presence_logits", "seg_logits", "grade_logits")
    plan = [
        # Ensemble tensor names are unique: preprocess's item_error travels as `decode_error` to
        # postprocess, whose own item_error is the ensemble output.
        (
            PRE,
            {"image_bytes": "image_bytes"},
            {"images": "images", "orig_size": "orig_size", ITEM_ERROR: "decode_error"},
        ),
        (NET, {"images": "images"}, {n: n for n in logits}),
        (
            POST,
            {**{n: n for n in (*logits, "orig_size")}, ITEM_ERROR: "decode_error"},
            {o.name: o.name for o in cfg.output},
        ),
    ]
    for model, inputs, outputs in plan:
        step = cfg.ensemble_scheduling.step.add(model_name=model, model_version=steps[model])
        step.input_map.update(inputs)
        step.output_map.update(outputs)
    return cfg


def to_text(cfg: mc.ModelConfig) -> str:
    """Render a config as protobuf text, the format Triton reads from config.pbtxt."""
    return text_format.MessageToString(cfg)


def parse(text: str) -> mc.ModelConfig:
    """Parse config.pbtxt text with the ModelConfig schema (raises text_format.ParseError)."""
    return text_format.Parse(text, mc.ModelConfig())


def read_model_config(repo: Path | str, model: str) -> mc.ModelConfig:
    """`repo/model/config.pbtxt` parsed with the schema; ContractError names the file when it is
    missing or does not parse."""
    path = contract.model_dir(Path(repo), model) / contract.CONFIG
    if not path.is_file():
        raise contract.ContractError(
            f"{path} is missing; is {repo} a repository built by `mtqa build`?"
        )
    try:
        return parse(path.read_text())
    except text_format.ParseError as exc:
        raise contract.ContractError(f"{path} does not parse: {exc}") from None
