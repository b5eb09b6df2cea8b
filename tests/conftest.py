"""Loads every fixture module in tests/fixtures/ (one per component owner) as a pytest plugin."""

import pathlib
import pkgutil
import sys

_HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(_HERE))

pytest_plugins = [f"fixtures.{m.name}" for m in pkgutil.iter_modules([str(_HERE / "fixtures")])]
