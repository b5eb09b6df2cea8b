"""What the client learns about a served model at connect time, and the contract checks.

`ModelSpec` is built from Triton's model metadata and model config (the JSON form tritonclient
returns with `as_json=True`). It checks the mtqa tensor contract of docs/architecture.md and raises
`ModelContractError` naming the offending tensor, so a wrong model, shape or dtype fails at
connect instead of deep inside a response. Class names, grade names and thresholds are read from
the config `parameters` (`classes`/`labels`, `grades`, `thresholds`, `image_size`; JSON or
comma-separated strings) of the model itself or of the models its ensemble steps call. The raw
network's model name comes from the ensemble config too (`net_model`), so the SDK needs no
repository file and no name of its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mtqa_client.errors import ModelContractError

IMAGE_BYTES = "image_bytes"
IMAGES = "images"
# output name -> Triton datatype, per docs/architecture.md
INSPECT_OUTPUTS = {
    "presence_prob": "FP32",
    "presence_decision": "BOOL",
    "grade_prob": "FP32",
    "grade_index": "INT32",
    "masks_packed": "UINT8",
    "regions": "FP32",
}
# Optional ensemble output: one message per image, "" when it was answered (older repositories
# lack it and fail the whole request on a bad image).
ITEM_ERROR = "item_error"
NET_OUTPUTS = {"presence_logits": "FP32", "seg_logits": "FP32", "grade_logits": "FP32"}
DEFAULT_GRADES = ("ok", "minor", "major", "reject")
NET_MODEL_PARAMETER = "net_model"  # ensemble config parameter naming the raw network model


@dataclass(frozen=True)
class ModelSpec:
    """A served model as the client sees it: name, versions, batch limit, labels, geometry."""

    name: str
    versions: tuple[str, ...]
    platform: str
    max_batch_size: int
    inputs: Mapping[str, tuple[str, tuple[int, ...]]]
    outputs: Mapping[str, tuple[str, tuple[int, ...]]]
    classes: tuple[str, ...]
    grades: tuple[str, ...]
    thresholds: Mapping[str, float] = field(default_factory=dict)
    image_size: int | None = None
    net_model: str | None = None  # inspect models: the raw network model the ensemble calls


def _tensors(meta: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {t["name"]: (t["datatype"], tuple(int(d) for d in t.get("shape", []))) for t in meta}


def _param(params: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = params.get(key, {})
        text = value.get("string_value") if isinstance(value, Mapping) else None
        if text:
            return text
    return None


def _as_list(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text.startswith("["):
        return tuple(str(v) for v in json.loads(text))
    return tuple(v.strip() for v in text.replace("\n", ",").split(",") if v.strip())


def _thresholds(text: str) -> dict[str, float]:
    data = json.loads(text)
    presence = data.get("presence", data) if isinstance(data, Mapping) else {}
    return {str(k): float(v) for k, v in presence.items() if isinstance(v, (int, float))}


def _labels(configs: list[Mapping[str, Any]]) -> tuple[tuple, tuple, dict, int | None]:
    """Read classes, grades, thresholds and image size from the first config that has each."""
    classes: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    thresholds: dict[str, float] = {}
    size: int | None = None
    for cfg in configs:
        params = cfg.get("parameters", {}) or {}
        try:
            if not classes and (text := _param(params, "classes", "labels")):
                classes = _as_list(text)
            if not grades and (text := _param(params, "grades")):
                grades = _as_list(text)
            if not thresholds and (text := _param(params, "thresholds")):
                thresholds = _thresholds(text)
            if size is None and (text := _param(params, "image_size")):
                size = int(text)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelContractError(
                f"model {cfg.get('name')!r} publishes unreadable parameters: {exc}"
            ) from None
    return classes, grades, thresholds, size


def _check(
    tensors: Mapping[str, tuple[str, tuple[int, ...]]],
    wanted: Mapping[str, str],
    model: str,
    kind: str,
) -> None:
    for name, dtype in wanted.items():
        if name not in tensors:
            raise ModelContractError(
                f"model {model!r} has no {kind} {name!r} (has {sorted(tensors)}); "
                "is this an mtqa model?",
                model=model,
            )
        if tensors[name][0] != dtype:
            raise ModelContractError(
                f"model {model!r} {kind} {name!r} is {tensors[name][0]}, expected {dtype}",
                model=model,
            )


def _size_from_packed(n_bytes: int) -> int | None:
    """Recover S from ceil(S*S/8) (unique for S >= 4)."""
    if n_bytes <= 0:
        return None
    s = math.isqrt(8 * n_bytes)
    return s if math.ceil(s * s / 8) == n_bytes else None


def build_spec(
    metadata: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    kind: str,
    extra_configs: Iterable[Mapping[str, Any]] = (),
) -> ModelSpec:
    """Check metadata/config against the contract for `kind` ("inspect" or "net")."""
    cfg = config.get("config", config)
    name = metadata.get("name", cfg.get("name", "?"))
    inputs, outputs = _tensors(metadata.get("inputs", [])), _tensors(metadata.get("outputs", []))
    max_batch = int(cfg.get("max_batch_size", 0) or 0)
    if kind == "inspect":
        _check(inputs, {IMAGE_BYTES: "BYTES"}, name, "input")
        _check(outputs, INSPECT_OUTPUTS, name, "output")
        k_dim, g_dim = outputs["presence_prob"][1][-1], outputs["grade_prob"][1][-1]
        size = _size_from_packed(outputs["masks_packed"][1][-1])
        net_model = net_model_of(cfg)
    elif kind == "net":
        _check(inputs, {IMAGES: "FP32"}, name, "input")
        _check(outputs, NET_OUTPUTS, name, "output")
        shape = inputs[IMAGES][1][-3:]
        if len(shape) != 3 or shape[0] not in (3, -1) or shape[1] != shape[2]:
            raise ModelContractError(
                f"model {name!r} input 'images' has shape {inputs[IMAGES][1]}, "
                "expected [N, 3, S, S]",
                model=name,
            )
        k_dim, g_dim = outputs["presence_logits"][1][-1], outputs["grade_logits"][1][-1]
        size = shape[1] if shape[1] > 0 else None
        net_model = name
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    classes, grades, thresholds, param_size = _labels([cfg, *extra_configs])
    if k_dim > 0 and classes and len(classes) != k_dim:
        raise ModelContractError(
            f"model {name!r} publishes {len(classes)} class names but outputs {k_dim} classes",
            model=name,
        )
    if not classes and k_dim > 0:
        classes = tuple(f"class_{i + 1}" for i in range(k_dim))
    if not grades:
        grades = DEFAULT_GRADES if g_dim in (-1, len(DEFAULT_GRADES)) else ()
        grades = grades or tuple(f"grade_{i}" for i in range(g_dim))
    return ModelSpec(
        name=name,
        versions=tuple(str(v) for v in metadata.get("versions", [])),
        platform=str(metadata.get("platform", cfg.get("platform", cfg.get("backend", "")))),
        max_batch_size=max_batch,
        inputs=inputs,
        outputs=outputs,
        classes=classes,
        grades=grades,
        thresholds=thresholds,
        image_size=size or param_size,
        net_model=net_model,
    )


def net_model_of(config: Mapping[str, Any]) -> str | None:
    """The raw network an inspect model calls: its `net_model` config parameter, else the
    ensemble step whose outputs are the network's logits (None: neither is there)."""
    cfg = config.get("config", config)
    named = _param(cfg.get("parameters", {}) or {}, NET_MODEL_PARAMETER)
    if named:
        return named
    for step in cfg.get("ensemble_scheduling", {}).get("step", []):
        if set(NET_OUTPUTS) <= set(step.get("output_map", {})) and "model_name" in step:
            return str(step["model_name"])
    return None


def ensemble_steps(config: Mapping[str, Any]) -> list[str]:
    """Names of the models an ensemble config calls, in step order (empty for non-ensembles)."""
    cfg = config.get("config", config)
    steps = cfg.get("ensemble_scheduling", {}).get("step", [])
    return [s["model_name"] for s in steps if "model_name" in s]
