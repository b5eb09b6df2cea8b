"""The few Triton HTTP endpoints the launcher itself calls: health, readiness, repository control.

Plain urllib keeps the launcher free of client libraries; every call is bounded by a timeout.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from mtqa_serving.errors import ModelControlError


def _request(url: str, method: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """Send one request and return (status, body); connection errors give status 0."""
    data = b"{}" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def is_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET `url` answers 200 (health and readiness endpoints)."""
    return _request(url, "GET", {}, timeout)[0] == 200


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body.decode(errors="replace")))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")


def post(url: str, headers: dict[str, str], timeout: float, action: str) -> Any:
    """POST to a repository endpoint, returning parsed JSON or raising ModelControlError."""
    status, body = _request(url, "POST", {"Content-Type": "application/json", **headers}, timeout)
    if status == 0:
        raise ModelControlError(f"{action}: no answer from {url} within {timeout:.0f} s")
    if status != 200:
        raise ModelControlError(f"{action} failed (HTTP {status}): {_error_text(body)}")
    return json.loads(body) if body else None
