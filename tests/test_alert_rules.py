"""The alert rules of docker/prometheus/ checked and unit-tested with Debian's `promtool`.

alerts.test.yml feeds each alert a series that breaks its limit and one that does not; here we
also make sure no alert is left without a test that expects it to fire.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES_DIR = Path(__file__).resolve().parents[1] / "docker" / "prometheus"
RULES, RULE_TESTS = RULES_DIR / "alerts.yml", RULES_DIR / "alerts.test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (`make prometheus` installs Debian's prometheus)")
    return binary


def _run(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_are_valid(promtool: str) -> None:
    assert "SUCCESS" in _run(promtool, "check", "rules", RULES.name)


def test_every_alert_passes_its_promtool_unit_test(promtool: str) -> None:
    assert "SUCCESS" in _run(promtool, "test", "rules", RULE_TESTS.name)


def test_every_alert_has_a_test_that_fires_it() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts and alerts <= fired, f"alerts without a firing test: {alerts - fired}"
