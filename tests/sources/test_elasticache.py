"""sources.elasticache against the sandbox: ElastiCache (moto) and Redis (real)."""

from __future__ import annotations

import pytest

from propflow_ops.checks.redis import error_kind
from propflow_ops.errors import FetchError
from propflow_ops.reach import unreachable
from propflow_ops.sources import aws
from propflow_ops.sources import elasticache as ec
from propflow_ops.sources.fetch import fetch


@pytest.fixture
def env(world, sandbox_env, monkeypatch):
    for k, v in sandbox_env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield world
    aws.clear_cache()


def test_cluster_and_redis_probe(env, sandbox_env):
    env()
    cluster = fetch(ec.cache_cluster, "propflow-redis").value
    assert cluster["found"] is True and cluster["status"] == "available"
    assert ec.cache_cluster("nope")["found"] is False
    url, source = ec.resolve_redis_url({"REDIS_URL": "redis://other:6379/0"})
    assert url == sandbox_env["PROPFLOW_REDIS_URL"] and source == "env PROPFLOW_REDIS_URL"
    got = ec.redis_probe(url, source)
    assert got.ok and got.target == ec.redis_host(url) and "redis://" not in repr(got)
    probe = got.value
    assert probe["ping_ms"] is not None
    assert probe["info"]["connected_clients"] >= 2
    assert probe["config"]["maxclients"] == "10000"
    assert probe["channels"] == {"propflow:events": 1}
    assert "canary" not in repr(probe)


def test_redis_url_from_task_definition(monkeypatch):
    monkeypatch.delenv("PROPFLOW_REDIS_URL", raising=False)
    assert ec.resolve_redis_url({"REDIS_URL": "rediss://:pw@h:6379/0"}) == (
        "rediss://:pw@h:6379/0",
        "task definition REDIS_URL",
    )
    assert ec.resolve_redis_url({}) == (None, "not configured")
    assert ec.redis_host("rediss://:pw@h:6380/0") == "h:6380"


def test_unreachable_redis_never_raises():
    probe = ec.redis_probe("redis://:secretpw@127.0.0.1:1/0", "test", timeout_s=1)
    assert probe.value is None and isinstance(probe.error, FetchError) and probe.target == "127.0.0.1:1"
    assert unreachable(probe.error) and "secretpw" not in repr(probe) and "secretpw" not in str(probe.error)
    not_configured = ec.redis_probe(None)
    assert not_configured.value is None and not_configured.error is None


def test_maxclients_refusal_is_classified():
    # Redis answers a connection over maxclients with this error and closes; whether the client reads the
    # message or only the close is a race (live: see the websocket runbook's redis-maxclients test, which
    # also judges connected_clients against maxclients). The classification of the message is tested here.
    assert error_kind("ERR max number of clients reached") == "maxclients"
    assert error_kind("Connection refused") == "connection"
