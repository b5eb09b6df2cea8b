"""Loss-weighting strategies behind one base class; `build_weighting` picks one by name."""

from __future__ import annotations

from collections.abc import Sequence

from mtqa.config import ConfigError, WeightingConfig
from mtqa.tasks import TASK_NAMES
from mtqa.weighting.base import Weighting
from mtqa.weighting.fixed import FixedWeighting
from mtqa.weighting.pcgrad import PCGradWeighting
from mtqa.weighting.uncertainty import UncertaintyWeighting

STRATEGIES: dict[str, type[Weighting]] = {
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "pcgrad": PCGradWeighting,
}

__all__ = ["STRATEGIES", "Weighting", "build_weighting"]


def build_weighting(cfg: WeightingConfig, tasks: Sequence[str]) -> Weighting:
    """Instantiate the strategy named by `cfg.name` for the active tasks."""
    if cfg.name not in STRATEGIES:
        raise ConfigError(f"unknown weighting {cfg.name!r}; known: {sorted(STRATEGIES)}")
    unknown = set(cfg.weights) - set(TASK_NAMES)
    if unknown:
        raise ConfigError(f"weighting.weights has unknown tasks {sorted(unknown)}")
    return STRATEGIES[cfg.name](tasks, cfg.weights)
