"""One JSON writer for metrics: undefined (non-finite) figures become ``null``, never ``NaN``.

``json.dumps`` writes ``NaN`` and ``Infinity`` by default, which is not JSON: strict parsers
(``jq``, browsers, most languages) reject the whole document. Every metrics file and every
command that prints metrics goes through ``dumps`` here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as None, numpy scalars and arrays as Python values, tuples
    as lists and mapping keys as strings (recursively)."""
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = 2, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (see ``json_safe``); raises ValueError on what is left."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False, **kwargs)
