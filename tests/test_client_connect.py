"""The SDK's readiness wait against a loopback port nothing listens on (no server needed)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from mtqa_client import AsyncInspectionClient, InspectionClient, ServerUnavailableError


@pytest.fixture
def closed_url() -> str:
    """HOST:PORT of a loopback port that was free a moment ago: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_a_refused_connection_fails_at_once_with_endpoint_and_status(closed_url) -> None:
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="connection refused") as raised:
        InspectionClient(closed_url, connect_timeout_s=30)
    assert time.monotonic() - start < 2.0
    assert raised.value.endpoint == closed_url and raised.value.status == "UNAVAILABLE"


def test_the_async_client_fails_at_once_too(closed_url) -> None:
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="connection refused") as raised:
        asyncio.run(AsyncInspectionClient.connect(closed_url, connect_timeout_s=30))
    assert time.monotonic() - start < 2.0
    assert raised.value.endpoint == closed_url


def test_wait_for_server_waits_the_whole_connect_timeout(closed_url) -> None:
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="within 1 s") as raised:
        InspectionClient(closed_url, connect_timeout_s=1, wait_for_server=True)
    assert 1.0 <= time.monotonic() - start < 5.0
    assert raised.value.endpoint == closed_url and raised.value.status == "UNAVAILABLE"
