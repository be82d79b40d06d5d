"""Fixtures for the sources tests: a real moto server, real PostgreSQL/Redis, loopback HTTP.

moto's ThreadedMotoServer runs in this process, so its state is shared with any
other moto server here: these tests use their own region and unique names and
never reset the world.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

REGION = "ap-southeast-2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point boto3 (through its own env vars) at the module's moto server."""
    from propflow_ops.sources import aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws.clear_cache()
    yield moto_endpoint
    aws.clear_cache()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    """Each test is its own run: no breaker tripped by an earlier test (propflow_ops.reach)."""
    from propflow_ops import reach

    reach.reset()
    yield
    reach.reset()
