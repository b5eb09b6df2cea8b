"""Helpers shared by the python-backend models, copied next to each version's model.py.

A model.py loads this file by path (see `_UTILS` there): the backend does not put the version
dir on sys.path.
"""

import importlib.util
import threading
from pathlib import Path

import triton_python_backend_utils as pb_utils

_HERE = Path(__file__).resolve().parent


def sibling(name):
    """Import a module that sits next to this file, under a name unique to this model version."""
    unique = f"_mtqa_{_HERE.parent.name}_v{_HERE.name}_{name}"
    spec = importlib.util.spec_from_file_location(unique, _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parameters(config):
    """The `parameters` of a model config (the JSON Triton hands to `initialize`) as strings."""
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def invalid_arg(message):
    """An INVALID_ARG error where this Triton knows error codes (2.51 does), else a plain one."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(*((message, code) if code is not None else (message,)))


class DeferredMetrics:
    """Custom-metric updates summed in the request path and sent to Triton off it.

    Every `increment`/`set` of a python-backend metric is a blocking round trip to the server
    process; under load that wait cost 3 ms an image in `execute` (most of the serving time).
    Here `execute` only adds to a dict under a lock, and a daemon thread sends the sums every
    `interval_s` seconds (and once more at `close`), a few dozen round trips a second at most.
    """

    def __init__(self, interval_s=1.0):
        self.interval_s = float(interval_s)
        self._lock = threading.Lock()
        self._counters = {}  # id(metric) -> [metric, pending increment]
        self._gauges = {}  # id(metric) -> [metric, latest value]
        self._sources = []  # callables -> [(counters, increments)], drained at each flush
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mtqa-metrics", daemon=True)
        self._thread.start()

    def add_many(self, pairs):
        """Add each (counter, value) pair; one request's pairs go out in the same flush."""
        with self._lock:
            for metric, value in pairs:
                if value:
                    self._counters.setdefault(id(metric), [metric, 0.0])[1] += float(value)

    def add_source(self, drain):
        """Call `drain()` at each flush for [(counter list, increments)]: a model that keeps its
        requests' raw outcomes and tallies them once a flush pays numpy's per-call cost once a
        second instead of once a request."""
        self._sources.append(drain)

    def set(self, metric, value):
        """Set a gauge to `value` at the next flush."""
        with self._lock:
            self._gauges[id(metric)] = [metric, float(value)]

    def flush(self):
        with self._lock:
            counters, self._counters = self._counters, {}
            gauges, self._gauges = self._gauges, {}
        for metric, value in gauges.values():  # first: a reader that saw the counters move
            metric.set(value)  # sees the gauge of the same images
        for metric, value in counters.values():
            metric.increment(value)
        for drain in self._sources:
            for metrics, values in drain():
                for metric, value in zip(metrics, values, strict=True):
                    if value:
                        metric.increment(value)

    def _run(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception as exc:  # never let metrics take the model down
                pb_utils.Logger.log_error(f"mtqa metrics flush failed: {exc}")

    def close(self):
        """Stop the thread and send what is left (call from the model's `finalize`)."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
