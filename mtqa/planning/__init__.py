"""Training plans from data: a dataset fingerprint decides the run configuration."""

from __future__ import annotations

from mtqa.planning.fingerprint import Fingerprint, fingerprint
from mtqa.planning.plan import PLAN_FILE, TIME_BUDGET, Plan, make_plan


def plan_for(source: str, time_budget: float | None = None) -> Plan:
    """Fingerprint `source` (a dataset folder or `neu_seg`) and plan a run for it."""
    return make_plan(fingerprint(source), time_budget)


__all__ = [
    "PLAN_FILE",
    "TIME_BUDGET",
    "Fingerprint",
    "Plan",
    "fingerprint",
    "make_plan",
    "plan_for",
]
